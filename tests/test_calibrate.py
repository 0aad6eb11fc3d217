"""Calibration fitting on synthetic zoos."""

from __future__ import annotations

import json

from scanner.research.calibration import fit_calibration, fit_logistic, write_calibration
from scanner.verdict import load_calibration


def test_logistic_recovers_a_known_boundary():
    scores = [float(s) for s in range(0, 21)]
    labels = [s > 10 for s in scores]
    slope, midpoint = fit_logistic(scores, labels)
    assert slope > 0 and 9 < midpoint < 12


def test_separable_zoo_gets_a_bounded_slope_and_midpoint_between_classes(tmp_path):
    scores = [1.0, 2.0, 3.5, 4.2, 25.0, 30.0, 9.0]
    labels = [False, False, False, False, True, True, True]
    fit = fit_calibration(scores, labels, provenance="synthetic")
    assert fit.slope <= 2.0 and 4.2 < fit.midpoint < 9.0
    path = tmp_path / "cal.json"
    write_calibration(fit, path)
    cal = load_calibration(path)
    assert cal.probability(4.2) < 0.5 < cal.probability(9.0)
    assert json.loads(path.read_text())["models"] == 7


def _row(name: str, attack: str, backdoored: bool, score: float, planted: bool | None = None) -> dict:
    from dataclasses import asdict

    from scanner.research.zoo import ZooResult

    return asdict(
        ZooResult(
            name=name,
            family="bert",
            attack=attack,
            backdoored=backdoored,
            derived=False,
            triggers=["cf"] if backdoored else [],
            verdict="clean",
            probability=0.5,
            max_score=score,
            paper_rule_verdict="clean",
            found=[],
            recalled=[],
            planted=planted,
        )
    )


def test_bench_calibrate_fits_on_a_zoo_and_rescores_it(tmp_path):
    """Adaptive rows are left out of the fit; every row is rescored with the new calibration; nothing is shipped
    without --write."""
    from click.testing import CliRunner

    from scanner.cli import main
    from scanner.verdict import CALIBRATION_FILE

    rows = [_row(f"c{i}", "clean", False, s) for i, s in enumerate([1.0, 2.0, 2.5, 3.0])]
    rows += [_row(f"p{i}", "por", True, s) for i, s in enumerate([9.0, 12.0, 20.0])]
    rows += [_row("hide", "adaptive-hide", True, 1.5)]  # would drag the midpoint down if it were fitted on
    detection = tmp_path / "detection.json"
    detection.write_text(json.dumps({"profile": "quick", "models": rows}))
    shipped = CALIBRATION_FILE.read_text()
    res = CliRunner().invoke(main, ["bench", "calibrate", str(detection), "--out", str(tmp_path / "re")])
    assert res.exit_code == 0, res.output
    fit = json.loads(res.stdout[: res.stdout.index("\n}") + 2])
    assert fit["models"] == 7 and fit["midpoint"] == 6.0  # between the classes: (3.0 + 9.0) / 2
    assert CALIBRATION_FILE.read_text() == shipped
    out = json.loads((tmp_path / "re" / "detection.json").read_text())
    verdicts = {m["name"]: m["verdict"] for m in out["models"]}
    assert verdicts["p0"] == "backdoored" and verdicts["c3"] == "clean" and verdicts["hide"] == "clean"
    assert out["overall"]["tpr"] == 0.75 and out["overall"]["fpr"] == 0.0  # the adaptive model is a miss
    assert "| hide |" in (tmp_path / "re" / "detection.md").read_text()


def test_failed_plants_are_listed_not_scored():
    """A recipe whose plant did not take is no backdoor: neither a hit nor a miss. Adaptive variants count even
    when they miss the POR target bar (that is their design)."""
    from scanner.research.zoo import ZooResult, markdown, summarize

    rows = [
        ZooResult(**_row("c", "clean", False, 2.0)),
        ZooResult(**_row("p", "por", True, 20.0, planted=True)),
        ZooResult(**_row("b", "badpre", True, 1.0, planted=False)),
        ZooResult(**_row("h", "adaptive-hide", True, 1.0, planted=False)),
    ]
    rows = [ZooResult(**{**r.__dict__, "verdict": "backdoored" if r.max_score > 10 else "clean"}) for r in rows]
    summary = summarize(rows)
    overall = summary["overall"]
    assert overall["failed_plants_excluded"] == 1 and overall["backdoored"] == 2
    assert overall["tpr"] == 0.5  # por found, adaptive-hide missed; badpre not counted
    assert "| b | True (plant failed: not scored) |" in markdown(summary, "quick", 1.0)
