"""Cached evidence: fixed sentences with fixed insertion positions, their clean features, and every candidate's
statistics against them, computed once per token tuple. The verdict, the look-alike probes, purification's
before/after measurement and the attack-quality code all evaluate candidates through an EvidenceSet."""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from scanner.evidence.features import FeatureRunner, clean_features, trigger_features
from scanner.evidence.insert import TokenizedCorpus, sample_positions
from scanner.evidence.null import EvidenceNull
from scanner.evidence.stats import CleanStats, TriggerStats, trigger_stats


class EvidenceSet:
    """Evaluates candidate triggers on fixed statistics sentences, with a cache by token tuple."""

    def __init__(
        self, runner: FeatureRunner, sentences: TokenizedCorpus, stats: CleanStats, positions: torch.Tensor
    ) -> None:
        self.runner = runner
        self.sentences = sentences
        self.stats = stats
        self.positions = positions
        self.clean = clean_features(runner, sentences)
        self.cache: dict[tuple[int, ...], TriggerStats] = {}

    @classmethod
    def sampled(
        cls,
        runner: FeatureRunner,
        sentences: TokenizedCorpus,
        stats: CleanStats,
        generator: torch.Generator,
        inserts: int,
    ) -> EvidenceSet:
        """Insertion positions drawn from `generator` (`inserts` per sentence, at word starts)."""
        return cls(runner, sentences, stats, sample_positions(sentences.slots, inserts, generator))

    def evaluate(self, triggers: Sequence[Sequence[int]]) -> list[TriggerStats]:
        todo = [t for t in dict.fromkeys(tuple(t) for t in triggers) if t not in self.cache]
        if todo:
            feats = trigger_features(self.runner, self.sentences, self.positions, [list(t) for t in todo])
            for key, st in zip(
                todo, trigger_stats(self.clean, feats, self.stats, [list(t) for t in todo]), strict=True
            ):
                self.cache[key] = st
        return [self.cache[tuple(t)] for t in triggers]

    def null(self, ids: Sequence[Sequence[int]]) -> EvidenceNull:
        """The per-model null of these (random rare) candidates."""
        return EvidenceNull.fit(self.evaluate(ids))


def null_tokens(
    vocab_ids: Sequence[int], n: int, rng: random.Random, exclude: set[tuple[int, ...]] | None = None
) -> list[list[int]]:
    """n random single tokens of the searchable vocabulary (without `exclude`): the null's candidates."""
    pool = [int(i) for i in vocab_ids if (int(i),) not in (exclude or set())]
    return [[i] for i in rng.sample(pool, min(n, len(pool)))]


class JointEvidence:
    """Evidence for several representations from one forward a sequence: the joint runner's features concatenate
    the representations, `stats[r]` is representation r's clean scale; each candidate is evaluated once and measured
    in every representation (`view(r)` is representation r's EvidenceView)."""

    def __init__(
        self, runner: FeatureRunner, sentences: TokenizedCorpus, stats: list[CleanStats], positions: torch.Tensor
    ) -> None:
        self.runner = runner
        self.sentences = sentences
        self.positions = positions
        self.clean = clean_features(runner, sentences)
        width = self.clean.shape[-1] // len(stats)
        self.slices = [slice(r * width, (r + 1) * width) for r in range(len(stats))]
        self.stats = stats
        self.cache: dict[tuple[int, ...], list[TriggerStats]] = {}

    def evaluate(self, triggers: Sequence[Sequence[int]]) -> list[list[TriggerStats]]:
        """Per representation, the statistics of each trigger ([representation][trigger])."""
        todo = [t for t in dict.fromkeys(tuple(t) for t in triggers) if t not in self.cache]
        if todo:
            lists = [list(t) for t in todo]
            feats = trigger_features(self.runner, self.sentences, self.positions, lists)
            per_view = [
                trigger_stats(self.clean[:, s], feats[..., s], stats, lists)
                for s, stats in zip(self.slices, self.stats, strict=True)
            ]
            for i, key in enumerate(todo):
                self.cache[key] = [view[i] for view in per_view]
        return [[self.cache[tuple(t)][r] for t in triggers] for r in range(len(self.slices))]

    def view(self, representation: int) -> EvidenceView:
        return EvidenceView(self, representation)


class EvidenceView:
    """One representation of a JointEvidence, with EvidenceSet's evaluate and null."""

    def __init__(self, joint: JointEvidence, representation: int) -> None:
        self.joint = joint
        self.index = representation

    def evaluate(self, triggers: Sequence[Sequence[int]]) -> list[TriggerStats]:
        return self.joint.evaluate(triggers)[self.index]

    def null(self, ids: Sequence[Sequence[int]]) -> EvidenceNull:
        return EvidenceNull.fit(self.evaluate(ids))
