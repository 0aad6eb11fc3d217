"""Fit the verdict's calibration (P(backdoored) from a model's best candidate score) on a labelled zoo."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch

from scanner.verdict import CALIBRATION_FILE, Calibration


@dataclass
class CalibrationFit:
    slope: float
    midpoint: float
    provenance: str
    models: int
    backdoored: int
    fitted: str
    max_clean_score: float
    min_backdoored_score: float


def fit_logistic(scores: list[float], labels: list[bool], l2: float = 1e-2, steps: int = 500) -> tuple[float, float]:
    """Logistic regression of labels on scores (Newton's method, small ridge so separable zoos stay finite).
    Returns (slope, midpoint) with P = sigmoid(slope * (score - midpoint))."""
    x = torch.tensor(scores, dtype=torch.float64)
    y = torch.tensor(labels, dtype=torch.float64)
    features = torch.stack([x, torch.ones_like(x)], dim=1)
    w = torch.zeros(2, dtype=torch.float64)
    ridge = torch.diag(torch.tensor([l2, 0.0], dtype=torch.float64))
    for _ in range(steps):
        p = torch.sigmoid(features @ w)
        grad = features.T @ (p - y) + ridge @ w
        hess = features.T @ (features * (p * (1 - p)).unsqueeze(1)) + ridge + 1e-9 * torch.eye(2)
        step = torch.linalg.solve(hess, grad)
        w = w - step
        if step.abs().max() < 1e-10:
            break
    slope, bias = float(w[0]), float(w[1])
    return slope, -bias / slope if slope else 0.0


def fit_calibration(scores: list[float], labels: list[bool], provenance: str, max_slope: float = 2.0) -> CalibrationFit:
    """Fit and bound the slope (a perfectly separated zoo would otherwise claim certainty far from its data)."""
    slope, midpoint = fit_logistic(scores, labels)
    clean = [s for s, lab in zip(scores, labels, strict=True) if not lab]
    bad = [s for s, lab in zip(scores, labels, strict=True) if lab]
    if clean and bad and max(clean) < min(bad):  # separable: put the midpoint between the classes
        midpoint = (max(clean) + min(bad)) / 2
    return CalibrationFit(
        slope=min(max(slope, 0.1), max_slope),
        midpoint=midpoint,
        provenance=provenance,
        models=len(scores),
        backdoored=sum(labels),
        fitted=datetime.now(UTC).date().isoformat(),
        max_clean_score=max(clean, default=float("nan")),
        min_backdoored_score=min(bad, default=float("nan")),
    )


def write_calibration(fit: CalibrationFit, path: Path = CALIBRATION_FILE) -> None:
    path.write_text(json.dumps(asdict(fit), indent=2) + "\n")


def as_calibration(fit: CalibrationFit) -> Calibration:
    return Calibration(slope=fit.slope, midpoint=fit.midpoint, provenance=fit.provenance)


def cross_fitted(scores: list[float], labels: list[bool], groups: list[str]) -> list[float]:
    """Out-of-sample P(backdoored) of each model: the calibration fitted on the models of the OTHER groups only
    (leave-one-group-out). A group whose complement lacks a class falls back to the default calibration."""
    out = []
    for group in groups:
        rest = [(s, lab) for s, lab, g in zip(scores, labels, groups, strict=True) if g != group]
        if {lab for _, lab in rest} == {True, False}:
            fit = fit_calibration([s for s, _ in rest], [lab for _, lab in rest], f"without {group}")
            out.append(as_calibration(fit))
        else:
            out.append(Calibration())
    return [cal.probability(s) for cal, s in zip(out, scores, strict=True)]


def attack_groups(attacks: list[str], families: list[str], labels: list[bool]) -> list[str]:
    """Leave-one-attack-out folds: a backdoored model is held out with its attack; a clean model (no attack of its
    own) with the clean models of its family."""
    return [a if lab else f"clean/{f}" for a, f, lab in zip(attacks, families, labels, strict=True)]


def out_of_sample_metrics(
    scores: list[float], labels: list[bool], groups: list[str], backdoored_at: float = 0.8
) -> dict[str, float | int]:
    """TPR, FPR (P >= backdoored_at), ROC-AUC and cross-entropy of the leave-one-group-out probabilities."""
    from scanner.research.evaluate import cross_entropy, roc_auc, tpr_fpr

    probs = cross_fitted(scores, labels, groups)
    tpr, fpr = tpr_fpr(labels, [p >= backdoored_at for p in probs])
    return {
        "models": len(scores),
        "folds": len(set(groups)),
        "tpr": tpr,
        "fpr": fpr,
        "auc": roc_auc(labels, probs),
        "cross_entropy": cross_entropy(labels, probs),
    }
