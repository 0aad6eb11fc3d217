"""The per-model null: how far random rare tokens, inserted the same way into the same model, move its features.

A candidate is scored by robust z against it (median and floored MAD of log-shift; of collapse), never against a
fixed threshold (METHOD.md section 3: raw cosine thresholds fail on real encoders)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from scanner.evidence.stats import TriggerStats

# Floor on the null's spread of log(shift): a model whose random tokens all move f(x) alike (tiny MAD) must not turn
# a 2x shift into a huge z. With it, significance needs >= ~4x the null's median shift (measured: clean models'
# best search finds sat at 1.5-2x, planted triggers at 50-3000x, look-alikes at 5-10x).
SCALE_FLOOR = 0.3
TESTS_PER_CANDIDATE = 2  # shift and collapse: the significance threshold corrects for both


def tail(z: float) -> float:
    """One-sided Gaussian tail."""
    return 0.5 * math.erfc(z / math.sqrt(2))


@dataclass
class NullModel:
    """Robust location and scale of log(shift) (or of another already log-scaled value) over the null tokens."""

    center: float
    scale: float
    size: int

    @classmethod
    def fit(cls, null: Sequence[TriggerStats]) -> NullModel:
        return cls.fit_values([math.log(max(s.shift, 1e-12)) for s in null])

    @classmethod
    def fit_shifts(cls, shifts: Sequence[float]) -> NullModel:
        """From raw shifts (log-scaled here)."""
        return cls.fit_values([math.log(max(float(s), 1e-12)) for s in shifts])

    @classmethod
    def fit_values(cls, values: Sequence[float]) -> NullModel:
        """Median and floored MAD of already log-scaled values."""
        logs = torch.tensor(list(values), dtype=torch.float64)
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
        return tail(self.score(shift))

    def summary(self) -> dict[str, float | int]:
        return {"center": self.center, "scale": self.scale, "size": self.size}


@dataclass
class EvidenceNull:
    """The per-model nulls of both effects; a candidate's score is the larger of its two robust z."""

    shift: NullModel
    collapse: NullModel
    samples: tuple[float, ...] = ()  # the null tokens' own scores (for the report's picture)

    @classmethod
    def fit(cls, null: Sequence[TriggerStats]) -> EvidenceNull:
        fitted = cls(shift=NullModel.fit(null), collapse=NullModel.fit_values([s.collapse for s in null]))
        fitted.samples = tuple(round(fitted.score(s), 3) for s in null)
        return fitted

    def score(self, stats: TriggerStats) -> float:
        return max(self.shift.score(stats.shift), self.collapse.z(stats.collapse))

    def p_value(self, stats: TriggerStats, tests: int = TESTS_PER_CANDIDATE) -> float:
        """Tail of the larger z, Bonferroni-corrected for the two effects (and `tests` beyond them)."""
        return min(1.0, tests * tail(self.score(stats)))

    def summary(self) -> dict[str, float | int]:
        return {
            "center": self.shift.center,
            "scale": self.shift.scale,
            "tokens": self.shift.size,
            "collapse_center": self.collapse.center,
            "collapse_scale": self.collapse.scale,
        }


def significance_threshold(tests: int, alpha: float = 0.01) -> float:
    """Robust z a single candidate needs: Bonferroni over `tests` (searchable vocabulary x effects x
    representations)."""
    p = alpha / max(tests, 1)
    lo, hi = 0.0, 40.0
    for _ in range(60):  # invert the Gaussian tail by bisection
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(mid / math.sqrt(2)) > p:
            lo = mid
        else:
            hi = mid
    return hi
