"""`patronus demo`: the main job on the embedded default."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out/demo"),
    show_default=True,
    help="Where the reports go.",
)
@click.option("--profile", type=click.Choice(["quick", "standard", "thorough"]), default="quick", show_default=True)
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path.home() / ".cache" / "patronus" / "demo",
    show_default=True,
    help="Where the demo's planted model is kept between runs.",
)
def demo(out: Path, profile: str, cache: Path) -> int:
    """Scan a real clean encoder and a backdoored copy of it; write JSON, SARIF and HTML reports."""
    from scanner.cli.progress import TerminalProgress
    from scanner.mitigate.extras import report_extras
    from scanner.report.text import render_text
    from scanner.research.demo import run_demo

    progress = TerminalProgress()
    click.echo("Planting a POR backdoor into MiniLM-L2 (first run only, ~2-4 min of CPU), then scanning...", err=True)
    cases = run_demo(out, cache, profile, progress)
    progress.close()
    ok = True
    for case in cases:
        assert case.report is not None  # run_demo scans every case
        click.echo(f"== {case.name} (expected: {case.expect})")
        click.echo(render_text(case.report, report_extras(case.report)))
        ok &= case.report.verdict.value == case.expect
    click.echo(f"Reports written to {out}/ (open {out}/minilm-l2-por-backdoored.html)")
    return 0 if ok else 1
