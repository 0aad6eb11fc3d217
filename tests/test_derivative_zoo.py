"""Issue 11's derivative zoo: the recipes and the list of fine-tunes (no training here: that is the benchmark)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.research.zoo import (
    DERIVED_RECIPES,
    DERIVED_TASKS,
    ZooModel,
    derivative_jobs,
    derivative_of,
    recipe_config,
    result_cache_name,
    scan_base,
)


def _model(name: str, attack: str, backdoored: bool, family: str = "minilm-l2", derived: bool = False) -> ZooModel:
    return ZooModel(
        name, Path("/nonexistent") / name, family, attack, ("cf",) if backdoored else (), backdoored, derived
    )


def test_recipes_are_what_their_names_say():
    short = recipe_config("steps200", "movie", 3000)
    assert short.steps == 200 and not short.freeze_encoder and short.task == "movie"
    epochs = recipe_config("epochs3", "news", 3000)
    assert epochs.steps * epochs.batch_size >= 3 * 3000 > (epochs.steps - 1) * epochs.batch_size
    frozen = recipe_config("frozen", "spam", 3000)
    assert frozen.freeze_encoder and frozen.head_lr > short.head_lr
    with pytest.raises(ValueError, match="unknown recipe"):
        recipe_config("epochs30", "movie", 3000)


def test_jobs_cover_every_clean_cell_and_rotate_backdoored_tasks():
    zoo = [
        _model("l2-untouched", "none", False),
        _model("l2-clean-s0-0", "clean", False),  # a clean control: not a derivative source
        _model("l2-por", "por", True),
        _model("l2-neuba", "neuba", True),
        _model("l2-failed", "uor", True),  # its plant did not take: no derivatives
        _model("bert-por", "por", True, family="bert"),  # not a MiniLM
        _model("l2-por-movie", "por", True, derived=True),  # already a derivative
    ]
    jobs = derivative_jobs(zoo, DERIVED_TASKS, DERIVED_RECIPES, took=lambda m: m.name != "l2-failed")
    clean = [(t, r) for m, t, r in jobs if not m.backdoored]
    assert sorted(clean) == sorted((t, r) for t in DERIVED_TASKS for r in DERIVED_RECIPES)
    backdoored = [(m.name, t, r) for m, t, r in jobs if m.backdoored]
    assert {n for n, _, _ in backdoored} == {"l2-por", "l2-neuba"}
    assert len(backdoored) == 2 * len(DERIVED_RECIPES)
    for name in ("l2-por", "l2-neuba"):
        assert sorted(r for n, _, r in backdoored if n == name) == sorted(DERIVED_RECIPES)
    # the tasks rotate, so two sources with three recipes each reach all four tasks
    assert {t for _, t, _ in backdoored} == set(DERIVED_TASKS)

    wider = derivative_jobs(zoo, DERIVED_TASKS, ("steps200",), tasks_per_source=2, took=lambda m: True)
    assert len({t for m, t, _ in wider if m.name == "l2-por"}) == 2


def test_a_derivative_keeps_its_source_as_base_and_lineage_scans_are_cached_apart():
    source = _model("l2-por", "por", True)
    derived = derivative_of(source, "movie-steps200", Path("/nonexistent/l2-por-movie-steps200"))
    assert derived.name == "l2-por-movie-steps200" and derived.derived and derived.backdoored
    assert derived.base == source.path and derived.triggers == source.triggers
    # only a derivative, and only with lineage on, is scanned against a base
    assert scan_base(derived, lineage=True) == source.path
    assert scan_base(derived, lineage=False) is None and scan_base(source, lineage=True) is None
    plain, with_base = (result_cache_name(derived, "quick", lineage) for lineage in (False, True))
    assert plain != with_base and source.path.name in with_base
    assert result_cache_name(source, "quick", True) == result_cache_name(source, "quick", False)
