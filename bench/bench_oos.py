"""Out-of-sample verdict numbers of a scanned zoo (issue 11): each model's P(backdoored) from a calibration fitted
without its fold, for several fold definitions, beside the shipped (in-sample) calibration.

    python bench/bench_oos.py bench/results/derivatives/detection.json [--out bench/results/derivatives/oos.json]

Folds: leave-one-attack-out (a backdoored model held out with its attack, a clean one with its family's clean
models), leave-one-task-out and leave-one-recipe-out (derivatives, from the `<source>-<task>-<recipe>` names of
`patronus bench detect --derived-tasks`), leave-one-base-out (the family). The ROC-AUC of the raw best scores does
not depend on any calibration and is printed too. Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scanner.research.calibration import attack_groups, out_of_sample_metrics
from scanner.research.evaluate import cross_entropy, roc_auc, tpr_fpr
from scanner.research.zoo import DERIVED_RECIPES, DERIVED_TASKS, EMBEDDING_RECIPES
from scanner.verdict import load_calibration


def task_and_recipe(name: str) -> tuple[str, str]:
    """('movie', 'epochs3') from 'minilm-l2-untouched-movie-epochs3'; ('-', '-') for a model that is no derivative."""
    parts = name.split("-")
    if len(parts) >= 2 and parts[-1] in DERIVED_RECIPES + EMBEDDING_RECIPES and parts[-2] in DERIVED_TASKS:
        return parts[-2], parts[-1]
    return "-", "-"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("detection", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = [
        r
        for r in json.loads(args.detection.read_text())["models"]
        if r["max_score"] is not None and not (r["backdoored"] and r.get("planted") is False)
    ]
    scores = [float(r["max_score"]) for r in rows]
    labels = [bool(r["backdoored"]) for r in rows]
    cal = load_calibration()
    probs = [cal.probability(s) for s in scores]
    tpr, fpr = tpr_fpr(labels, [p >= 0.8 for p in probs])
    table = {
        "in-sample (the shipped calibration)": {
            "models": len(rows),
            "folds": "-",
            "tpr": tpr,
            "fpr": fpr,
            "auc": roc_auc(labels, scores),
            "cross_entropy": cross_entropy(labels, probs),
        }
    }
    folds = {
        "leave-one-attack-out": attack_groups([r["attack"] for r in rows], [r["family"] for r in rows], labels),
        "leave-one-task-out": [task_and_recipe(r["name"])[0] for r in rows],
        "leave-one-recipe-out": [task_and_recipe(r["name"])[1] for r in rows],
        "leave-one-base-out": [r["family"] for r in rows],
    }
    for name, groups in folds.items():
        if len(set(groups)) > 1:
            table[name] = out_of_sample_metrics(scores, labels, groups)
    print("| calibration | models | folds | TPR | FPR | ROC-AUC | cross-entropy |")
    print("|---|---|---|---|---|---|---|")
    for name, m in table.items():
        print(
            f"| {name} | {m['models']} | {m['folds']} | {m['tpr']:.3f} | {m['fpr']:.3f} | {m['auc']:.3f} "
            f"| {m['cross_entropy']:.3f} |"
        )
    if args.out:
        args.out.write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
