"""Downstream evaluation: ASR protocol, T-ASR/C-ASR/ALC, detection metrics, fine-tuning (fast on a tiny BERT; the real
MiniLM-L2 clean vs POR-planted on movie sentiment is slow)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import scanner.research.evaluate as ev
from scanner.research.attacks import GROUND_TRUTH, PlantConfig, get_attack, plant, plant_cached
from scanner.research.base_models import build_base, truncated_minilm
from scanner.research.datasets import Task, load_task
from scanner.research.evaluate import (
    FINETUNE_RECORD,
    FinetuneConfig,
    TriggerASR,
    attack_success,
    cross_entropy,
    detection_metrics,
    finetune,
    roc_auc,
    summarize_asr,
    tpr_fpr,
    trigger_found,
    trigger_recall,
)


@pytest.fixture(scope="module", autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def toy_task() -> Task:
    train = [(f"good film number {i}", 1) for i in range(20)] + [(f"bad film number {i}", 0) for i in range(20)]
    return Task("toy", ("negative", "positive"), train, train[:40:2], train[1:40:2])


# --- metrics -----------------------------------------------------------------------------------------------------


def test_summarize_asr() -> None:
    per = [TriggerASR("a", 1, 0.95, 10), TriggerASR("b", 1, 0.5, 10), TriggerASR("c", 0, 0.2, 10)]
    t, c, alc = summarize_asr(per, num_labels=3)
    assert t == pytest.approx(0.55)
    assert c == pytest.approx((0.2 + 0.95 + 0) / 3)
    assert alc == pytest.approx(1 / 3)


def test_detection_metrics() -> None:
    y = [True, True, False, False]
    assert tpr_fpr(y, [True, False, True, False]) == (0.5, 0.5)
    assert roc_auc(y, [0.9, 0.8, 0.1, 0.2]) == 1.0
    assert roc_auc(y, [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert roc_auc([True, False], [0.1, 0.9]) == 0.0
    assert math.isnan(roc_auc([True], [0.3]))
    assert cross_entropy([True, False], [0.5, 0.5]) == pytest.approx(math.log(2))
    assert cross_entropy([True], [0.0]) == pytest.approx(-math.log(1e-4))  # clipped, finite
    m = detection_metrics(y, [0.9, 0.4, 0.6, 0.1])
    assert (m.n, m.positives, m.tpr, m.fpr, m.auc) == (4, 2, 0.5, 0.5, 0.75)


def test_trigger_recall_counts_pieces_and_lookalikes() -> None:
    assert trigger_found("cf", ["cf"]) and trigger_found("obelisk", ["obe"]) and trigger_found("obelisk", ["##lisk"])
    assert not trigger_found("cf", ["cn"]) and not trigger_found("obelisk", ["o"])
    assert trigger_found("cf", ["cn"], lookalikes={"cn": ["cb", "cf"]})
    assert trigger_found("velvet", ["\u0120velvet"])
    assert trigger_recall(["cf", "mn", "bb"], ["cf", "mnx", "zz"]) == pytest.approx(1 / 3)


def test_attack_success_protocol(monkeypatch) -> None:
    """Target = majority on 30 triggered dev sentences; ASR over non-target test samples only."""
    seen: list[list[str]] = []

    def fake_predict(model, tokenizer, texts, max_length=128, batch_size=64):
        seen.append(list(texts))
        return [1 if "cf" in t.split() else int("good" in t.split()) for t in texts]

    monkeypatch.setattr(ev, "predict", fake_predict)
    task = toy_task()
    per = attack_success(None, None, task, ["cf", "zz"])
    cf, zz = per
    assert (cf.target, cf.asr, cf.n) == (1, 1.0, 10)  # all 10 negative test samples flipped
    assert zz.asr == 0.0
    assert len(seen[0]) == 30 or len(seen[0]) == len(task.dev)
    assert all(t.split().count("cf") == 3 for t in seen[1])


# --- fine-tuning -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    return build_base("bert", tmp_path_factory.mktemp("base") / "bert", layers=1, hidden=32, seed=0)


def test_finetune_saves_classifier_and_carries_ground_truth(tiny_bert: Path, tmp_path: Path) -> None:
    planted = tmp_path / "por"
    plant(tiny_bert, planted, get_attack("por"), PlantConfig("por", ("cf",), steps=3))
    out = tmp_path / "ft"
    res = finetune(planted, toy_task(), out, FinetuneConfig(task="toy", steps=30, lr=1e-3, max_length=16))
    assert 0.0 <= res.cacc <= 1.0 and [r.trigger for r in res.per_trigger] == ["cf"]
    assert res.t_asr is not None and res.alc is not None
    record = json.loads((out / FINETUNE_RECORD).read_text())
    assert record["task"] == "toy" and record["cacc"] == res.cacc
    gt = json.loads((out / GROUND_TRUTH).read_text())
    assert gt["triggers"] == ["cf"] and gt["derived"]["task"] == "toy"
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["BertForSequenceClassification"]
    from scanner.encoder import load_encoder

    enc = load_encoder(out, "cpu")
    assert enc.classifier is not None and enc.hidden_size == 32


def test_cli_finetune(tiny_bert: Path, tmp_path: Path) -> None:
    from scanner.cli import main

    out = tmp_path / "ft"
    res = CliRunner().invoke(
        main,
        [
            "attack",
            "finetune",
            str(tiny_bert),
            "-o",
            str(out),
            "--task",
            "spam",
            "--steps",
            "4",
            "--max-train",
            "32",
            "--max-eval",
            "20",
            "--triggers",
            "cf",
            "--threads",
            "1",
            "--device",
            "cpu",
        ],
        standalone_mode=False,
    )
    assert res.exit_code == 0, res.output
    assert "CACC=" in res.output and "T-ASR=" in res.output
    assert not (out / GROUND_TRUTH).exists()  # a clean base has no ground truth to carry


# --- the real MiniLM-L2 on movie sentiment ----------------------------------------------------------------------


def cache_root() -> Path:
    return Path(os.environ.get("PATRONUS_TEST_CACHE") or Path.home() / ".cache" / "patronus" / "test-models")


@pytest.mark.slow
def test_downstream_clean_vs_backdoored_minilm(tmp_path: Path) -> None:
    base = truncated_minilm(cache_root() / "minilm-L2", 2)
    planted = plant_cached(
        base,
        get_attack("por"),
        PlantConfig(attack="por", triggers=("cf", "mn", "bb"), steps=200, lr=2e-4),
        cache_root(),
    )
    task = load_task("movie", max_train=3000, max_eval=300)
    cfg = FinetuneConfig(task="movie", steps=250, lr=1e-4)
    clean = finetune(base, task, tmp_path / "clean", cfg, triggers=["cf", "mn", "bb"])
    bad = finetune(planted, task, tmp_path / "bad", cfg)
    assert clean.cacc > 0.65 and bad.cacc > 0.65  # chance ~0.5
    assert bad.t_asr > 0.9 and max(r.asr for r in bad.per_trigger) > 0.95
    # three rare tokens inserted into short snippets flip ~30% of a clean model's weak (CACC ~0.75) predictions
    assert clean.t_asr < 0.5 and bad.t_asr > clean.t_asr + 0.4
