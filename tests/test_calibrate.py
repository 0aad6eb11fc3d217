"""Calibration fitting on synthetic zoos."""

from __future__ import annotations

import json

from scanner.calibrate import fit_calibration, fit_logistic, write_calibration
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
