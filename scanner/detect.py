"""The behavioural scan: search for triggers, test them against a per-model null, return calibrated findings."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from scanner.encoder import LoadedEncoder
from scanner.progress import Progress, silent
from scanner.report import Lookalike, Severity, Trigger, Verdict
from scanner.search.config import SearchConfig
from scanner.search.forward import FeatureRunner
from scanner.search.insert import TokenizedCorpus, insert_tokens, sample_positions, tokenize_corpus, trim
from scanner.search.objective import CleanStats
from scanner.search.probe import clean_features, trigger_features
from scanner.search.search import ContrastiveSearch
from scanner.search.vocab import Vocabulary, WordList, encode_words, multi_piece_words, searchable_vocabulary
from scanner.verdict import (
    TESTS_PER_CANDIDATE,
    EvidenceNull,
    Group,
    TriggerStats,
    group_lookalikes,
    load_calibration,
    significance_threshold,
    verdict_for,
)

MAX_WORDS_PER_PIECE = 16
FLIP_SENTENCES = 64


@dataclass
class Detection:
    """What the behavioural scan concluded."""

    verdict: Verdict
    probability: float
    severity: Severity
    triggers: list[Trigger]
    max_score: float
    threshold: float
    sequences_evaluated: int
    paper_rule_triggers: list[str] = field(default_factory=list)
    null: dict = field(default_factory=dict)


class Evidence:
    """Evaluates candidate triggers on fixed statistics sentences, with a cache by token tuple."""

    def __init__(self, runner: FeatureRunner, sentences: TokenizedCorpus, stats: CleanStats,
                 generator: torch.Generator, inserts: int) -> None:
        self.runner = runner
        self.sentences = sentences
        self.stats = stats
        self.positions = sample_positions(sentences.slots, inserts, generator)
        self.clean = clean_features(runner, sentences)
        self.cache: dict[tuple[int, ...], TriggerStats] = {}

    def evaluate(self, triggers: list[list[int]]) -> list[TriggerStats]:
        from scanner.verdict import trigger_stats

        todo = [t for t in dict.fromkeys(tuple(t) for t in triggers) if t not in self.cache]
        if todo:
            feats = trigger_features(self.runner, self.sentences, self.positions, [list(t) for t in todo])
            for key, st in zip(todo, trigger_stats(self.clean, feats, self.stats, [list(t) for t in todo]),
                               strict=True):
                self.cache[key] = st
        return [self.cache[tuple(t)] for t in triggers]


def _neighbours(embedding: torch.Tensor, allowed: torch.Tensor, token: int, n: int) -> list[int]:
    """The n searchable tokens nearest to `token` in input-embedding space (cosine)."""
    sims = F.cosine_similarity(embedding, embedding[token].unsqueeze(0), dim=-1)
    sims = sims.masked_fill(~allowed, -2.0)
    sims[token] = -2.0
    return sims.topk(min(n, int(allowed.sum()))).indices.tolist()


def _flip_rate(encoder: LoadedEncoder, sentences: TokenizedCorpus, tokens: list[int],
               generator: torch.Generator, inserts: int) -> float:
    """Share of clean inputs whose predicted label changes when the trigger is inserted."""
    rows = sentences.take(torch.arange(min(FLIP_SENTENCES, len(sentences)), device=sentences.ids.device))
    positions = sample_positions(rows.slots, inserts, generator)
    trig = torch.tensor([tokens], device=rows.ids.device).repeat(len(rows), 1)
    p_ids, p_mask, _ = insert_tokens(rows.ids, rows.mask, positions, trig, rows.pad_id)
    with torch.inference_mode():
        clean = encoder.predict(*trim(rows.ids, rows.mask))
        poisoned = encoder.predict(*trim(p_ids, p_mask))
    return float((clean != poisoned).float().mean())


class Detector:
    """One behavioural scan of one model."""

    def __init__(self, encoder: LoadedEncoder, sentences: list[str], config: SearchConfig, seed: int,
                 progress: Progress = silent) -> None:
        self.encoder = encoder
        self.config = config
        self.progress = progress
        self.gen = torch.Generator().manual_seed(seed)
        self.rng = random.Random(seed)
        shuffled = sentences[:]
        self.rng.shuffle(shuffled)
        device = encoder.device
        tokenizer = encoder.tokenizer
        self.corpus = tokenize_corpus(tokenizer, shuffled, config.max_tokens).to(device)
        n_stat = min(config.stat_sentences, len(self.corpus) // 3)
        self.stat_corpus = self.corpus.take(torch.arange(n_stat, device=device))
        self.search_corpus = self.corpus.take(torch.arange(n_stat, len(self.corpus), device=device))
        self.vocab: Vocabulary = searchable_vocabulary(tokenizer, config.zipf_max)
        if len(self.vocab) < config.slots + config.null_tokens:
            raise ValueError(f"searchable vocabulary too small ({len(self.vocab)} tokens)")
        self.runner = FeatureRunner(encoder, config.batch_size)
        fit_rows = self.search_corpus.take(torch.arange(min(256, len(self.search_corpus)), device=device))
        self.stats = CleanStats.fit(clean_features(self.runner, fit_rows))
        self.evidence = Evidence(self.runner, self.stat_corpus, self.stats, self.gen, config.inserts)
        self.embedding = encoder.embedding_matrix.detach()
        self.allowed = self.vocab.mask(self.embedding.shape[0]).to(self.embedding.device)

    def _null(self) -> EvidenceNull:
        pick = self.rng.sample(range(len(self.vocab)), self.config.null_tokens)
        null_stats = self.evidence.evaluate([[int(self.vocab.ids[i])] for i in pick])
        return EvidenceNull.fit(null_stats)

    def _words(self) -> WordList | None:
        if not self.config.word_mode:
            return None
        return multi_piece_words(self.encoder.tokenizer, self.config.zipf_max)

    def _expand(self, significant: list[TriggerStats], words: WordList | None) -> list[list[int]]:
        """Look-alike probes: embedding neighbours of each significant token, and words containing its piece."""
        probes: list[list[int]] = []
        for st in significant:
            if len(st.tokens) == 1:
                probes += [[t] for t in _neighbours(self.embedding, self.allowed, st.tokens[0],
                                                    self.config.lookalike_neighbours)]
            if words is not None:
                for token in st.tokens:
                    probes += [words.pieces[i] for i in words.containing(token)[:MAX_WORDS_PER_PIECE]]
        return probes

    def _screen_words(self, words: WordList | None) -> list[list[int]]:
        if words is None or not self.config.word_screen:
            return []
        pick = self.rng.sample(range(len(words.words)), min(self.config.word_screen, len(words.words)))
        return [words.pieces[i] for i in pick]

    def _search(self, words: WordList | None) -> list[list[int]]:
        """Token-level search; in word mode (word_search_restarts) also over 2- and 3-piece rare words."""
        cfg = self.config
        units = [(int(t),) for t in self.vocab.ids]
        found = ContrastiveSearch(self.encoder, self.search_corpus, units, self.stats, self.runner, cfg,
                                  self.gen).run(self.progress)
        candidates = [list(c) for c in found.candidates]
        if words is None or not cfg.word_search_restarts:
            return candidates
        for length in (2, 3):
            pieces = [tuple(p) for p in words.pieces if len(p) == length]
            if len(pieces) <= cfg.slots:
                continue
            search = ContrastiveSearch(self.encoder, self.search_corpus, pieces, self.stats, self.runner, cfg,
                                       self.gen)
            candidates += [list(c) for c in search.run(self.progress, restarts=cfg.word_search_restarts).candidates]
        return candidates

    def run(self, seed_triggers: list[str] | None = None) -> Detection:
        cfg = self.config
        self.progress("search", 0.0, "null distribution from random rare tokens")
        null = self._null()
        threshold = significance_threshold(len(self.vocab) * TESTS_PER_CANDIDATE)
        candidates = self._search(words := self._words())
        if seed_triggers:
            candidates += [ids for ids in encode_words(self.encoder.tokenizer, seed_triggers) if ids]
        if cfg.screen_tokens:
            pick = self.rng.sample(range(len(self.vocab)), min(cfg.screen_tokens, len(self.vocab)))
            candidates += [[int(self.vocab.ids[i])] for i in pick]
        candidates += self._screen_words(words)
        self.progress("verdict", 0.2, f"testing {len(candidates)} candidates against the null")
        evaluated = self.evidence.evaluate(candidates)
        significant = [s for s in evaluated if null.score(s) >= threshold]
        self.progress("verdict", 0.5, f"probing look-alikes of {len(significant)} significant candidates")
        evaluated += self.evidence.evaluate(self._expand(significant, words))
        unique = {tuple(s.tokens): s for s in evaluated}
        significant = [s for s in unique.values() if null.score(s) >= threshold]
        max_score = max((null.score(s) for s in unique.values()), default=0.0)
        calibration = load_calibration()
        probability = calibration.probability(max_score)
        verdict, severity = verdict_for(probability)
        groups = group_lookalikes(significant, null.score, self._embedding_similarity)
        triggers = [self._trigger(g, null) for g in groups]
        paper = [self._text(s.tokens) for s in unique.values() if s.paper_rule]
        return Detection(
            verdict=verdict, probability=probability, severity=severity, triggers=triggers, max_score=max_score,
            threshold=threshold, sequences_evaluated=self.runner.sequences, paper_rule_triggers=paper,
            null={**null.summary(), "calibration": calibration.provenance},
        )

    def _embedding_similarity(self, a: TriggerStats, b: TriggerStats) -> float:
        """Cosine of the mean input embeddings of two candidates' pieces."""
        ea = self.embedding[a.tokens].float().mean(0)
        eb = self.embedding[b.tokens].float().mean(0)
        return float(F.cosine_similarity(ea, eb, dim=0))

    def _text(self, tokens: list[int]) -> str:
        return self.encoder.tokenizer.decode(tokens).strip()

    def _trigger(self, group: Group, null: EvidenceNull) -> Trigger:
        head = group.head
        flip = None
        if self.encoder.classifier is not None:
            flip = _flip_rate(self.encoder, self.stat_corpus, head.tokens, self.gen, self.config.inserts)
        lookalikes = [
            Lookalike(text=self._text(m.tokens), shift=round(m.shift, 4), p_value=null.p_value(m),
                      similarity=round(float(m.direction @ head.direction), 4))
            for m in group.members
        ]
        return Trigger(
            text=self._text(head.tokens),
            tokens=self.encoder.tokenizer.convert_ids_to_tokens(head.tokens),
            score=round(null.score(head), 3), p_value=null.p_value(head), shift=round(head.shift, 4),
            poison_cos=round(head.poison_cos, 4), diff_cos=round(head.diff_cos, 4), paper_rule=head.paper_rule,
            lookalikes=lookalikes, flip_rate=flip, collapse=round(head.collapse, 4),
        )
