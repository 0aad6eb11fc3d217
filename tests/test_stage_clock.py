"""The pipeline's stage clock: seconds per stage, every call forwarded, exceptions of the inner Progress kept."""

from __future__ import annotations

import pytest

from scanner.progress import StageClock


class _Tick:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_each_stage_runs_until_the_next_begins():
    tick, calls = _Tick(), []
    clock = StageClock(lambda stage, fraction=None, message="": calls.append(stage), now=tick)
    clock("fetch", 0.0)
    tick.t += 2.0
    clock("fetch", 0.5)  # same stage: no split
    tick.t += 1.0
    clock("static")
    tick.t += 0.25
    clock("load")
    tick.t += 4.0
    clock("search", 0.1)
    tick.t += 10.0
    clock("fetch")  # a stage seen again (the lineage base's fetch) adds to its total
    tick.t += 0.5
    assert clock.stop() == {"fetch": 3.5, "static": 0.25, "load": 4.0, "search": 10.0}
    assert calls == ["fetch", "fetch", "static", "load", "search", "fetch"]


def test_inner_exceptions_pass_through():
    class Stop(BaseException):
        pass

    def refuse(stage: str, fraction: float | None = None, message: str = "") -> None:
        raise Stop()

    with pytest.raises(Stop):
        StageClock(refuse)("search")
