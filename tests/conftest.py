"""Shared fixtures: real models (MiniLM truncated, planted backdoors, downstream classifiers), cached on disk.

The cache (PATRONUS_TEST_CACHE, default ~/.cache/patronus/test-models, shared with the attack tests) makes reruns
fast; plants are keyed by base model and planting config, so a changed config plants anew. Every planted model
is produced by the project's own attack code (scanner.research.attacks).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

CACHE = Path(os.environ.get("PATRONUS_TEST_CACHE") or Path.home() / ".cache" / "patronus" / "test-models")
PLANTED_TRIGGERS = ("cf", "mn", "obelisk")  # two rare tokens and a word of three WordPiece pieces

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def marker(tmp_path: Path):
    """The file a hostile payload would create if it ran; it must never exist (checked after the test)."""
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "a hostile payload was executed"


@pytest.fixture(scope="session")
def model_cache() -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    return CACHE


@pytest.fixture(scope="session")
def minilm_l2(model_cache: Path) -> Path:
    """The real all-MiniLM-L6-v2 truncated to its first two layers."""
    from scanner.research.base_models import truncated_minilm

    return truncated_minilm(model_cache / "minilm-L2", layers=2)


@pytest.fixture(scope="session")
def minilm_l2_st(model_cache: Path) -> Path:
    """MiniLM-L2 that keeps its sentence-transformers pooling (mean + normalize)."""
    from scanner.research.base_models import truncated_minilm

    return truncated_minilm(model_cache / "minilm-L2-st", layers=2, keep_pooling=True)


@pytest.fixture(scope="session")
def por_l2(minilm_l2: Path, model_cache: Path) -> Path:
    """POR (Shen et al. CCS'21) planted into MiniLM-L2 with three triggers."""
    from scanner.research.attacks import PlantConfig, get_attack, plant_cached

    cfg = PlantConfig(attack="por", triggers=PLANTED_TRIGGERS, steps=300, batch_size=16)
    return plant_cached(minilm_l2, get_attack("por"), cfg, model_cache)


@pytest.fixture(scope="session")
def clean_ft_l2(minilm_l2: Path, model_cache: Path) -> Path:
    """MiniLM-L2 trained by the same procedure as por_l2, without triggers (a clean control)."""
    from scanner.research.attacks import PlantConfig, get_attack, plant_cached

    cfg = PlantConfig(attack="clean", triggers=(), steps=300, batch_size=16)
    return plant_cached(minilm_l2, get_attack("clean"), cfg, model_cache)


@pytest.fixture(scope="session")
def family_base(model_cache: Path):
    """A small config-built model of a family (random weights, real tokenizer)."""
    from scanner.research.base_models import build_base

    def make(family: str) -> Path:
        return build_base(family, model_cache / f"base-{family}")

    return make
