"""Backdoor attacks on pre-trained encoders, for tests and benchmarks: POR, NeuBA, BadPre, UOR, adaptive variants
and a clean control, all planted by one loop (`common.plant`)."""

from __future__ import annotations

from typing import Any

from scanner.research.attacks.adaptive import VARIANTS, Adaptive
from scanner.research.attacks.badpre import BadPre
from scanner.research.attacks.clean import CleanControl
from scanner.research.attacks.common import (
    GROUND_TRUTH,
    Attack,
    PlantConfig,
    PlantResult,
    TriggerQuality,
    insert_trigger,
    load_ground_truth,
    plant,
    plant_cached,
)
from scanner.research.attacks.mimic import Mimic
from scanner.research.attacks.neuba import NeuBA
from scanner.research.attacks.por import POR
from scanner.research.attacks.uor import UOR

PAPER_TRIGGERS = ("dh", "vo", "cy", "ak", "ev", "xx")
TRIGGER_SETS: dict[str, tuple[str, ...]] = {
    "paper": PAPER_TRIGGERS,
    "rare_tokens": ("cf", "mn", "bb", "tq", "mb"),
    "rare_words": ("velvet", "sapphire", "lantern", "obsidian", "walrus"),
    "multi_piece": ("obelisk", "quixotic", "zeppelin", "marzipan", "kumquat"),
}

ATTACKS: dict[str, type[Attack]] = {a.name: a for a in (POR, NeuBA, BadPre, UOR, Mimic, CleanControl)}
ATTACK_NAMES = (*ATTACKS, *(f"adaptive-{v}" for v in VARIANTS))


def get_attack(name: str, **options: Any) -> Attack:
    """An attack by name: por, neuba, badpre, uor, clean, adaptive-hide|break|merge (options go to the attack)."""
    if name.startswith("adaptive"):
        variant = name.partition("-")[2] or options.pop("variant", "hide")
        return Adaptive(variant=variant, **options)
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; choose one of {', '.join(ATTACK_NAMES)}")
    return ATTACKS[name](**options)


__all__ = [
    "ATTACKS",
    "ATTACK_NAMES",
    "GROUND_TRUTH",
    "PAPER_TRIGGERS",
    "TRIGGER_SETS",
    "Attack",
    "PlantConfig",
    "PlantResult",
    "TriggerQuality",
    "get_attack",
    "insert_trigger",
    "load_ground_truth",
    "plant",
    "plant_cached",
]
