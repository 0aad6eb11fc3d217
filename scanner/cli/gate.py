"""`patronus gate` and `patronus lock`: the CI adoption gate over every model a codebase loads."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from scanner.gate.policy import Policy

_PATHS = click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))


def _common(func):  # noqa: ANN001, ANN202 - click decorator stack
    options = [
        click.option(
            "--policy",
            "policy_path",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Policy file (default: patronus.toml, else [tool.patronus] in pyproject.toml, found "
            "from the current folder upwards).",
        ),
        click.option(
            "--models",
            "models_file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Extra models, org/name@revision per line (default: the policy's models_file).",
        ),
        click.option(
            "--server",
            help="Patronus service URL: use its verdicts for shas it has scanned "
            "(default: the policy's server); anything else is scanned locally.",
        ),
        click.option("--server-token", envvar="PATRONUS_API_TOKEN", help="Bearer token for --server."),
        click.option(
            "--cache-dir",
            type=click.Path(file_okay=False, path_type=Path),
            envvar="PATRONUS_GATE_CACHE",
            help="Hub snapshots (hub/) and reports by sha (results/); default ~/.cache/patronus.",
        ),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
        click.option("--token", envvar="HF_TOKEN", help="Hub token for gated/private repos (default: $HF_TOKEN)."),
        click.option(
            "--profile", type=click.Choice(["quick", "standard", "thorough"]), help="Override the policy's profile."
        ),
        click.option("--static-only", is_flag=True, default=None, help="Override: static checks only."),
        click.option(
            "--fail-on", type=click.Choice(["low", "medium", "high", "critical"]), help="Override the policy's fail_on."
        ),
        click.option("--refresh", is_flag=True, help="Scan again even when a result for the sha is cached."),
        click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _options(
    paths: tuple[Path, ...],
    policy_path: Path | None,
    models_file: Path | None,
    server: str | None,
    server_token: str | None,
    cache_dir: Path | None,
    device: str,
    token: str | None,
    profile: str | None,
    static_only: bool | None,
    fail_on: str | None,
    refresh: bool,
    quiet: bool,
    locked: bool = False,
):  # noqa: ANN202
    from scanner.gate.policy import load_policy
    from scanner.gate.runner import GateOptions

    loaded = load_policy(policy_path, Path.cwd())
    overrides = {
        k: v
        for k, v in (("profile", profile), ("static_only", static_only or None), ("fail_on", fail_on))
        if v is not None
    }
    if overrides:
        loaded.policy = Policy.model_validate({**loaded.policy.model_dump(), **overrides})
    root = Path.cwd().resolve()
    chosen = list(paths) or [root]

    def echo(message: str) -> None:
        if not quiet:
            click.echo(message, err=True)

    return GateOptions(
        paths=chosen,
        loaded=loaded,
        root=root,
        models_file=models_file,
        server=server,
        server_token=server_token,
        locked=locked,
        cache_dir=cache_dir,
        device=device,
        token=token,
        refresh=refresh,
        echo=echo,
    )


@click.command()
@_PATHS
@_common
@click.option("--locked", is_flag=True, help="Fail a model whose resolved sha or files differ from patronus.lock.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "sarif", "cyclonedx"]),
    default="text",
    show_default=True,
    help="Output format.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the output here.")
@click.option(
    "--sarif",
    "sarif_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write SARIF (for code scanning) here.",
)
def gate(
    paths: tuple[Path, ...], locked: bool, fmt: str, output: Path | None, sarif_path: Path | None, **common
) -> int:
    """Check every model the Python code under PATHS (default: .) adopts against the policy.

    Finds from_pretrained / SentenceTransformer / pipeline(model=...) / hf_hub_download / snapshot_download calls
    with literal ids (ast, never importing the code), scans each commit once (or reuses a result on record),
    and exits 0 pass, 1 finding or policy violation, 2 a model could not be fetched or scanned, 3 nothing
    scannable, 4 usage or policy error.
    """
    from scanner.gate.output import render, render_sarif, render_text
    from scanner.gate.runner import run_gate
    from scanner.report.output import atomic_write

    options = _options(paths, locked=locked, **common)
    result = run_gate(options)
    text = render(result, fmt)
    if output is not None:
        atomic_write(output, text)
        if not common["quiet"] and fmt != "text":
            click.echo(render_text(result), err=True, nl=False)
    else:
        click.echo(text, nl=False)
    if sarif_path is not None:
        atomic_write(sarif_path, render_sarif(result))
    return result.exit_code


@click.command()
@_PATHS
@_common
@click.option("--check", is_flag=True, help="Exit 1 when the lock file would change (write nothing).")
def lock(paths: tuple[Path, ...], check: bool, **common) -> int:
    """Scan every adopted model and record its sha, file hashes and verdict in patronus.lock.

    Exits like `patronus gate` (a model that fails the policy is recorded, and the exit code says so).
    """
    from scanner.gate.lock import read_lock
    from scanner.gate.output import render_text
    from scanner.gate.runner import run_gate, update_lock

    options = _options(paths, **common)
    path = options.loaded.root / options.policy.lock_file
    lockfile = read_lock(path)
    before = lockfile.pins() if path.exists() else None
    result = run_gate(options, lockfile)
    keys = update_lock(result, lockfile)
    changed = lockfile.pins() != before
    if check:
        click.echo(f"{path}: {'out of date' if changed else 'up to date'}", err=True)
        return 1 if changed else result.exit_code
    lockfile.write(path)
    click.echo(render_text(result), err=True, nl=False)
    click.echo(f"wrote {path} ({len(keys)} model(s))", file=sys.stderr)
    return result.exit_code
