"""The monitor's feature check: does removing the matched words from an input move the representation more than
removing one random rare word does in this model? Text-level insertion builds the null (the monitor sees text)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from scanner.evidence.features import text_features
from scanner.evidence.insert import insert_words
from scanner.evidence.null import NullModel
from scanner.evidence.stats import CleanStats, sentence_shifts


class RemovalCheck:
    """Standardized shift of f(x) when words are removed, scored against a per-model null: the shift from
    inserting one random rare word (the scanner's searchable vocabulary) into clean sentences."""

    def __init__(
        self, encoder: Any, sentences: Sequence[str], words: Sequence[str], null_size: int = 128, seed: int = 0
    ) -> None:
        self.encoder = encoder
        rng = random.Random(seed)
        picked = [" ".join(s.split()[:30]) for s in rng.sample(list(sentences), min(len(sentences), 2 * null_size))]
        clean = text_features(encoder, picked)
        self.stats = CleanStats.fit(clean)
        picks = picked[:null_size]
        inserted = [insert_words(s, rng.choice(list(words)), rng, times=1) for s in picks]
        shifts = sentence_shifts(self.stats, text_features(encoder, inserted), clean[: len(picks)])
        self.null = NullModel.fit_shifts(shifts.tolist())

    def measure(self, text: str, stripped: str) -> tuple[float, float]:
        """(shift, robust z) of removing what `stripped` lacks from `text`."""
        feats = text_features(self.encoder, [text, stripped])
        shift = float(sentence_shifts(self.stats, feats[:1], feats[1:])[0])
        return shift, self.null.score(shift)
