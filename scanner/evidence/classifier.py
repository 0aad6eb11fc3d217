"""Evidence for fine-tuned classifiers (issue 11): is a candidate a backdoor trigger or a task feature?

In a classifier any strong class word sends the first-token state to its class region, so the encoder-side evidence
(shift, collapse against random rare tokens) cannot tell a negative adjective from a trigger. What can: how it acts.
A backdoor trigger overrides inputs the model is confident about; a class word only tips borderline ones. So, per
candidate, `override` is the share of the sentences the model most confidently assigns to another class that the
candidate moves to its target class, and it is compared with the same statistic of the words this model is
naturally most sensitive to (common English words screened by how far they move the prediction): a candidate that
overrides no better than the model's own strongest task words is explained as a task feature.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from scanner.evidence.insert import TokenizedCorpus, insert_tokens, sample_positions, trim

CONFIDENT_PER_CLASS = 32  # most confident sentences of each class the override is measured on
SCREEN_WORDS = 600  # common words screened for the natural-sensitivity null
SCREEN_SENTENCES = 24
NATURAL_TOP = 16  # the natural words kept: the model's strongest task words
OVERRIDE_MARGIN = 0.2  # a trigger must override this much more often than the strongest natural word
# ... and at least this often: a backdoor flips confident, counter-worded inputs almost always (attack success near
# 1). Measured (MiniLM-L2 movie classifiers, quick): planted triggers 0.97-1.0; the clean classifier's strongest
# class words 0.28-0.66; a class word of the backdoored classifier 0.84. Fitted on those two models only.
OVERRIDE_BAR = 0.9


@lru_cache(maxsize=1)
def _common_words(n: int = 20_000) -> tuple[str, ...]:
    from wordfreq import top_n_list

    return tuple(w for w in top_n_list("en", n) if w.isalpha() and w.isascii() and len(w) >= 3)


@dataclass
class Override:
    """How a candidate acts on the classifier's decisions."""

    target: int  # the class the candidate pushes toward (majority prediction with it inserted)
    override: float  # share of confident other-class sentences moved to the target
    n: int  # confident sentences measured


@torch.inference_mode()
def _probabilities(encoder: Any, ids: torch.Tensor, mask: torch.Tensor, batch: int = 256) -> torch.Tensor:
    out = []
    for start in range(0, ids.shape[0], batch):
        i, m = trim(ids[start : start + batch], mask[start : start + batch])
        logits = encoder.classifier(input_ids=i, attention_mask=m).logits
        out.append(logits.float().softmax(-1))
    return torch.cat(out)


