"""The `patronus` command group: usage errors exit 4, no traceback reaches the user."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click

from scanner import __version__
from scanner.cli.exit_codes import ExitCode, for_error
from scanner.errors import PatronusError


class PatronusGroup(click.Group):
    """Click group whose usage errors exit 4 (the documented contract), not click's default 2."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("standalone_mode", False)
        logging.basicConfig(
            level=logging.DEBUG if os.environ.get("PATRONUS_DEBUG") else logging.CRITICAL,
            format="%(levelname)s %(name)s: %(message)s",
        )
        try:
            return super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            ctx = getattr(exc, "ctx", None)
            click.echo(ctx.get_help() if ctx else str(exc))
            sys.exit(0)
        except click.UsageError as exc:
            exc.show()
            sys.exit(ExitCode.USAGE)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(ExitCode.FAILED)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(ExitCode.FAILED)
        except PatronusError as exc:  # raised by a command (e.g. scanner.errors.UsageError): its own exit code
            click.echo(f"error: {exc}", err=True)
            sys.exit(for_error(exc))
        except Exception as exc:  # never a traceback for the user; PATRONUS_DEBUG=1 shows it
            if os.environ.get("PATRONUS_DEBUG"):
                raise
            click.echo(f"error: internal error: {type(exc).__name__}: {exc}", err=True)
            sys.exit(ExitCode.FAILED)


@click.group(cls=PatronusGroup)
@click.version_option(__version__, prog_name="patronus")
def main() -> None:
    """Patronus Scanner: find transferable backdoors and unsafe weight files in pre-trained language models."""


def run() -> None:
    """Entry point with exit codes as returned by commands."""
    result = main()
    sys.exit(result if isinstance(result, int) else 0)
