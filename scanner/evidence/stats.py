"""Per-candidate statistics of features with a trigger inserted, in the model's own clean scale.

One meaning of `shift` everywhere (verdict, purification, monitor, attack quality): the root-mean-square over
feature dimensions of the standardized difference (f(x+w) - f(x)) / sigma_clean, averaged over sentences
(`rms_shift` per sentence). sigma_clean is the per-dimension spread of the model's clean features (`CleanStats`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

PAPER_CLEAN_COS = 0.4
PAPER_POISON_COS = 0.9


@dataclass
class CleanStats:
    """Per-dimension mean and spread of clean features: the model's own scale."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, features: torch.Tensor) -> CleanStats:
        mean = features.mean(0)
        std = features.std(0)
        floor = std.mean().clamp_min(1e-12) * 1e-3
        return cls(mean=mean, std=std.clamp_min(floor))

    def standardize(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean) / self.std


def rms_shift(diff: torch.Tensor) -> torch.Tensor:
    """[..., d] standardized differences -> [...] root mean square over the feature dimensions."""
    return diff.norm(dim=-1) / math.sqrt(diff.shape[-1])


def sentence_shifts(stats: CleanStats, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[N] per-sentence shift between raw features a and b [N, d] in the clean scale of `stats`."""
    return rms_shift((a - b) / stats.std)


@dataclass
class TriggerStats:
    """Evidence for one candidate trigger (a token or a multi-piece word) on the statistics sentences."""

    tokens: list[int]
    shift: float  # mean RMS standardized shift of f(x) when inserted
    poison_cos: float  # mean pairwise cos of standardized f(x+w) across sentences (consistency)
    diff_cos: float  # mean pairwise cos of the shift vectors f(x+w)-f(x) (same direction everywhere)
    raw_clean_cos: float  # paper: mean cos(f(x), f(x+w))
    raw_poison_cos: float  # paper: mean pairwise cos(f(x_a+w), f(x_b+w))
    collapse: float  # -log(spread of standardized f(x+w) across sentences / clean spread): 0 keeps the context
    direction: torch.Tensor = field(repr=False)  # unit mean standardized shift: the trigger's effect

    @property
    def paper_rule(self) -> bool:
        return self.raw_clean_cos < PAPER_CLEAN_COS and self.raw_poison_cos > PAPER_POISON_COS


def mean_pairwise_cos(x: torch.Tensor) -> torch.Tensor:
    """[U, D, d] -> [U]: mean cosine over distinct pairs within each group."""
    z = F.normalize(x, dim=-1)
    n = z.shape[1]
    total = (z.sum(1) ** 2).sum(-1)  # sum over all ordered pairs incl. self
    return (total - n) / max(n * (n - 1), 1)


def collapse_scores(zc: torch.Tensor, zp: torch.Tensor) -> torch.Tensor:
    """zc [D, d] standardized clean features, zp [U, D, d] the same sentences with trigger u -> [U]:
    -log(mean squared distance of poisoned outputs from their centroid / the same for clean outputs)."""
    clean_spread = ((zc - zc.mean(0)) ** 2).sum(-1).mean().clamp_min(1e-12)
    spread = ((zp - zp.mean(1, keepdim=True)) ** 2).sum(-1).mean(1)
    return -torch.log((spread / clean_spread).clamp_min(1e-12))


def trigger_stats(
    clean: torch.Tensor, poisoned: torch.Tensor, stats: CleanStats, triggers: list[list[int]]
) -> list[TriggerStats]:
    """clean [D, d] raw features, poisoned [U, D, d] raw features of the same sentences with trigger u."""
    zc = stats.standardize(clean)
    zp = stats.standardize(poisoned)
    diff = zp - zc.unsqueeze(0)
    dim = clean.shape[-1]
    shift = diff.norm(dim=-1).mean(1) / math.sqrt(dim)  # = rms_shift(diff).mean(1), in this rounding order
    poison_cos = mean_pairwise_cos(zp)
    diff_cos = mean_pairwise_cos(diff)
    raw_clean = F.cosine_similarity(poisoned, clean.unsqueeze(0), dim=-1).mean(1)
    raw_poison = mean_pairwise_cos(poisoned)
    collapse = collapse_scores(zc, zp)
    direction = F.normalize(diff.mean(1), dim=-1)
    return [
        TriggerStats(
            tokens=triggers[u],
            shift=float(shift[u]),
            poison_cos=float(poison_cos[u]),
            diff_cos=float(diff_cos[u]),
            raw_clean_cos=float(raw_clean[u]),
            raw_poison_cos=float(raw_poison[u]),
            collapse=float(collapse[u]),
            direction=direction[u].cpu(),
        )
        for u in range(len(triggers))
    ]
