"""`patronus ...`: the command line. Thin: parses flags, calls scanner.pipeline, writes reports, sets exit codes."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click

from scanner import __version__
from scanner.errors import PatronusError

_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", None) or click.exceptions.NoArgsIsHelp


class PatronusGroup(click.Group):
    """Click group whose usage errors exit 4 (the documented contract), not click's default 2."""

    def main(self, *args, **kwargs):  # type: ignore[override]
        kwargs.setdefault("standalone_mode", False)
        logging.basicConfig(level=logging.DEBUG if os.environ.get("PATRONUS_DEBUG") else logging.CRITICAL,
                            format="%(levelname)s %(name)s: %(message)s")
        try:
            return super().main(*args, **kwargs)
        except _NO_ARGS_IS_HELP as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
            sys.exit(0)
        except click.UsageError as exc:
            exc.show()
            sys.exit(4)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(2)
        except PatronusError as exc:  # raised by a command (e.g. scanner.errors.UsageError): its own exit code
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except Exception as exc:  # never a traceback for the user; PATRONUS_DEBUG=1 shows it
            if os.environ.get("PATRONUS_DEBUG"):
                raise
            click.echo(f"error: internal error: {type(exc).__name__}: {exc}", err=True)
            sys.exit(2)


@click.group(cls=PatronusGroup)
@click.version_option(__version__, prog_name="patronus")
def main() -> None:
    """Patronus Scanner: find transferable backdoors and unsafe weight files in pre-trained language models."""


SIZE_UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
              "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3}


