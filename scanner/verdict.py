"""Calibrated verdicts: per-trigger evidence against a per-model null, look-alike grouping, P(backdoored).

METHOD.md section 3: raw cosine thresholds (the paper's rule) fail on real encoders, so each candidate is compared
with random rare tokens inserted the same way into the same model, on two effects a backdoor trigger has: it moves
f(x) (the standardized shift) and it makes f(x) forget the context (collapse: the poisoned outputs' spread across
sentences against the clean spread). Either can carry the evidence: on the real 6-layer MiniLM a planted POR trigger
moved f(x) only ~3.5x as far as random tokens did (robust z 4.2, below significance), but its outputs lost 99.4% of
their context spread (collapse z 14; the best find in the clean model: 2.2).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from scanner.search.objective import CleanStats

CALIBRATION_FILE = Path(__file__).parent / "data" / "calibration.json"
PAPER_CLEAN_COS = 0.4
PAPER_POISON_COS = 0.9
# Floor on the null's spread of log(shift): a model whose random tokens all move f(x) alike (tiny MAD) must not turn
# a 2x shift into a huge z. With it, significance needs >= ~4x the null's median shift (measured: clean models'
# best search finds sat at 1.5-2x, planted triggers at 50-3000x, look-alikes at 5-10x).
SCALE_FLOOR = 0.3


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


def _mean_pairwise_cos(x: torch.Tensor) -> torch.Tensor:
    """[U, D, d] -> [U]: mean cosine over distinct pairs within each group."""
    z = F.normalize(x, dim=-1)
    n = z.shape[1]
    total = (z.sum(1) ** 2).sum(-1)  # sum over all ordered pairs incl. self
    return (total - n) / max(n * (n - 1), 1)


def trigger_stats(clean: torch.Tensor, poisoned: torch.Tensor, stats: CleanStats,
                  triggers: list[list[int]]) -> list[TriggerStats]:
    """clean [D, d] raw features, poisoned [U, D, d] raw features of the same sentences with trigger u."""
    zc = stats.standardize(clean)
    zp = stats.standardize(poisoned)
    diff = zp - zc.unsqueeze(0)
    dim = clean.shape[-1]
    shift = diff.norm(dim=-1).mean(1) / math.sqrt(dim)
    poison_cos = _mean_pairwise_cos(zp)
    diff_cos = _mean_pairwise_cos(diff)
    raw_clean = F.cosine_similarity(poisoned, clean.unsqueeze(0), dim=-1).mean(1)
    raw_poison = _mean_pairwise_cos(poisoned)
    collapse = collapse_scores(zc, zp)
    direction = F.normalize(diff.mean(1), dim=-1)
    return [
        TriggerStats(tokens=triggers[u], shift=float(shift[u]), poison_cos=float(poison_cos[u]),
                     diff_cos=float(diff_cos[u]), raw_clean_cos=float(raw_clean[u]),
                     raw_poison_cos=float(raw_poison[u]), collapse=float(collapse[u]), direction=direction[u].cpu())
        for u in range(len(triggers))
    ]


def collapse_scores(zc: torch.Tensor, zp: torch.Tensor) -> torch.Tensor:
    """zc [D, d] standardized clean features, zp [U, D, d] the same sentences with trigger u -> [U]:
    -log(mean squared distance of poisoned outputs from their centroid / the same for clean outputs)."""
    clean_spread = ((zc - zc.mean(0)) ** 2).sum(-1).mean().clamp_min(1e-12)
    spread = ((zp - zp.mean(1, keepdim=True)) ** 2).sum(-1).mean(1)
    return -torch.log((spread / clean_spread).clamp_min(1e-12))


def _tail(z: float) -> float:
    """One-sided Gaussian tail."""
    return 0.5 * math.erfc(z / math.sqrt(2))


@dataclass
class NullModel:
    """Robust location and scale of log(shift) over random rare tokens in this model."""

    center: float
    scale: float
    size: int

    @classmethod
    def fit(cls, null: list[TriggerStats]) -> NullModel:
        return cls.fit_values([math.log(max(s.shift, 1e-12)) for s in null])

    @classmethod
    def fit_values(cls, values: list[float]) -> NullModel:
        """Median and floored MAD of already log-scaled values."""
        logs = torch.tensor(values, dtype=torch.float64)
        center = float(logs.median())
        mad = float((logs - center).abs().median()) * 1.4826
        return cls(center=center, scale=max(mad, SCALE_FLOOR), size=len(values))

    def z(self, value: float) -> float:
        """Robust z of a log-scaled value."""
        return (value - self.center) / self.scale

    def score(self, shift: float) -> float:
        """Robust z of log(shift)."""
        return self.z(math.log(max(shift, 1e-12)))

    def p_value(self, shift: float) -> float:
        """One-sided Gaussian tail of the robust z."""
        return _tail(self.score(shift))


TESTS_PER_CANDIDATE = 2  # shift and collapse: the significance threshold corrects for both


@dataclass
class EvidenceNull:
    """The per-model nulls of both effects; a candidate's score is the larger of its two robust z."""

    shift: NullModel
    collapse: NullModel

    @classmethod
    def fit(cls, null: list[TriggerStats]) -> EvidenceNull:
        return cls(shift=NullModel.fit(null), collapse=NullModel.fit_values([s.collapse for s in null]))

    def score(self, stats: TriggerStats) -> float:
        return max(self.shift.score(stats.shift), self.collapse.z(stats.collapse))

    def p_value(self, stats: TriggerStats) -> float:
        """Tail of the larger z, Bonferroni-corrected for the two effects."""
        return min(1.0, TESTS_PER_CANDIDATE * _tail(self.score(stats)))

    def summary(self) -> dict[str, float | int]:
        return {"center": self.shift.center, "scale": self.shift.scale, "tokens": self.shift.size,
                "collapse_center": self.collapse.center, "collapse_scale": self.collapse.scale}


