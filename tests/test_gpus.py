"""`patronus worker --gpus`: device selection, node names, and the supervisor's children and exit status."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from scanner.cli import main
from scanner.cli.exit_codes import ExitCode
from scanner.cli.gpus import GpuWorker, parse_gpus, plan, supervise


def test_gpu_selection() -> None:
    assert parse_gpus("all", 4) == ["0", "1", "2", "3"]
    assert parse_gpus("2", 4) == ["0", "1"]
    assert parse_gpus("3,1,3", 4) == ["3", "1"]
    for spec, available, message in [("all", 0, "none visible"), ("5", 4, "5 GPUs"), ("0,7", 2, "no such GPU: 7")]:
        with pytest.raises(ValueError, match=message):
            parse_gpus(spec, available)


def test_one_pinned_worker_per_gpu() -> None:
    workers = plan(["0", "3"], "scan@box")
    assert [w.hostname for w in workers] == ["scan-gpu0@box", "scan-gpu3@box"]
    assert workers[1].env({"PATH": "/bin"}) == {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "3"}


def test_supervisor_runs_every_child_and_returns_the_first_failure() -> None:
    children = [GpuWorker("0", "a-gpu0@h"), GpuWorker("1", "a-gpu1@h")]
    assert supervise(children, ["--help"]) == 0  # real child processes of `python -m scanner.cli worker`
    assert supervise(children, ["--no-such-flag"]) == ExitCode.USAGE  # each child's usage error comes back


def test_worker_gpus_on_a_machine_without_one() -> None:
    result = CliRunner().invoke(main, ["worker", "--gpus", "all"])
    assert result.exit_code == ExitCode.USAGE and "none visible" in result.output, result.output
