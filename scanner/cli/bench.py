"""`patronus bench`: the detection zoo and the calibration fit."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group()
def bench() -> None:
    """Benchmarks (results go to bench/results/ and bench/RESULTS.md)."""


@bench.command("detect")
@click.option(
    "--families",
    default="bert,roberta,albert",
    show_default=True,
    help="Config-built families in the zoo (comma list).",
)
@click.option("--attacks", default="por,neuba,badpre,uor", show_default=True, help="Attacks planted (comma list).")
@click.option("--seeds", type=int, default=1, show_default=True, help="Trigger sets/seeds per family and attack.")
@click.option(
    "--minilm",
    "minilm_layers",
    default="2",
    show_default=True,
    help="Sizes of the real MiniLM in the zoo, as layer counts (comma list: 2,6); empty for none.",
)
@click.option(
    "--derived",
    type=int,
    default=1,
    show_default=True,
    help="Backdoored (and as many clean) models of each MiniLM size fine-tuned downstream.",
)
@click.option("--profile", type=click.Choice(["quick", "standard", "thorough"]), default="quick", show_default=True)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=Path("bench/results"), show_default=True
)
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path.home() / ".cache" / "patronus" / "zoo",
    show_default=True,
)
@click.option(
    "--include",
    "include",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Already-planted model folders (with ground_truth.json) to add to the zoo; repeatable.",
)
@click.option(
    "--merge",
    "merge",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Rows of an earlier detection.json (a part of the zoo run elsewhere) to score with; repeatable.",
)
@click.option(
    "--derived-tasks",
    default="",
    help="Issue 11's derivative zoo: tasks (comma list of movie,tweet,news,spam) every untouched MiniLM is fine-tuned "
    "on with every recipe, and the planted ones with every recipe on a rotating task; empty for none.",
)
@click.option(
    "--derived-recipes",
    default="steps200,epochs3,frozen",
    show_default=True,
    help="Fine-tuning recipes of the derivative zoo: steps200 (200 full steps), epochs3, frozen (head only), "
    "simcse (a sentence-embedding fine-tune on the task's text, saved with mean pooling).",
)
@click.option(
    "--derived-tasks-per-source",
    "tasks_per_source",
    type=int,
    default=1,
    show_default=True,
    help="Tasks each planted model is fine-tuned on (with every recipe) in the derivative zoo.",
)
@click.option(
    "--controls/--no-controls",
    default=True,
    show_default=True,
    help="A clean control planted beside every backdoored model (off: the untouched base is the clean model).",
)
@click.option(
    "--lineage/--no-lineage",
    default=False,
    show_default=True,
    help="Scan every derivative with its source as the known base (what `patronus scan --base` does).",
)
@click.option("--device", default="cpu", show_default=True, help="Where planting and fine-tuning run (cpu, cuda).")
def bench_detect(
    families: str,
    attacks: str,
    seeds: int,
    minilm_layers: str,
    derived: int,
    profile: str,
    out: Path,
    cache: Path,
    include: tuple[Path, ...],
    merge: tuple[Path, ...],
    derived_tasks: str,
    derived_recipes: str,
    controls: bool,
    tasks_per_source: int,
    lineage: bool,
    device: str,
) -> int:
    """Build a zoo of backdoored and clean models, scan them all, write detection.json and detection.md."""
    from scanner.research.zoo import DERIVED_RECIPES, EMBEDDING_RECIPES, run_bench

    recipes = tuple(r for r in derived_recipes.split(",") if r)
    unknown = sorted(set(recipes) - set(DERIVED_RECIPES + EMBEDDING_RECIPES))
    if unknown:
        raise click.BadParameter(f"unknown recipe(s) {', '.join(unknown)}", param_hint="--derived-recipes")
    try:
        layers = tuple(int(n) for n in minilm_layers.split(",") if n.strip())
    except ValueError:
        raise click.BadParameter("comma list of layer counts, e.g. 2,6", param_hint="--minilm") from None
    summary = run_bench(
        out,
        cache,
        [f for f in families.split(",") if f],
        [a for a in attacks.split(",") if a],
        seeds,
        layers,
        derived,
        profile,
        progress=lambda m: click.echo(m, err=True),
        include=list(include),
        merge=list(merge),
        device=device,
        derived_tasks=tuple(t for t in derived_tasks.split(",") if t),
        derived_recipes=recipes,
        controls=controls,
        tasks_per_source=tasks_per_source,
        lineage=lineage,
    )
    click.echo((out / "detection.md").read_text())
    overall = summary["overall"]
    click.echo(f"overall: TPR {overall['tpr']:.2f} FPR {overall['fpr']:.2f} AUC {overall['auc']:.3f}")
    return 0


@bench.command("calibrate")
@click.argument("detection", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--write/--dry-run",
    default=False,
    show_default=True,
    help="Write scanner/data/calibration.json (else only show the fit).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also rewrite detection.json/.md here with every row rescored under the new fit.",
)
def bench_calibrate(detection: Path, write: bool, out: Path | None) -> int:
    """Fit P(backdoored) on a zoo's detection.json (adaptive attacks left out) and show or ship it."""
    from dataclasses import asdict

    from scanner.research.calibration import as_calibration, write_calibration
    from scanner.research.zoo import calibrate_from, load_rows, rescore, summarize, write_summary

    rows = load_rows(detection)
    data = json.loads(detection.read_text())
    fit = calibrate_from(
        rows,
        f"zoo of {len(rows)} models ({detection.name}, profile {data.get('profile')}); "
        "adaptive attacks excluded from the fit; `patronus bench calibrate`",
    )
    click.echo(json.dumps(asdict(fit), indent=2))
    if write:
        write_calibration(fit)
        click.echo("wrote scanner/data/calibration.json", err=True)
    if out is not None:
        summary = {
            **summarize(rescore(rows, as_calibration(fit))),
            "profile": data.get("profile"),
            "seconds": data.get("seconds", 0.0),
            "sources": data.get("sources", []),
            "calibration": asdict(fit),
        }
        write_summary(out, summary)
        o = summary["overall"]
        click.echo(f"rescored: TPR {o['tpr']:.2f} FPR {o['fpr']:.2f} AUC {o['auc']:.3f}")
    return 0
