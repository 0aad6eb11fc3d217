"""`patronus scan`: one model, one report, an exit code by --fail-on."""

from __future__ import annotations

from pathlib import Path

import click

from scanner.cli.exit_codes import ExitCode, for_report
from scanner.cli.options import FAIL_LEVELS, parse_size
from scanner.config import BASE_FROM_CARD, NO_BASE
from scanner.report import FORMATS


@click.command()
@click.argument("target")
@click.option("--revision", help="Branch, tag or commit of a hub repo (resolved to a commit sha).")
@click.option(
    "--format", "fmt", type=click.Choice(list(FORMATS)), default="text", show_default=True, help="Report format."
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the report here.")
@click.option(
    "--fail-on",
    type=click.Choice(FAIL_LEVELS),
    default="high",
    show_default=True,
    help="Exit 1 when the report's severity is at or above this level.",
)
@click.option(
    "--profile",
    type=click.Choice(["quick", "standard", "thorough"]),
    default="standard",
    show_default=True,
    help="Search budget.",
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option(
    "--corpus",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Clean reference sentences, one a line (default: shipped WordNet sentences).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--token", envvar="HF_TOKEN", help="Hub token for gated/private repos (default: $HF_TOKEN).")
@click.option("--max-size", default="5GB", show_default=True, help="Refuse hub downloads larger than this.")
@click.option(
    "--base",
    metavar="REF|auto|none",
    default=BASE_FROM_CARD,
    show_default=True,
    help="The base model TARGET was fine-tuned from (folder or hub repo; 'auto': the card's base_model, when it "
    "names one; 'none': no lineage): findings are scored in it too, and what does not fire there is reported as a "
    "task feature.",
)
@click.option("--static-only", is_flag=True, help="Only the static weight-file checks; no trigger search.")
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
def scan(
    target: str,
    revision: str | None,
    fmt: str,
    output: Path | None,
    fail_on: str,
    profile: str,
    device: str,
    corpus: Path | None,
    seed: int,
    token: str | None,
    max_size: str,
    base: str | None,
    static_only: bool,
    quiet: bool,
) -> int:
    """Scan TARGET (a local folder or a hub repo id) for unsafe weight files and transferable backdoors.

    Exit codes: 0 nothing at or above --fail-on; 1 findings at or above it; 2 the scan failed;
    3 nothing scannable; 4 usage error.
    """
    from scanner.cli.progress import TerminalProgress
    from scanner.config import ScanConfig
    from scanner.errors import UsageError
    from scanner.fetch import ModelRef
    from scanner.mitigate.extras import report_extras
    from scanner.pipeline import scan as run_scan
    from scanner.report import Severity
    from scanner.report.output import write_report
    from scanner.report.text import render_text

    try:
        ref = ModelRef.parse(target, revision)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from exc
    config = ScanConfig(
        profile=profile,
        device=device,
        seed=seed,
        corpus=corpus,
        token=token,
        max_size=parse_size(max_size),
        behavioural=not static_only,
    )
    progress = TerminalProgress(enabled=not quiet)
    report = run_scan(ref, config, progress, base=None if base == NO_BASE else base)
    progress.close()
    try:
        extras = report_extras(report)
        text = write_report(report, fmt, output, extras)
    except OSError as exc:
        click.echo(f"error: cannot write report to {output}: {exc}", err=True)
        return ExitCode.FAILED
    if output is None:
        click.echo(text)
    elif not quiet:
        click.echo(render_text(report, extras))
    for error in report.errors:
        click.echo(f"error: {error.message}", err=True)
    return for_report(report, Severity(fail_on))
