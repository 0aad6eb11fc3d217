"""`patronus ...`: the command line. Thin: parses flags, calls scanner.pipeline, writes reports, sets exit codes.

One module per command group; the exit-code table is scanner/cli/exit_codes.py.
"""

from __future__ import annotations

from scanner.cli.attack import attack
from scanner.cli.bench import bench
from scanner.cli.demo import demo
from scanner.cli.gate import gate, lock
from scanner.cli.group import main, run
from scanner.cli.mitigate import monitor, purify
from scanner.cli.scan import scan
from scanner.cli.service import beat, db, serve, worker

for _command in (scan, demo, bench, attack, monitor, purify, serve, worker, beat, db):
    main.add_command(_command)
main.add_command(gate)
main.add_command(lock)

__all__ = ["main", "run"]
