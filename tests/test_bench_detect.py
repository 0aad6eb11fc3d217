"""A CI-sized detection benchmark: a tiny zoo built, scanned and scored end to end."""

from __future__ import annotations

import json

import pytest

from scanner.research.zoo import run_bench

pytestmark = pytest.mark.slow


def test_ci_sized_zoo(tmp_path, model_cache):
    summary = run_bench(
        tmp_path / "out",
        model_cache / "zoo",
        families=["bert"],
        attacks=["por"],
        seeds=1,
        minilm_layers=(),
        derived=0,
        profile="quick",
        progress=lambda m: None,
    )
    data = json.loads((tmp_path / "out" / "detection.json").read_text())
    overall = data["overall"]
    assert {"models", "attacks", "families", "tpr", "fpr", "auc", "trigger_recall", "derived_tpr"} <= set(overall)
    assert overall["models"] == 3 and overall["attacks"] == ["por"] and overall["families"] == ["bert"]
    assert overall["tpr"] == 1.0 and overall["fpr"] == 0.0 and overall["auc"] == 1.0
    assert overall["trigger_recall"] >= 0.5
    table = (tmp_path / "out" / "detection.md").read_text()
    assert "| bert-por-" in table and summary["overall"]["tpr"] == 1.0

    # a second run merges these rows with another part's (here: the same file) and scores the union once
    again = run_bench(
        tmp_path / "merged",
        model_cache / "zoo",
        families=[],
        attacks=["por"],
        seeds=1,
        minilm_layers=(),
        derived=0,
        profile="quick",
        progress=lambda m: None,
        merge=[tmp_path / "out" / "detection.json"],
    )
    assert again["overall"]["models"] == 3 and again["overall"]["tpr"] == 1.0
    assert again["sources"] == [str(tmp_path / "out" / "detection.json")]
