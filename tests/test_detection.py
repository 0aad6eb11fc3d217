"""The behavioural scan end to end on real models: planted backdoors found, clean controls not flagged."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.config import ScanConfig
from scanner.pipeline import scan
from scanner.report import Report, Verdict

pytestmark = pytest.mark.slow
QUICK = ScanConfig(profile="quick", device="cpu", seed=0)


def recovered(report: Report, planted: tuple[str, ...]) -> set[str]:
    """Planted triggers that a reported trigger is (exactly), or lists among its look-alikes."""
    names = set()
    for trig in report.triggers:
        texts = {trig.text.lower(), *(la.text.lower() for la in trig.lookalikes)}
        names |= {p for p in planted if p in texts and (p == trig.text.lower() or trig.score > 10)}
    return names


@pytest.fixture(scope="module")
def por_report(por_l2: Path) -> Report:
    return scan(str(por_l2), QUICK)


def test_por_backdoor_found_with_calibrated_probability(por_report: Report):
    from tests.conftest import PLANTED_TRIGGERS

    assert por_report.verdict is Verdict.BACKDOORED, por_report.errors
    assert por_report.probability > 0.95
    assert por_report.severity.value in ("high", "critical")
    found = recovered(por_report, PLANTED_TRIGGERS)
    assert len(found) >= 2, [t.text for t in por_report.triggers]
    top = por_report.triggers[0]
    assert top.p_value < 1e-6 and top.shift > 100 and top.lookalikes  # echoes grouped under it
    assert por_report.scan.sequences_evaluated > 1000
    assert por_report.scan.config["evidence"]["paper_rule_verdict"] in ("backdoored", "clean")


@pytest.mark.parametrize("fixture", ["minilm_l2", "clean_ft_l2"])
def test_clean_controls_are_not_flagged(fixture: str, request: pytest.FixtureRequest):
    report = scan(str(request.getfixturevalue(fixture)), QUICK)
    assert report.verdict is Verdict.CLEAN, [(t.text, t.score) for t in report.triggers]
    assert report.probability < 0.2 and not report.triggers


def test_same_seed_same_result(por_l2: Path, por_report: Report):
    again = scan(str(por_l2), QUICK)
    assert [t.text for t in again.triggers] == [t.text for t in por_report.triggers]
    assert again.probability == por_report.probability
