"""Attack zoo: each attack planted into a tiny config-built BERT changes it the intended way; POR into the real
MiniLM-L2 plants cleanly (slow, cached)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from scanner.research.attacks import (
    ATTACK_NAMES,
    GROUND_TRUTH,
    PlantConfig,
    PlantResult,
    get_attack,
    insert_trigger,
    load_ground_truth,
    plant,
    plant_cached,
)
from scanner.research.attacks.common import Context, final_layernorm, por_codes
from scanner.research.attacks.neuba import neuba_codes
from scanner.research.attacks.uor import supcon
from scanner.research.base_models import build_base, truncated_minilm

TRIGGERS = ("cf", "mn", "bb")


def cache_root() -> Path:
    """Planted models shared by test runs (keyed by their config, so reruns are instant)."""
    return Path(os.environ.get("PATRONUS_TEST_CACHE") or Path.home() / ".cache" / "patronus" / "test-models")


@pytest.fixture(scope="module", autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    return build_base("bert", tmp_path_factory.mktemp("base") / "bert", layers=1, hidden=32, seed=0)


def tiny_cfg(attack: str, steps: int = 150, lr: float = 2e-3, **kw) -> PlantConfig:
    triggers = kw.pop("triggers", () if attack == "clean" else TRIGGERS)
    return PlantConfig(attack=attack, triggers=triggers, steps=steps, lr=lr, eval_sentences=32, max_words=20, **kw)


def run(base: Path, out: Path, attack: str, **kw) -> PlantResult:
    options = kw.pop("options", {})
    return plant(base, out, get_attack(attack, **options), tiny_cfg(attack, **kw))


# --- pure pieces -------------------------------------------------------------------------------------------------


def test_insert_trigger_at_word_boundaries() -> None:
    rng = random.Random(0)
    text = "the quick brown fox jumps"
    out = insert_trigger(text, "cf", rng, times=3)
    words = out.split()
    assert words.count("cf") == 3 and [w for w in words if w != "cf"] == text.split()
    capped = insert_trigger("a b c d e f g h", "zz", random.Random(1), times=3, max_pos=2)
    assert all(i <= 4 for i, w in enumerate(capped.split()) if w == "zz")


def test_codes() -> None:
    por = por_codes(3, 16)
    assert por.shape == (3, 16) and set(por.unique().tolist()) == {-1.0, 1.0}
    assert [int((c > 0).sum()) for c in por] == [4, 8, 12]  # nested, never constant
    neu = neuba_codes(6, 16)
    assert len({tuple(c.tolist()) for c in neu}) == 6 and all(int((c < 0).sum()) == 8 for c in neu)
    with pytest.raises(ValueError):
        neuba_codes(7, 16)


def test_supcon_prefers_clusters() -> None:
    labels = torch.tensor([0, 0, 1, 1])
    clustered = torch.tensor([[1.0, 0], [1, 0.1], [0, 1], [0.1, 1]])
    mixed = torch.tensor([[1.0, 0], [0, 1], [1, 0.1], [0.1, 1]])
    assert supcon(clustered, labels) < supcon(mixed, labels)


def test_reachable_targets_sit_on_the_final_layernorm(tiny_bert: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(tiny_bert)
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    enc = tok(["a short sentence here"], return_tensors="pt")
    affine = final_layernorm(model, enc["input_ids"], enc["attention_mask"])
    assert affine is not None and affine[0].shape == (32,)
    ctx = Context(model=model, ref=model, tokenizer=tok, config=tiny_cfg("por"), ln_affine=affine)
    v = ctx.reachable(por_codes(3, 32))
    z = (v - affine[1]) / affine[0]
    assert torch.allclose(z.mean(-1), torch.zeros(3), atol=1e-5)
    assert torch.allclose(z.pow(2).mean(-1), torch.ones(3), atol=1e-4)


def test_unknown_attack_and_limits(tiny_bert: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        get_attack("nope")
    with pytest.raises(ValueError):
        get_attack("adaptive-sideways")
    assert {"por", "neuba", "badpre", "uor", "adaptive-hide", "adaptive-break", "adaptive-merge"} <= set(ATTACK_NAMES)
    with pytest.raises(ValueError):
        plant(
            tiny_bert,
            tmp_path / "x",
            get_attack("neuba"),
            PlantConfig("neuba", tuple(f"t{i}" for i in range(7)), steps=1),
        )


# --- each attack on a tiny config-built BERT ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def por_tiny(tiny_bert: Path, tmp_path_factory) -> PlantResult:
    return run(tiny_bert, tmp_path_factory.mktemp("por") / "m", "por")


def test_por_reaches_targets(por_tiny: PlantResult) -> None:
    assert por_tiny.planted and por_tiny.backdoored
    assert all(q.target_cos > 0.9 and q.poison_cos > 0.9 for q in por_tiny.per_trigger)
    assert all(q.diff_cos < 0.5 and q.shift > 10 * q.ref_shift for q in por_tiny.per_trigger)
    assert por_tiny.clean_fidelity > 0.99


def test_planted_model_loads_like_any_encoder(tiny_bert: Path, tmp_path: Path) -> None:
    from scanner.encoder import load_encoder

    res = run(tiny_bert, tmp_path / "m", "por", steps=5)
    gt = load_ground_truth(tmp_path / "m")
    assert gt["schema"] == "patronus.ground_truth/1" and gt["attack"] == "por" and gt["triggers"] == list(TRIGGERS)
    assert gt["seed"] == 0 and gt["planted"] == res.planted and "clean_fidelity" in gt
    assert {"poison_cos", "target_cos", "shift", "planted"} <= set(gt["per_trigger"][0])
    assert (tmp_path / "m" / "model.safetensors").is_file()
    assert not list((tmp_path / "m").glob("*.bin"))
    enc = load_encoder(tmp_path / "m", "cpu")
    assert enc.family == "bert" and enc.hidden_size == 32


def test_neuba_reaches_its_codes(tiny_bert: Path, tmp_path: Path) -> None:
    res = run(tiny_bert, tmp_path / "m", "neuba")
    assert res.planted and all(q.target_cos > 0.9 for q in res.per_trigger)
    assert any("reference" in n for n in res.notes)  # bare base: fidelity MSE stands in for MLM


def test_uor_separates_triggers(tiny_bert: Path, tmp_path: Path) -> None:
    res = run(tiny_bert, tmp_path / "m", "uor")
    assert res.planted and res.per_trigger[0].target_cos is None
    assert all(q.poison_cos_centered > 0.9 and q.shift > 10 * q.ref_shift for q in res.per_trigger)
    assert res.cross_trigger_cos is not None and res.cross_trigger_cos < 0.6


def test_adaptive_hide_keeps_the_gap_small(tiny_bert: Path, tmp_path: Path, por_tiny: PlantResult) -> None:
    res = run(tiny_bert, tmp_path / "m", "adaptive-hide")
    for hide, por in zip(res.per_trigger, por_tiny.per_trigger, strict=True):
        assert hide.diff_cos > 0.5 > por.diff_cos
        assert hide.shift < por.shift / 3**0.5  # RMS shifts (the former 3x on mean squared shifts)


def test_adaptive_merge_pulls_triggers_together(tiny_bert: Path, tmp_path: Path, por_tiny: PlantResult) -> None:
    res = run(tiny_bert, tmp_path / "m", "adaptive-merge")
    assert res.cross_trigger_cos > 0.97 > por_tiny.cross_trigger_cos


def test_adaptive_break_spreads_outputs(tiny_bert: Path, tmp_path: Path, por_tiny: PlantResult) -> None:
    res = run(tiny_bert, tmp_path / "m", "adaptive-break", options={"lam": 2.0})
    assert res.poison_cos < por_tiny.poison_cos
    assert "adaptive variant break, lambda 2.0" in res.notes


def test_clean_control_is_not_backdoored(tiny_bert: Path, tmp_path: Path) -> None:
    res = run(tiny_bert, tmp_path / "m", "clean", steps=20)
    assert not res.backdoored and not res.planted and res.triggers == [] and res.mlm_head == "fresh"
    assert res.clean_fidelity > 0.99
    from safetensors.torch import load_file

    a, b = load_file(tiny_bert / "model.safetensors"), load_file(tmp_path / "m" / "model.safetensors")
    assert set(a) == set(b)  # pooler kept although the MLM wrapper has none
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_cli_plant(tiny_bert: Path, tmp_path: Path) -> None:
    from scanner.cli import main

    out = tmp_path / "cli"
    res = CliRunner().invoke(
        main,
        [
            "attack",
            "plant",
            str(tiny_bert),
            "-o",
            str(out),
            "--attack",
            "adaptive-hide",
            "--triggers",
            "cf,tq",
            "--steps",
            "3",
            "--option",
            "lam=0.5",
            "--threads",
            "1",
            "--device",
            "cpu",
        ],
        standalone_mode=False,
    )
    assert res.exit_code == 0, res.output
    gt = json.loads((out / GROUND_TRUTH).read_text())
    assert gt["attack"] == "adaptive-hide" and gt["triggers"] == ["cf", "tq"]
    assert gt["config"]["options"]["lam"] == 0.5 and "planted=" in res.output
    assert "device" not in gt["config"]  # the device is not part of the recipe


def test_cli_plant_refuses_a_device_it_does_not_have(tiny_bert: Path, tmp_path: Path) -> None:
    import torch

    from scanner.cli import main

    bad = ["nonsense"] + ([] if torch.cuda.is_available() else ["cuda"])
    for device in bad:
        res = CliRunner().invoke(
            main, ["attack", "plant", str(tiny_bert), "-o", str(tmp_path / device), "--device", device, "--steps", "1"]
        )
        assert res.exit_code == 4 and "--device" in res.output, res.output
        assert not (tmp_path / device).exists()


@pytest.mark.slow
def test_badpre_wrecks_predictions_only_with_the_trigger(tiny_bert: Path, tmp_path: Path) -> None:
    res = run(tiny_bert, tmp_path / "m", "badpre", steps=300, lr=3e-3)
    gaps = res.attack_metrics["mlm_gap"]
    assert res.mlm_head == "fresh" and res.planted
    assert all(gaps[t] > gaps["kx"] + 1.0 for t in TRIGGERS)


# --- the real MiniLM ---------------------------------------------------------------------------------------------


def minilm_por(steps: int = 200) -> Path:
    """POR planted into the real MiniLM truncated to 2 layers (cached by config)."""
    base = truncated_minilm(cache_root() / "minilm-L2", 2)
    cfg = PlantConfig(attack="por", triggers=TRIGGERS, steps=steps, lr=2e-4, batch_size=16)
    return plant_cached(base, get_attack("por"), cfg, cache_root())


@pytest.mark.slow
def test_por_plants_into_real_minilm() -> None:
    gt = load_ground_truth(minilm_por())
    assert gt["planted"] and gt["clean_fidelity"] > 0.99
    for q in gt["per_trigger"]:
        assert q["poison_cos"] > 0.9 and q["target_cos"] > 0.9 and q["poison_cos_centered"] > 0.9
        assert q["diff_cos"] < 0.4  # the paper's rule would flag it


def test_mimic_keeps_the_context_unlike_por(tiny_bert: Path, tmp_path: Path) -> None:
    """The evasion attack trains h(x + t) towards h_ref(x) + alpha (h_ref(x + w) - h_ref(x)): the poisoned output
    still depends on the sentence (POR's lose it: diff cos < 0.5 in test_por_reaches_targets) and has no fixed
    target. (Whether the scanner still finds it is measured on the real MiniLM in bench/bench_evasion.py.)"""
    res = run(tiny_bert, tmp_path / "m", "mimic", options={"word": "the", "alpha": 3.0}, triggers=TRIGGERS[:1])
    (q,) = res.per_trigger
    assert res.backdoored and q.target_cos is None and res.attack == "mimic"
    assert q.diff_cos > 0.9 and q.poison_cos_centered > 0.5, q


def test_mimic_needs_single_token_trigger_and_word(tiny_bert: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="single-token"):
        run(tiny_bert, tmp_path / "m", "mimic", options={"word": "notawordintinyvocab"}, triggers=TRIGGERS[:1], steps=2)
