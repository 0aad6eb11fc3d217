"""Every supported family (small models built from configs, real tokenizers): a planted trigger is found and
the untouched model is not flagged."""

from __future__ import annotations

import pytest

from scanner.research.base_models import FAMILIES
from scanner.config import ScanConfig
from scanner.pipeline import scan
from scanner.report import Verdict

pytestmark = pytest.mark.slow
QUICK = ScanConfig(profile="quick", device="cpu", seed=0)


def pick_trigger(model_dir) -> str:
    """A rare whole-word token of this tokenizer (deterministic)."""
    from transformers import AutoTokenizer

    from scanner.search.vocab import searchable_vocabulary

    words = searchable_vocabulary(AutoTokenizer.from_pretrained(model_dir, local_files_only=True)).words
    return sorted(words, key=lambda w: (len(w) < 4, w))[len(words) // 3]


@pytest.mark.parametrize("family", FAMILIES)
def test_family_planted_found_and_clean_not_flagged(family, family_base, model_cache):
    from scanner.research.attacks import PlantConfig, get_attack, plant_cached

    base = family_base(family)
    trigger = pick_trigger(base)
    cfg = PlantConfig(attack="por", triggers=(trigger,), steps=150, batch_size=16, lr=1e-3)
    planted = plant_cached(base, get_attack("por"), cfg, model_cache)

    report = scan(str(planted), QUICK)
    assert report.model.family == family
    assert report.verdict is Verdict.BACKDOORED, (trigger, [(t.text, t.score) for t in report.triggers])
    assert any(trigger == t.text or trigger in {la.text for la in t.lookalikes} for t in report.triggers)

    clean = scan(str(base), QUICK)
    assert clean.verdict is Verdict.CLEAN, [(t.text, t.score) for t in clean.triggers]
