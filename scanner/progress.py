"""Progress reporting: the pipeline calls a Progress; the CLI shows bars, the worker writes status rows."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class Progress(Protocol):
    def __call__(self, stage: str, fraction: float | None = None, message: str = "") -> None:
        """stage: fetch | static | load | prepare | search | verdict | report; fraction in 0..1 when known."""


def silent(stage: str, fraction: float | None = None, message: str = "") -> None:
    """A Progress that shows nothing."""


class StageClock:
    """A Progress that forwards every call and times the stages: each stage runs from its first call to the first
    call of the next one (the last ends at `stop()`). Seconds per stage name, summed over repeats."""

    def __init__(self, inner: Progress = silent, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self.inner = inner
        self.stage: str | None = None
        self.since = self._now()
        self.totals: dict[str, float] = {}

    def __call__(self, stage: str, fraction: float | None = None, message: str = "") -> None:
        if stage != self.stage:
            self._close()
            self.stage = stage
        self.inner(stage, fraction, message)

    def _close(self) -> None:
        now = self._now()
        if self.stage is not None:
            self.totals[self.stage] = self.totals.get(self.stage, 0.0) + now - self.since
        self.since = now

    def stop(self) -> dict[str, float]:
        """End the current stage; the seconds per stage, rounded to milliseconds."""
        self._close()
        self.stage = None
        return {name: round(seconds, 3) for name, seconds in self.totals.items()}
