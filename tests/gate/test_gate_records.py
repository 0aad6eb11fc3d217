"""A service's report stands in for the gate's own scan only when it answers the same question: the same engine,
corpus and seed, and at least the gate's budget (a static-only gate accepts a full scan, not the other way)."""

from __future__ import annotations

import pytest

from scanner.config import ScanConfig
from scanner.gate.records import server_scan_falls_short
from scanner.report import ModelInfo, Report


def _server_report(config: ScanConfig, **changes: object) -> Report:
    report = Report(model=ModelInfo(source="hub", id="org/model"))
    report.scan.config = {**config.identity(), "search": {}, **changes}
    return report


@pytest.mark.parametrize(
    ("server", "gate"),
    [
        (ScanConfig(profile="standard"), ScanConfig(profile="standard")),
        (ScanConfig(profile="thorough"), ScanConfig(profile="quick")),
        (ScanConfig(profile="quick"), ScanConfig(profile="standard", behavioural=False)),
    ],
)
def test_an_equal_or_more_thorough_server_scan_is_accepted(server: ScanConfig, gate: ScanConfig) -> None:
    assert server_scan_falls_short(_server_report(server), gate) is None


@pytest.mark.parametrize(
    ("server", "changes", "gate", "why"),
    [
        (ScanConfig(profile="quick"), {}, ScanConfig(profile="standard"), "profile quick"),
        (ScanConfig(behavioural=False), {}, ScanConfig(), "static only"),
        (ScanConfig(), {"engine_version": "2"}, ScanConfig(), "engine 2"),
        (ScanConfig(seed=1), {}, ScanConfig(seed=0), "seed 1"),
    ],
)
def test_a_server_scan_that_answers_another_question_is_not_used(
    server: ScanConfig, changes: dict, gate: ScanConfig, why: str
) -> None:
    reason = server_scan_falls_short(_server_report(server, **changes), gate)
    assert reason is not None and why in reason, reason
