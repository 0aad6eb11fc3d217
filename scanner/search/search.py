"""The multi-trigger contrastive search loop (METHOD.md section 2): gradient swaps, beam over slots, re-checks,
restarts that exclude what earlier restarts settled on."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from scanner.encoder import LoadedEncoder
from scanner.progress import Progress, silent
from scanner.search.config import SearchConfig
from scanner.search.forward import FeatureRunner
from scanner.search.insert import TokenizedCorpus, sample_positions
from scanner.search.objective import CleanStats, supcon_loss
from scanner.search.probe import clean_features, trigger_features
from scanner.search.step import expand_beams, poisoned_batch, set_losses, slot_gradients, swap_scores, top_candidates
from scanner.search.vocab import Vocabulary


@dataclass
class RestartResult:
    tokens: list[int]
    loss: float
    accepted_swaps: int


@dataclass
class SearchResult:
    """Token ids the search settled on, in the order found (duplicates removed), and its trace."""

    candidates: list[int]
    restarts: list[RestartResult] = field(default_factory=list)


class ContrastiveSearch:
    """Searches K trigger slots jointly; one instance per scan (it holds the model's clean statistics)."""

    def __init__(self, encoder: LoadedEncoder, corpus: TokenizedCorpus, vocab: Vocabulary, stats: CleanStats,
                 runner: FeatureRunner, config: SearchConfig, generator: torch.Generator) -> None:
        self.encoder = encoder
        self.corpus = corpus
        self.vocab = vocab
        self.stats = stats
        self.runner = runner
        self.config = config
        self.gen = generator
        self.embedding = encoder.embedding_matrix.detach()
        self.allowed = vocab.mask(self.embedding.shape[0]).to(self.embedding.device)

    def _sample(self, n: int) -> TokenizedCorpus:
        rows = torch.randperm(len(self.corpus), generator=self.gen)[:n].to(self.corpus.ids.device)
        return self.corpus.take(rows)

    def _random_slots(self) -> torch.Tensor:
        pool = torch.nonzero(self.allowed).squeeze(1)
        pick = torch.randperm(pool.shape[0], generator=self.gen)[: self.config.slots].to(pool.device)
        return pool[pick]

    def _gradient(self, slots: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        batch = self._sample(cfg.clean_batch)
        ids, mask, labels, trig_pos, slot_of_row = poisoned_batch(batch, slots, cfg.poison_copies, cfg.inserts,
                                                                  self.gen)
        embeds = self.embedding[ids].detach().clone().requires_grad_(True)
        feats = self.runner.features_with_grad(embeds, mask)
        loss = supcon_loss(self.stats.standardize(feats), labels, cfg.temperature)
        (grad,) = torch.autograd.grad(loss, embeds)
        return slot_gradients(grad[len(batch):], trig_pos, slot_of_row, cfg.slots)

    def _losses(self, sets: torch.Tensor, sentences: TokenizedCorpus, clean_z: torch.Tensor,
                positions: torch.Tensor) -> torch.Tensor:
        unique, index = torch.unique(sets, return_inverse=True)
        feats = trigger_features(self.runner, sentences, positions, [[int(t)] for t in unique])
        token_z = self.stats.standardize(feats)
        return set_losses(clean_z, token_z, index.view(sets.shape), self.config.temperature)

    def _scored_sentences(self, n: int) -> tuple[TokenizedCorpus, torch.Tensor, torch.Tensor]:
        sents = self._sample(n)
        positions = sample_positions(sents.slots, self.config.inserts, self.gen)
        clean_z = self.stats.standardize(clean_features(self.runner, sents))
        return sents, clean_z, positions

    def _round(self, slots: torch.Tensor, dev, recheck) -> tuple[torch.Tensor, bool, float]:
        cfg = self.config
        grad = self._gradient(slots)
        allowed = self.allowed.clone()
        allowed[slots] = False
        cands = top_candidates(swap_scores(grad, self.embedding, allowed), cfg.top_k)
        beams = slots.unsqueeze(0)
        for slot in range(cfg.slots):
            sets = expand_beams(beams, slot, cands[slot])
            losses = self._losses(sets, *dev)
            beams = sets[losses.argsort()[: cfg.beam]]
        best = beams[0]
        if torch.equal(best, slots):
            return slots, False, float("nan")
        both = torch.stack([slots, best])
        current_loss, best_loss = self._losses(both, *recheck).tolist()
        if best_loss < current_loss:
            return best, True, best_loss
        return slots, False, current_loss

    def run(self, progress: Progress = silent) -> SearchResult:
        cfg = self.config
        result = SearchResult(candidates=[])
        total = cfg.restarts * cfg.rounds
        for restart in range(cfg.restarts):
            if int(self.allowed.sum()) <= cfg.slots:
                break
            slots = self._random_slots()
            dev = self._scored_sentences(cfg.dev_sentences)
            recheck = self._scored_sentences(cfg.recheck_sentences)
            accepted, loss = 0, float("nan")
            for rnd in range(cfg.rounds):
                slots, changed, loss = self._round(slots, dev, recheck)
                accepted += int(changed)
                words = ", ".join(self._word(t) for t in slots.tolist())
                progress("search", (restart * cfg.rounds + rnd + 1) / total,
                         f"restart {restart + 1}/{cfg.restarts} round {rnd + 1}/{cfg.rounds}: {words}")
            tokens = slots.tolist()
            result.restarts.append(RestartResult(tokens=tokens, loss=loss, accepted_swaps=accepted))
            result.candidates.extend(t for t in tokens if t not in result.candidates)
            self.allowed[slots] = False  # later restarts look elsewhere
        return result

    def _word(self, token_id: int) -> str:
        return self.encoder.tokenizer.convert_ids_to_tokens(int(token_id))
