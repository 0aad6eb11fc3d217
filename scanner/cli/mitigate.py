"""`patronus monitor` and `patronus purify`: thin shells around scanner.mitigate."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from scanner.cli.exit_codes import ExitCode

PURIFICATION_PAGE = "purification.html"


def _load_report(path: Path):
    """A scan report from JSON; any problem with it is a usage error (exit 4)."""
    from scanner.report import Report

    try:
        return Report.from_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise click.UsageError(f"--report {path}: not a readable Patronus report ({exc})") from exc


def _inputs(texts: tuple[str, ...]) -> list[str]:
    """TEXT arguments in order; '-' stands for the lines of stdin."""
    out: list[str] = []
    for text in texts:
        if text == "-":
            out.extend(line.rstrip("\r\n") for line in sys.stdin)
        else:
            out.append(text)
    return out


def write_purification_page(output: Path, record: dict) -> Path:
    """Write purification.html (the before/after table, every value escaped) beside purification.json."""
    from scanner.report.html import render_purification_page
    from scanner.report.output import atomic_write

    path = output / PURIFICATION_PAGE
    atomic_write(path, render_purification_page(record))
    return path


def _describe(result) -> str:
    return ", ".join(f"{m.rule}@{m.start}-{m.end} ({m.kind}, trigger {m.trigger})" for m in result.matches)


@click.command()
@click.argument("texts", nargs=-1)
@click.option(
    "--report",
    "report_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Scan report (JSON) whose triggers become the rules.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: one line per input; json: one JSON object per line.",
)
@click.option("--strip", "strip_", is_flag=True, help="Also output each input with the triggers removed.")
@click.option(
    "--model",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Model folder (safetensors): tokenizer-aware matching and the feature check.",
)
@click.option(
    "--min-ratio",
    type=float,
    default=0.25,
    show_default=True,
    help="Keep look-alikes whose shift is at least this share of their trigger's.",
)
def monitor(
    texts: tuple[str, ...], report_path: Path, fmt: str, strip_: bool, model: Path | None, min_ratio: float
) -> int:
    """Check TEXT inputs ('-' reads lines from stdin) for triggers a scan recovered.

    Exit codes: 0 no input flagged; 1 some input flagged; 2 the model could not be loaded; 4 usage error.
    """
    from scanner.errors import PatronusError
    from scanner.mitigate.monitor import Monitor, MonitorRules

    report = _load_report(report_path)
    inputs = _inputs(texts)
    if not inputs:
        raise click.UsageError("no input: give TEXT arguments, or - to read lines from stdin")
    rules = MonitorRules.from_report(report, min_ratio=min_ratio)
    encoder = None
    if model is not None:
        from scanner.encoder import load_encoder

        try:
            encoder = load_encoder(model, "cpu", pickle_allowed=False)
        except PatronusError as exc:
            click.echo(f"error: {exc}", err=True)
            return 2
    mon = Monitor(rules, encoder=encoder)
    results = mon.check_many(inputs)
    for index, (text, res) in enumerate(zip(inputs, results, strict=True)):
        stripped = mon.strip(text) if strip_ else None
        if fmt == "json":
            item = {"index": index, "text": text, **res.to_dict()}
            if stripped is not None:
                item["stripped"] = stripped
            click.echo(json.dumps(item, ensure_ascii=False))
        elif strip_:
            click.echo(stripped)
        else:
            feature = ""
            if res.feature is not None:
                f = res.feature
                feature = f"; shift {f.shift:.3g}, z {f.score:.1f} {'>=' if f.exceeds else '<'} {f.threshold:.2f}"
            click.echo(f"FLAGGED\t{text}\t{_describe(res)}{feature}" if res.flagged else f"ok\t{text}")
    flagged = sum(r.flagged for r in results)
    if fmt == "text" and strip_:
        click.echo(f"{flagged}/{len(results)} inputs flagged", err=True)
    return 1 if flagged else 0


@click.command()
@click.argument("target")
@click.option(
    "--report",
    "report_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Scan report (JSON) of TARGET: its triggers are purified.",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the purified model and purification.json (a checkpoint here is resumed).",
)
@click.option("--steps", type=click.IntRange(1), default=300, show_default=True)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=2e-4,
    show_default=True,
    help="Peak learning rate (linear warm-up and decay).",
)
@click.option("--batch-size", type=click.IntRange(1), default=24, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--checkpoint-every",
    type=click.IntRange(0),
    default=50,
    show_default=True,
    help="Steps between checkpoints (0: none).",
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option(
    "--corpus",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Clean sentences, one a line (default: the shipped reference corpus).",
)
@click.option("--no-lookalikes", is_flag=True, help="Purify the report's triggers only, not their look-alikes.")
@click.option(
    "--rescan",
    type=click.Choice(["none", "quick", "standard"]),
    default="none",
    show_default=True,
    help="Scan the purified model and add the verdict to purification.json.",
)
@click.option(
    "--rounds",
    type=click.IntRange(1, 10),
    default=1,
    show_default=True,
    help="Purify, rescan, and purify again from what the rescan still finds, up to this many rounds "
    "(rescans with --rescan's profile, quick when none).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def purify(
    target: str,
    report_path: Path,
    output: Path,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    checkpoint_every: int,
    device: str,
    corpus: Path | None,
    no_lookalikes: bool,
    rescan: str,
    rounds: int,
    quiet: bool,
) -> int:
    """Remove the backdoor of TARGET (a local model folder or hub repo id) by adversarial pre-training on the
    triggers its scan report recovered. Writes a safetensors model, its tokenizer, purification.json and
    purification.html (the before/after table).

    Exit codes: 0 purified; 2 failed (unreadable model, dangerous serialization); 4 usage error.
    """
    from tqdm import tqdm

    from scanner.corpus import load_corpus
    from scanner.encoder import resolve_device
    from scanner.errors import PatronusError, UsageError
    from scanner.fetch import ModelRef, fetch
    from scanner.mitigate.purify import (
        PurifyConfig,
        StepInfo,
        purify_rounds,
        render_purification_text,
        rescan_record,
    )
    from scanner.mitigate.purify import purify as run_purify

    report = _load_report(report_path)
    bar: tqdm | None = None

    def on_step(info: StepInfo) -> None:
        nonlocal bar
        if quiet:
            return
        if bar is None:
            bar = tqdm(total=info.total, initial=info.step - 1, desc="purify", unit="step", file=sys.stderr)
        bar.update(1)
        bar.set_postfix(loss=f"{info.loss:.4f}", trigger=f"{info.trigger:.4f}")

    try:
        ref = ModelRef.parse(target)
        local = fetch(ref).local_dir if ref.path is None else Path(ref.path)
        cfg = PurifyConfig(
            steps=steps,
            lr=lr,
            batch_size=batch_size,
            seed=seed,
            checkpoint_every=checkpoint_every,
            lookalikes=not no_lookalikes,
            device=str(resolve_device(device)),
        )
        sentences = load_corpus(corpus) if corpus else None
        if rounds > 1:

            def on_round(number: int, rec: dict) -> None:
                nonlocal bar
                if bar is not None:
                    bar.close()
                    bar = None
                scan = rec["rescan"]
                click.echo(
                    f"round {number}: rescan {scan['verdict']} (P {scan['probability']:.3f})"
                    + (f", still found: {', '.join(scan['triggers'])}" if scan["triggers"] else ""),
                    err=True,
                )

            record = purify_rounds(
                local,
                report,
                output,
                cfg,
                rounds=rounds,
                profile=rescan if rescan != "none" else "quick",
                corpus=sentences,
                on_step=on_step,
                on_round=on_round,
            )
        else:
            record = run_purify(local, report, output, cfg, corpus=sentences, on_step=on_step)
            if rescan != "none":
                record = rescan_record(output, record, rescan)
        write_purification_page(output, record)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from exc
    except PatronusError as exc:
        click.echo(f"error: {exc}", err=True)
        return ExitCode.FAILED  # purify documents 0, 2 and 4 only (nothing scannable is a failure here)
    finally:
        if bar is not None:
            bar.close()
    click.echo(render_purification_text(record))
    return 0
