"""The multi-trigger contrastive search loop (METHOD.md section 2): gradient swaps, beam over slots, re-checks,
restarts that exclude what earlier restarts settled on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from scanner.encoder import LoadedEncoder
from scanner.evidence import (
    CleanStats,
    FeatureRunner,
    TokenizedCorpus,
    clean_features,
    sample_positions,
    trigger_features,
)
from scanner.progress import Progress, silent
from scanner.search.config import SearchConfig
from scanner.search.objective import supcon_loss
from scanner.search.step import expand_beams, poisoned_batch, set_losses, slot_gradients, swap_scores, top_candidates


@dataclass
class ScoredSentences:
    """Sentences candidate sets are scored on, fixed for one restart: their standardized clean features, insertion
    positions, and the standardized features of every unit already inserted into them (a cache: a unit's features
    on these sentences do not change between the beam's slots or the restart's rounds)."""

    sentences: TokenizedCorpus
    clean_z: torch.Tensor
    positions: torch.Tensor
    unit_z: dict[int, torch.Tensor] = field(default_factory=dict)


@dataclass
class RestartResult:
    tokens: list[list[int]]
    loss: float
    accepted_swaps: int


@dataclass
class SearchResult:
    """Triggers (token-id tuples) the search settled on, in the order found, and its trace."""

    candidates: list[tuple[int, ...]]
    restarts: list[RestartResult] = field(default_factory=list)


class ContrastiveSearch:
    """Searches K trigger slots jointly over `units`: single tokens, or words of T pieces each (word mode).
    One instance per unit length; it holds the model's clean statistics."""

    def __init__(
        self,
        encoder: LoadedEncoder,
        corpus: TokenizedCorpus,
        units: list[tuple[int, ...]],
        stats: CleanStats,
        runner: FeatureRunner,
        config: SearchConfig,
        generator: torch.Generator,
        inserts: int = 3,
        start_units: int | None = None,
    ) -> None:
        lengths = {len(u) for u in units}
        if len(lengths) != 1:
            raise ValueError("all units of one search must have the same number of pieces")
        self.encoder = encoder
        self.corpus = corpus
        self.runner = runner
        self.stats = stats
        self.config = config
        self.gen = generator
        self.inserts = inserts  # as the evidence inserts a candidate (EvidenceConfig.inserts)
        self.length = lengths.pop()
        self.start_units = len(units) if start_units is None else start_units  # random starts draw from these
        device = corpus.ids.device
        self.units = torch.tensor(units, dtype=torch.long, device=device)  # [U, T]
        self.unit_embeds = encoder.embedding_matrix.detach()[self.units]  # [U, T, e]
        self.allowed = torch.ones(len(units), dtype=torch.bool, device=device)
        self.embedding = encoder.embedding_matrix.detach()

    def _sample(self, n: int) -> TokenizedCorpus:
        rows = torch.randperm(len(self.corpus), generator=self.gen)[:n].to(self.corpus.ids.device)
        return self.corpus.take(rows)

    def _random_slots(self) -> torch.Tensor:
        pool = torch.nonzero(self.allowed[: self.start_units]).squeeze(1)
        if pool.shape[0] < self.config.slots:
            pool = torch.nonzero(self.allowed).squeeze(1)
        pick = torch.randperm(pool.shape[0], generator=self.gen)[: self.config.slots].to(pool.device)
        return pool[pick]

    def _gradient(self, slots: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        batch = self._sample(cfg.clean_batch)
        ids, mask, labels, trig_pos, slot_of_row = poisoned_batch(
            batch, self.units[slots], cfg.poison_copies, self.inserts, self.gen
        )
        embeds = self.embedding[ids].detach().clone().requires_grad_(True)
        feats = self.runner.features_with_grad(embeds, mask)
        loss = supcon_loss(self.stats.standardize(feats), labels, cfg.temperature)
        (grad,) = torch.autograd.grad(loss, embeds)
        return slot_gradients(grad[len(batch) :], trig_pos, slot_of_row, cfg.slots, self.length)

    def _losses(self, sets: torch.Tensor, scored: ScoredSentences) -> torch.Tensor:
        """Contrastive loss of each candidate set on `scored`; only units not yet inserted there are evaluated."""
        unique, index = torch.unique(sets, return_inverse=True)
        units = unique.tolist()
        todo = [u for u in units if u not in scored.unit_z]
        if todo:
            feats = trigger_features(self.runner, scored.sentences, scored.positions, self.units[todo].tolist())
            for u, z in zip(todo, self.stats.standardize(feats), strict=True):
                scored.unit_z[u] = z
        token_z = torch.stack([scored.unit_z[u] for u in units])
        return set_losses(scored.clean_z, token_z, index.view(sets.shape), self.config.temperature)

    def _scored_sentences(self, n: int) -> ScoredSentences:
        sents = self._sample(n)
        positions = sample_positions(sents.slots, self.inserts, self.gen)
        clean_z = self.stats.standardize(clean_features(self.runner, sents))
        return ScoredSentences(sents, clean_z, positions)

    def _round(
        self, slots: torch.Tensor, dev: ScoredSentences, recheck: ScoredSentences
    ) -> tuple[torch.Tensor, bool, float]:
        cfg = self.config
        grad = self._gradient(slots)
        allowed = self.allowed.clone()
        allowed[slots] = False
        cands = top_candidates(swap_scores(grad, self.unit_embeds, allowed), cfg.top_k)
        beams = slots.unsqueeze(0)
        for slot in range(slots.shape[0]):
            sets = expand_beams(beams, slot, cands[slot])
            losses = self._losses(sets, dev)
            beams = sets[losses.argsort()[: cfg.beam]]
        best = beams[0]
        if torch.equal(best, slots):
            return slots, False, float("nan")
        current_loss, best_loss = self._losses(torch.stack([slots, best]), recheck).tolist()
        if best_loss < current_loss:
            return best, True, best_loss
        return slots, False, current_loss

    def run(self, progress: Progress = silent, restarts: int | None = None) -> SearchResult:
        cfg = self.config
        restarts = cfg.restarts if restarts is None else restarts
        result = SearchResult(candidates=[])
        total = max(restarts * cfg.rounds, 1)
        for restart in range(restarts):
            if int(self.allowed.sum()) <= cfg.slots:
                break
            slots = self._random_slots()
            dev = self._scored_sentences(cfg.dev_sentences)
            recheck = self._scored_sentences(cfg.recheck_sentences)
            accepted, loss = 0, float("nan")
            for rnd in range(cfg.rounds):
                slots, changed, loss = self._round(slots, dev, recheck)
                accepted += int(changed)
                words = ", ".join(self._text(u) for u in slots.tolist())
                progress(
                    "search",
                    (restart * cfg.rounds + rnd + 1) / total,
                    f"{self.length}-piece restart {restart + 1}/{restarts} round {rnd + 1}/{cfg.rounds}: {words}",
                )
            found = [tuple(self.units[u].tolist()) for u in slots.tolist()]
            result.restarts.append(RestartResult(tokens=[list(f) for f in found], loss=loss, accepted_swaps=accepted))
            result.candidates.extend(f for f in found if f not in result.candidates)
            self.allowed[slots] = False  # later restarts look elsewhere
        return result

    def _text(self, unit: int) -> str:
        tokenizer: Any = self.encoder.tokenizer
        return tokenizer.decode(self.units[unit].tolist()).strip()
