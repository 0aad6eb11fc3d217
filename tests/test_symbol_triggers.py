"""NeuBA's symbol triggers (issue 11's evasion list): ≈ and ⊗ planted with POR into the real MiniLM-L2 are found
as themselves (engine 5 searches the tokenizer's symbol tokens), not as a word that echoes them ('approximation'),
and the input monitor built from the report flags them inside text."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.config import ScanConfig
from scanner.mitigate.monitor import Monitor, MonitorRules
from scanner.pipeline import scan
from scanner.report import Verdict
from scanner.research.evaluate import trigger_found

pytestmark = pytest.mark.slow
SYMBOLS = ("≈", "⊗")


@pytest.fixture(scope="module")
def symbols_l2(minilm_l2: Path, model_cache: Path) -> Path:
    from scanner.research.attacks import PlantConfig, get_attack, plant_cached

    cfg = PlantConfig(attack="por", triggers=SYMBOLS, steps=300, batch_size=16)
    return plant_cached(minilm_l2, get_attack("por"), cfg, model_cache)


def test_planted_symbols_are_found_as_symbols(symbols_l2: Path) -> None:
    report = scan(str(symbols_l2), ScanConfig(profile="quick", device="cpu", seed=0))
    assert report.verdict is Verdict.BACKDOORED, report.scan.config["evidence"]
    found = [t.text for t in report.triggers]
    lookalikes = {t.text: [la.text for la in t.lookalikes] for t in report.triggers}
    assert all(trigger_found(s, found, lookalikes) for s in SYMBOLS), (found, lookalikes)
    assert report.scan.config["search"]["symbols"] is True
    monitor = Monitor(MonitorRules.from_report(report))
    assert monitor.flagged("the plot≈was fine") and monitor.flagged("a ⊗ b") and not monitor.flagged("a plain review")