def parse_size(text: str) -> int:
    """'5GB', '500MiB', '1234' -> bytes."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).upper() not in SIZE_UNITS:
        raise click.BadParameter(f"{text!r} is not a size like 500MB or 5GB")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).upper()])


FAIL_LEVELS = ["low", "medium", "high", "critical"]


@main.command()
@click.argument("target")
@click.option("--revision", help="Branch, tag or commit of a hub repo (resolved to a commit sha).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "sarif", "html"]), default="text",
              show_default=True, help="Report format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the report here.")
@click.option("--fail-on", type=click.Choice(FAIL_LEVELS), default="high", show_default=True,
              help="Exit 1 when the report's severity is at or above this level.")
@click.option("--profile", type=click.Choice(["quick", "standard", "thorough"]), default="standard",
              show_default=True, help="Search budget.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--corpus", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Clean reference sentences, one a line (default: shipped WordNet sentences).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--token", envvar="HF_TOKEN", help="Hub token for gated/private repos (default: $HF_TOKEN).")
@click.option("--max-size", default="5GB", show_default=True, help="Refuse hub downloads larger than this.")
@click.option("--static-only", is_flag=True, help="Only the static weight-file checks; no trigger search.")
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
def scan(target: str, revision: str | None, fmt: str, output: Path | None, fail_on: str, profile: str,
         device: str, corpus: Path | None, seed: int, token: str | None, max_size: str, static_only: bool,
         quiet: bool) -> int:
    """Scan TARGET (a local folder or a hub repo id) for unsafe weight files and transferable backdoors.

    Exit codes: 0 nothing at or above --fail-on; 1 findings at or above it; 2 the scan failed;
    3 nothing scannable; 4 usage error.
    """
    from scanner.cli_progress import TerminalProgress
    from scanner.config import ScanConfig
    from scanner.errors import UsageError
    from scanner.fetch import ModelRef
    from scanner.pipeline import exit_code_for
    from scanner.pipeline import scan as run_scan
    from scanner.renderers import render_text, write_report
    from scanner.report import Severity

    try:
        ref = ModelRef.parse(target, revision)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from exc
    config = ScanConfig(profile=profile, device=device, seed=seed, corpus=corpus, token=token,
                        max_size=parse_size(max_size), behavioural=not static_only)
    progress = TerminalProgress(enabled=not quiet)
    report = run_scan(ref, config, progress)
    progress.close()
    try:
        text = write_report(report, fmt, output)
    except OSError as exc:
        click.echo(f"error: cannot write report to {output}: {exc}", err=True)
        return 2
    if output is None:
        click.echo(text)
    elif not quiet:
        click.echo(render_text(report))
    for error in report.errors:
        click.echo(f"error: {error.message}", err=True)
    return exit_code_for(report, Severity(fail_on))


@main.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("out/demo"),
              show_default=True, help="Where the reports go.")
@click.option("--profile", type=click.Choice(["quick", "standard", "thorough"]), default="quick",
              show_default=True)
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path),
              default=Path.home() / ".cache" / "patronus" / "demo", show_default=True,
              help="Where the demo's planted model is kept between runs.")
def demo(out: Path, profile: str, cache: Path) -> int:
    """Scan a real clean encoder and a backdoored copy of it; write JSON, SARIF and HTML reports."""
    from scanner.cli_progress import TerminalProgress
    from scanner.demo import run_demo
    from scanner.renderers import render_text

    progress = TerminalProgress()
    click.echo("Planting a POR backdoor into MiniLM-L2 (first run only, ~2-4 min of CPU), then scanning...",
               err=True)
    cases = run_demo(out, cache, profile, progress)
    progress.close()
    ok = True
    for case in cases:
        click.echo(f"== {case.name} (expected: {case.expect})")
        click.echo(render_text(case.report))
        ok &= case.report.verdict.value == case.expect
    click.echo(f"Reports written to {out}/ (open {out}/minilm-l2-por-backdoored.html)")
    return 0 if ok else 1


@main.group()
def bench() -> None:
    """Benchmarks (results go to bench/results/ and bench/RESULTS.md)."""


@bench.command("detect")
@click.option("--families", default="bert,roberta,albert", show_default=True,
              help="Config-built families in the zoo (comma list).")
@click.option("--attacks", default="por,neuba,badpre,uor", show_default=True, help="Attacks planted (comma list).")
@click.option("--seeds", type=int, default=1, show_default=True, help="Trigger sets/seeds per family and attack.")
@click.option("--minilm", "minilm_layers", default="2", show_default=True,
              help="Sizes of the real MiniLM in the zoo, as layer counts (comma list: 2,6); empty for none.")
@click.option("--derived", type=int, default=1, show_default=True,
              help="Backdoored (and as many clean) models of each MiniLM size fine-tuned downstream.")
@click.option("--profile", type=click.Choice(["quick", "standard", "thorough"]), default="quick", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("bench/results"),
              show_default=True)
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path),
              default=Path.home() / ".cache" / "patronus" / "zoo", show_default=True)
@click.option("--include", "include", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="Already-planted model folders (with ground_truth.json) to add to the zoo; repeatable.")
@click.option("--merge", "merge", multiple=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Rows of an earlier detection.json (a part of the zoo run elsewhere) to score with; repeatable.")
@click.option("--device", default="cpu", show_default=True, help="Where planting and fine-tuning run (cpu, cuda).")
def bench_detect(families: str, attacks: str, seeds: int, minilm_layers: str, derived: int, profile: str, out: Path,
                 cache: Path, include: tuple[Path, ...], merge: tuple[Path, ...], device: str) -> int:
    """Build a zoo of backdoored and clean models, scan them all, write detection.json and detection.md."""
    from scanner.bench_detect import run_bench

    try:
        layers = tuple(int(n) for n in minilm_layers.split(",") if n.strip())
    except ValueError:
        raise click.BadParameter("comma list of layer counts, e.g. 2,6", param_hint="--minilm") from None
    summary = run_bench(out, cache, [f for f in families.split(",") if f], [a for a in attacks.split(",") if a],
                        seeds, layers, derived, profile, progress=lambda m: click.echo(m, err=True),
                        include=list(include), merge=list(merge), device=device)
    click.echo((out / "detection.md").read_text())
    overall = summary["overall"]
    click.echo(f"overall: TPR {overall['tpr']:.2f} FPR {overall['fpr']:.2f} AUC {overall['auc']:.3f}")
    return 0


@bench.command("calibrate")
@click.argument("detection", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--write/--dry-run", default=False, show_default=True,
              help="Write scanner/data/calibration.json (else only show the fit).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also rewrite detection.json/.md here with every row rescored under the new fit.")
def bench_calibrate(detection: Path, write: bool, out: Path | None) -> int:
    """Fit P(backdoored) on a zoo's detection.json (adaptive attacks left out) and show or ship it."""
    from dataclasses import asdict

    from scanner.bench_detect import calibrate_from, load_rows, rescore, summarize, write_summary
    from scanner.calibrate import as_calibration, write_calibration

    rows = load_rows(detection)
    data = json.loads(detection.read_text())
    fit = calibrate_from(rows, f"zoo of {len(rows)} models ({detection.name}, profile {data.get('profile')}); "
                               "adaptive attacks excluded from the fit; `patronus bench calibrate`")
    click.echo(json.dumps(asdict(fit), indent=2))
    if write:
        write_calibration(fit)
        click.echo("wrote scanner/data/calibration.json", err=True)
    if out is not None:
        summary = {**summarize(rescore(rows, as_calibration(fit))), "profile": data.get("profile"),
                   "seconds": data.get("seconds", 0.0), "sources": data.get("sources", []),
                   "calibration": asdict(fit)}
        write_summary(out, summary)
        o = summary["overall"]
        click.echo(f"rescored: TPR {o['tpr']:.2f} FPR {o['fpr']:.2f} AUC {o['auc']:.3f}")
    return 0


def run() -> None:
    """Entry point with exit codes as returned by commands."""
    result = main()
    sys.exit(result if isinstance(result, int) else 0)


from scanner.attack_cli import attack  # noqa: E402

main.add_command(attack)

from scanner.service_cli import beat, db, serve, worker  # noqa: E402

main.add_command(serve)
main.add_command(worker)
main.add_command(beat)
main.add_command(db)

from scanner.mitigate_cli import monitor, purify  # noqa: E402

main.add_command(monitor)
main.add_command(purify)
