"""Calibrated verdicts: the shipped calibration (P(backdoored) from the best score against the per-model null) and
look-alike grouping.

METHOD.md section 3: raw cosine thresholds (the paper's rule) fail on real encoders, so each candidate is compared
with random rare tokens inserted the same way into the same model (scanner.evidence), on two effects a backdoor
trigger has: it moves f(x) (the standardized shift) and it makes f(x) forget the context (collapse: the poisoned
outputs' spread across sentences against the clean spread). Either can carry the evidence: on the real 6-layer
MiniLM a planted POR trigger moved f(x) only ~3.5x as far as random tokens did (robust z 4.2, below significance),
but its outputs lost 99.4% of their context spread (collapse z 14; the best find in the clean model: 2.2).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scanner.evidence.stats import TriggerStats

CALIBRATION_FILE = Path(__file__).parent / "data" / "calibration.json"


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
    return Calibration(
        slope=float(data["slope"]), midpoint=float(data["midpoint"]), provenance=str(data.get("provenance", ""))
    )


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


def group_lookalikes(
    items: list[TriggerStats],
    score: Callable[[TriggerStats], float],
    similarity: Callable[[TriggerStats, TriggerStats], float],
    strong_fraction: float = 0.5,
) -> list[Group]:
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
