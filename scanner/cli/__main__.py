"""`python -m scanner.cli`: the same as the `patronus` command (the GPU supervisor starts its children this way)."""

from scanner.cli import run

run()