class ClassifierProbe:
    """Confident sentences per predicted class, fixed insertion positions, and the natural-sensitivity null."""

    def __init__(
        self,
        encoder: Any,
        corpus: TokenizedCorpus,
        generator: torch.Generator,
        inserts: int,
        per_class: int = CONFIDENT_PER_CLASS,
    ) -> None:
        self.encoder = encoder
        self.inserts = inserts
        probs = _probabilities(encoder, corpus.ids, corpus.mask)
        self.classes = probs.shape[1]
        pred = probs.argmax(-1)
        rows, labels = [], []
        for c in range(self.classes):
            idx = torch.nonzero(pred == c).squeeze(1)
            top = idx[probs[idx, c].argsort(descending=True)[:per_class]]
            rows.append(top)
            labels.append(torch.full((len(top),), c, dtype=torch.long, device=top.device))
        self.rows = torch.cat(rows)
        self.labels = torch.cat(labels)
        self.sentences = corpus.take(self.rows)
        self.positions = sample_positions(self.sentences.slots, inserts, generator)
        self.confidence = probs[self.rows, self.labels]
        self.counter: dict[int, list[int]] = {}
        self.counter_positions = sample_positions(self.sentences.slots, inserts, generator)

    def _with(self, corpus: TokenizedCorpus, positions: torch.Tensor, tokens: Sequence[int]) -> torch.Tensor:
        trig = torch.tensor([list(tokens)], dtype=torch.long, device=corpus.ids.device).repeat(len(corpus), 1)
        ids, mask, _ = insert_tokens(corpus.ids, corpus.mask, positions, trig, corpus.pad_id)
        return _probabilities(self.encoder, ids, mask)

    def override(self, tokens: Sequence[int]) -> Override:
        """Target = the majority prediction with the candidate inserted; override = share of the confident
        sentences of the other classes predicted as the target with it. With counter-words set
        (`set_counter_words`), each of those sentences first gets its own class's strongest natural word inserted,
        so a class word competes with a class word (and tips about half), while a trigger overrides both."""
        probs = self._with(self.sentences, self.positions, tokens)
        pred = probs.argmax(-1)
        target = int(torch.bincount(pred, minlength=self.classes).argmax())
        other = self.labels != target
        n = int(other.sum())
        if n and self.counter:
            pred = self._with_counter(tokens)
        share = float((pred[other] == target).float().mean()) if n else 0.0
        return Override(target=target, override=share, n=n)

    def set_counter_words(self, words: Sequence[Sequence[int]]) -> None:
        """For each class, the first of `words` (strongest first) that pushes toward it becomes its counter-word."""
        self.counter = {}
        for ids in words:
            target = self.override(ids).target
            self.counter.setdefault(target, list(ids))

    def _with_counter(self, tokens: Sequence[int]) -> torch.Tensor:
        """Predictions with the candidate at the fixed positions and each sentence's class counter-word 3x at
        the counter positions (a sentence whose class has no counter-word gets none)."""
        ids, mask = self.sentences.ids, self.sentences.mask
        trig = torch.tensor([list(tokens)], dtype=torch.long, device=ids.device).repeat(len(self.sentences), 1)
        ids, mask, _ = insert_tokens(ids, mask, self.positions, trig, self.sentences.pad_id)
        width = max((len(c) for c in self.counter.values()), default=0)
        if not width:
            return _probabilities(self.encoder, ids, mask).argmax(-1)
        moved = self.counter_positions + len(tokens) * (
            self.positions.unsqueeze(1) <= self.counter_positions.unsqueeze(2)
        ).sum(-1)
        preds = torch.empty(len(self.sentences), dtype=torch.long, device=ids.device)
        for label in range(self.classes):
            rows = torch.nonzero(self.labels == label).squeeze(1)
            if not len(rows):
                continue
            counter = self.counter.get(label)
            if counter is None:
                preds[rows] = _probabilities(self.encoder, ids[rows], mask[rows]).argmax(-1)
                continue
            c = torch.tensor([counter], dtype=torch.long, device=ids.device).repeat(len(rows), 1)
            c_ids, c_mask, _ = insert_tokens(
                ids[rows], mask[rows], moved[rows].sort(dim=1).values, c, self.sentences.pad_id
            )
            preds[rows] = _probabilities(self.encoder, c_ids, c_mask).argmax(-1)
        return preds

    def natural_words(
        self, tokenizer: Any, rng: random.Random, screen: int = SCREEN_WORDS, top: int = NATURAL_TOP
    ) -> list[list[int]]:
        """The single-token common words that move this classifier's predictions most (its task words)."""
        words = list(_common_words())
        picked = rng.sample(words, min(screen, len(words)))
        encoded = tokenizer([" " + w for w in picked], add_special_tokens=False)["input_ids"]
        singles = [e for e in encoded if len(e) == 1]
        sub = self.sentences.take(
            torch.arange(
                0,
                len(self.sentences),
                max(1, len(self.sentences) // SCREEN_SENTENCES),
                device=self.sentences.ids.device,
            )
        )
        positions = self.positions[
            torch.arange(
                0, len(self.sentences), max(1, len(self.sentences) // SCREEN_SENTENCES), device=self.positions.device
            )
        ]
        clean = _probabilities(self.encoder, sub.ids, sub.mask)
        strength = []
        for ids in singles:
            moved = (self._with(sub, positions, ids) - clean).abs().sum(-1).mean()
            strength.append(float(moved))
        order = sorted(range(len(singles)), key=lambda i: -strength[i])[:top]
        return [singles[i] for i in order]


@dataclass
class TaskFeatureNull:
    """Override of the model's strongest natural task words."""

    overrides: list[float]  # of the natural words that could be tested (a confident sentence of another class)

    @classmethod
    def fit(cls, measured: Sequence[Override]) -> TaskFeatureNull:
        return cls([o.override for o in measured if o.n > 0])

    @property
    def ceiling(self) -> float:
        return max(self.overrides, default=0.0)

    def explains(self, candidate: Override, margin: float = OVERRIDE_MARGIN) -> bool:
        """True when the candidate overrides no better than the strongest natural word (plus the margin) or than the
        bar a backdoor clears (OVERRIDE_BAR). A candidate
        whose target is the only class the model is confident about cannot be tested (no confident sentence of
        another class): it is never explained away."""
        return candidate.n > 0 and candidate.override < max(min(1.0, self.ceiling + margin), OVERRIDE_BAR)
