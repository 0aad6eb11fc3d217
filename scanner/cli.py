"""`patronus ...`: the command line. Thin: parses flags, calls scanner.pipeline, writes reports, sets exit codes."""

from __future__ import annotations

import sys

import click

from scanner import __version__


class PatronusGroup(click.Group):
    """Click group whose usage errors exit 4 (the documented contract), not click's default 2."""

    def main(self, *args, **kwargs):  # type: ignore[override]
        kwargs.setdefault("standalone_mode", False)
        try:
            return super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelp as exc:
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


@click.group(cls=PatronusGroup)
@click.version_option(__version__, prog_name="patronus")
def main() -> None:
    """Patronus Scanner: find transferable backdoors and unsafe weight files in pre-trained language models."""


def run() -> None:
    """Entry point with exit codes as returned by commands."""
    result = main()
    sys.exit(result if isinstance(result, int) else 0)


from scanner.attack_cli import attack  # noqa: E402

main.add_command(attack)
