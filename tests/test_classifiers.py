"""Issue 11: no false alarm on clean fine-tuned classifiers, while inherited backdoors stay found (real MiniLM-L2,
quick profile). The fine-tunes are cached (tests/conftest.py); the first run builds them (minutes: slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.config import ScanConfig
from scanner.pipeline import scan
from scanner.report import Verdict
from scanner.report.html import render_html
from tests.conftest import PLANTED_TRIGGERS, _downstream

pytestmark = pytest.mark.slow
QUICK = ScanConfig(profile="quick", device="cpu", seed=0)


@pytest.fixture(scope="module")
def untouched_l2_movie(minilm_l2: Path, model_cache: Path) -> Path:
    """A movie-sentiment classifier fine-tuned from the untouched real MiniLM-L2 (no trigger anywhere)."""
    return _downstream(minilm_l2, model_cache / "minilm-L2-movie")


def _found(report, planted) -> set[str]:
    names = set()
    for trig in report.triggers:
        texts = {trig.text.lower(), *(la.text.lower() for la in trig.lookalikes)}
        names |= {p for p in planted if p in texts}
    return names


def test_clean_fine_tuned_classifier_stays_clean(untouched_l2_movie: Path) -> None:
    report = scan(str(untouched_l2_movie), QUICK)
    evidence = report.scan.config["evidence"]
    assert report.verdict is Verdict.CLEAN, ([(t.text, t.score) for t in report.triggers], evidence)
    assert report.probability < 0.2
    assert "natural_override_ceiling" in evidence or not evidence.get("task_features")
    page = render_html(report)
    assert 'class="null-plot"' in page


def test_classifier_from_a_por_encoder_stays_flagged(por_l2_movie: Path) -> None:
    report = scan(str(por_l2_movie), QUICK)
    assert report.verdict is Verdict.BACKDOORED, report.scan.config["evidence"]
    assert _found(report, PLANTED_TRIGGERS), [t.text for t in report.triggers]


def test_lineage_scores_findings_in_the_base(por_l2_movie: Path, por_l2: Path) -> None:
    report = scan(str(por_l2_movie), QUICK, base=por_l2)
    lineage = report.scan.config["evidence"]["lineage"]
    fired = {t for t, z in lineage["base_scores"].items() if z >= lineage["base_threshold"]}
    assert fired & set(PLANTED_TRIGGERS), lineage
    assert report.verdict is Verdict.BACKDOORED
