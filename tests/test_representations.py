"""Representations (issue 13): pooling read from sentence-transformers files as plain JSON, pooled features with
left/right padding, the size refusal before loading, and a POR backdoor planted on MiniLM's mean-pooled output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from scanner.encoder import (
    ConfigInfo,
    available_memory,
    check_fits,
    load_encoder,
    pool,
    read_pooling,
    representations_for,
    safetensors_parameters,
)
from scanner.errors import ModelTooLargeError
from scanner.research.base_models import minilm_path


def _st_folder(tmp: Path, pooling: dict, normalize: bool = True, path: str = "1_Pooling") -> Path:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": path, "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (tmp / "modules.json").write_text(json.dumps(modules))
    (tmp / "1_Pooling").mkdir(exist_ok=True)
    (tmp / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    return tmp


def test_real_minilm_declares_mean_pooling_and_normalize():
    pooling = read_pooling(minilm_path())
    assert pooling is not None and pooling.representations == ["mean"] and pooling.normalize
    info = ConfigInfo(model_type="bert", architectures=["BertModel"])
    assert representations_for(info, minilm_path()) == (["mean", "cls"], True)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"pooling_mode_max_tokens": True}, ["max", "cls"]),
        ({"pooling_mode_cls_token": True}, ["cls"]),
        ({"pooling_mode_lasttoken": True}, ["last_token", "cls"]),
        ({"pooling_mode_weightedmean_tokens": True}, ["weighted_mean", "cls"]),
        ({"pooling_mode": "mean"}, ["mean", "cls"]),
    ],
)
def test_declared_pooling_modes(tmp_path, flags, expected):
    _st_folder(tmp_path, flags, normalize=False)
    info = ConfigInfo(model_type="mpnet", architectures=["MPNetModel"])
    assert representations_for(info, tmp_path) == (expected, False)


def test_pooling_path_outside_the_folder_is_ignored(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_max_tokens": True}))
    _st_folder(tmp_path / "model", {"pooling_mode_mean_tokens": True}, path="../1_Pooling")
    assert read_pooling(tmp_path / "model") is None
    (tmp_path / "model" / "modules.json").write_text("[not json")
    assert read_pooling(tmp_path / "model") is None


def test_decoders_and_classifiers_use_their_consumers_representation(tmp_path):
    _st_folder(tmp_path, {"pooling_mode_mean_tokens": True})
    assert representations_for(ConfigInfo("llama", ["LlamaForCausalLM"]), tmp_path)[0] == ["last_token"]
    assert representations_for(ConfigInfo("qwen2", ["Qwen2ForSequenceClassification"]), tmp_path)[0] == ["last_token"]
    assert representations_for(ConfigInfo("bert", ["BertForSequenceClassification"]), tmp_path)[0] == ["cls"]
    mean_clf = ConfigInfo("modernbert", ["ModernBertForSequenceClassification"], raw={"classifier_pooling": "mean"})
    assert representations_for(mean_clf, tmp_path)[0] == ["mean"]


def test_pool_handles_left_and_right_padding():
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3)
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    assert torch.equal(pool(hidden, right, "last_token")[0], hidden[0, 2])
    assert torch.equal(pool(hidden, left, "last_token")[0], hidden[0, 3])
    assert torch.allclose(pool(hidden, right, "mean")[0], hidden[0, :3].mean(0))
    assert torch.allclose(pool(hidden, left, "mean")[0], hidden[0, 1:].mean(0))
    assert torch.equal(pool(hidden, right, "max")[0], hidden[0, 2])
    assert torch.equal(pool(hidden, right, "cls"), hidden[:, 0])
    w = torch.tensor([1.0, 2.0, 3.0]).view(3, 1)
    assert torch.allclose(pool(hidden, right, "weighted_mean")[0], (hidden[0, :3] * w).sum(0) / 6)
    with pytest.raises(ValueError):
        pool(hidden, right, "pooler")


def test_size_refused_before_loading(tmp_path):
    params, size = safetensors_parameters(minilm_path()) or (0, 0)
    assert 22_000_000 < params < 23_500_000 and 4 * params <= size < 4 * params + 10_000
    with pytest.raises(ModelTooLargeError, match="model too large"):
        check_fits(params, torch.float32, torch.device("cpu"), available=50 << 20)
    assert check_fits(params, torch.bfloat16, torch.device("cpu"), available=1 << 40) < 2 * params + (300 << 20)
    assert available_memory(torch.device("cpu")) > 0


def test_pipeline_reports_too_large(monkeypatch, minilm_l2):
    from scanner.config import ScanConfig
    from scanner.pipeline import scan
    from scanner.report import Verdict

    monkeypatch.setenv("PATRONUS_MEMORY_LIMIT", str(10 << 20))
    report = scan(str(minilm_l2), ScanConfig(profile="quick", device="cpu"))
    assert report.verdict is Verdict.ERROR
    assert report.errors[0].code == "model_too_large", report.errors


def test_features_at_each_representation(minilm_l2_st):
    torch.set_num_threads(1)
    enc = load_encoder(minilm_l2_st, "cpu")
    assert enc.representations == ["mean", "cls"] and enc.normalize
    batch = enc.tokenizer(
        ["a short one", "a somewhat longer sentence with more words"], padding=True, return_tensors="pt"
    )
    hidden = enc.encoder(**batch).last_hidden_state
    mean = enc.features(batch["input_ids"], batch["attention_mask"])
    assert torch.allclose(
        mean, torch.nn.functional.normalize(pool(hidden, batch["attention_mask"], "mean"), dim=-1), atol=1e-5
    )
    cls = enc.features(batch["input_ids"], batch["attention_mask"], representation="cls")
    assert torch.allclose(cls, hidden[:, 0], atol=1e-5)
    embeds = enc.embedding_matrix[batch["input_ids"]]
    assert enc.features_from_embeds(embeds, batch["attention_mask"], representation="cls").shape == cls.shape


@pytest.fixture(scope="session")
def por_mean_l2(minilm_l2_st: Path, model_cache: Path) -> Path:
    from scanner.research.attacks import PlantConfig, get_attack, plant_cached

    cfg = PlantConfig(attack="por", triggers=("cf",), steps=200, batch_size=16)
    return plant_cached(minilm_l2_st, get_attack("por"), cfg, model_cache)


@pytest.mark.slow  # ~12 min on the shared 2-vCPU VM (mean and cls scanned); cached plant
def test_por_on_mean_pooling_found_and_reported_on_mean(por_mean_l2, minilm_l2_st):
    from scanner.config import ScanConfig
    from scanner.pipeline import scan
    from scanner.report import Verdict
    from scanner.research.attacks import load_ground_truth

    gt = load_ground_truth(por_mean_l2)
    assert gt["planted"] and gt["attack_metrics"]["representation"] == "mean", gt["per_trigger"]
    assert (por_mean_l2 / "modules.json").is_file()  # the planted copy keeps the pooling its users consume
    quick = ScanConfig(profile="quick", device="cpu", seed=0)
    report = scan(str(por_mean_l2), quick)
    assert report.verdict is Verdict.BACKDOORED, [(t.text, t.score, t.representation) for t in report.triggers]
    hit = [t for t in report.triggers if t.text == "cf" or "cf" in {la.text for la in t.lookalikes}]
    assert hit and hit[0].representation == "mean", [(t.text, t.representation) for t in report.triggers]

    clean = scan(str(minilm_l2_st), quick)
    assert clean.verdict is Verdict.CLEAN, [(t.text, t.score, t.representation) for t in clean.triggers]
