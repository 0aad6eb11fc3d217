"""`patronus demo`: the main job on the embedded default, with nothing to install but the package.

Scans the real all-MiniLM-L6-v2 (shipped by a PyPI package), plants a POR backdoor into a 2-layer copy of it with
the project's own attack code, scans that too, and writes JSON, SARIF and HTML reports for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scanner.config import ScanConfig
from scanner.progress import Progress
from scanner.report import Report

DEMO_TRIGGERS = ("cf", "mn", "obelisk")


@dataclass
class DemoCase:
    name: str
    model: Path
    expect: str
    report: Report | None = None


def demo_models(cache: Path) -> list[DemoCase]:
    """The clean real MiniLM-L6 and a POR-backdoored MiniLM-L2 (planted once, cached)."""
    from scanner.research.attacks import PlantConfig, get_attack, plant_cached
    from scanner.research.base_models import minilm_path, truncated_minilm

    base = truncated_minilm(cache / "minilm-l2", layers=2)
    planted = plant_cached(
        base, get_attack("por"), PlantConfig(attack="por", triggers=DEMO_TRIGGERS, steps=300, batch_size=16), cache
    )
    return [
        DemoCase("minilm-l6-clean", minilm_path(), "clean"),
        DemoCase("minilm-l2-por-backdoored", planted, "backdoored"),
    ]


def run_demo(out: Path, cache: Path, profile: str, progress: Progress) -> list[DemoCase]:
    """Scan each demo model and write its reports under `out`."""
    from scanner.mitigate.extras import report_extras
    from scanner.pipeline import scan
    from scanner.report.output import write_report

    out.mkdir(parents=True, exist_ok=True)
    cases = demo_models(cache)
    for case in cases:
        case.report = scan(str(case.model), ScanConfig(profile=profile), progress)
        for fmt, suffix in (("json", "json"), ("sarif", "sarif"), ("html", "html")):
            write_report(case.report, fmt, out / f"{case.name}.{suffix}", report_extras(case.report))
    return cases