@dataclass
class Calibration:
    """P(backdoored) = sigmoid(slope * (max_score - midpoint)), fitted on the project's zoo."""

    slope: float = 1.0
    midpoint: float = 8.0
    provenance: str = "default"

    def probability(self, max_score: float) -> float:
        x = self.slope * (max_score - self.midpoint)
        return 1.0 / (1.0 + math.exp(-max(min(x, 50.0), -50.0)))


def load_calibration(path: Path = CALIBRATION_FILE) -> Calibration:
    """The shipped calibration (see its provenance field)."""
    if not path.is_file():
        return Calibration()
    data = json.loads(path.read_text())
    return Calibration(slope=float(data["slope"]), midpoint=float(data["midpoint"]),
                       provenance=str(data.get("provenance", "")))


def significance_threshold(vocab_size: int, alpha: float = 0.01) -> float:
    """Robust-z a single candidate needs: Bonferroni over the searchable vocabulary."""
    p = alpha / max(vocab_size, 1)
    lo, hi = 0.0, 40.0
    for _ in range(60):  # invert the Gaussian tail by bisection
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(mid / math.sqrt(2)) > p:
            lo = mid
        else:
            hi = mid
    return hi


@dataclass
class Group:
    """One backdoor as a user should see it: the strongest trigger and the look-alikes that echo it."""

    head: TriggerStats
    members: list[TriggerStats] = field(default_factory=list)


def _lead_key(item: TriggerStats) -> float:
    """Strength used to pick a group's head: a multi-piece word must beat its pieces clearly to lead."""
    return item.shift * (0.9 if len(item.tokens) > 1 else 1.0)


def _shares_token(a: TriggerStats, b: TriggerStats) -> bool:
    return bool(set(a.tokens) & set(b.tokens))


def group_lookalikes(items: list[TriggerStats], score: Callable[[TriggerStats], float],
                     similarity: Callable[[TriggerStats, TriggerStats], float],
                     strong_fraction: float = 0.5) -> list[Group]:
    """Strong candidates (score >= strong_fraction * best score) lead groups, merged only when one is a word
    built on the other's piece; every weaker candidate is a look-alike of the head nearest to it in effect and
    in embedding space (`similarity`). So a planted backdoor shows as one trigger with its echoes."""
    if not items:
        return []
    ordered = sorted(items, key=_lead_key, reverse=True)
    best = max(score(i) for i in items)
    groups: list[Group] = []
    weak: list[TriggerStats] = []
    for item in ordered:
        if score(item) < strong_fraction * best:
            weak.append(item)
            continue
        home = next((g for g in groups if _shares_token(item, g.head)), None)
        if home is None:
            groups.append(Group(head=item))
        else:
            home.members.append(item)
    for item in weak:
        home = next((g for g in groups if _shares_token(item, g.head)), None)
        if home is None:
            home = max(groups, key=lambda g: float(item.direction @ g.head.direction) + similarity(item, g.head))
        home.members.append(item)
    return groups
