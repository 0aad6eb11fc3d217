"""Progress reporting: the pipeline calls a Progress; the CLI shows bars, the worker writes status rows."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def __call__(self, stage: str, fraction: float | None = None, message: str = "") -> None:
        """stage: fetch | static | load | search | verdict | report; fraction in 0..1 when known."""


def silent(stage: str, fraction: float | None = None, message: str = "") -> None:
    """A Progress that shows nothing."""
