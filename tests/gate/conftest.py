"""Gate fixtures: the sample codebase (tests/gate/sample) copied to a temporary folder and made the working
directory, the loopback hub stand-in publishing the models it adopts, and the CLI run in-process."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.gate.gatekit import SAMPLE, SAMPLE_MODELS, model_files, write_policy
from tests.hub_stub import HubStub


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubStub]:
    """The hub stand-in with every model the sample adopts (acme/classifier also tagged v1)."""
    with HubStub() as stub:
        for index, repo in enumerate(SAMPLE_MODELS):
            stub.add_repo(repo, model_files(float(index)))
        stub.set_ref("acme/classifier", "v1", stub.repos["acme/classifier"].refs["main"])
        monkeypatch.setenv("HF_ENDPOINT", stub.url)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.delenv("PATRONUS_GATE_CACHE", raising=False)
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        yield stub


@pytest.fixture
def sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the sample codebase as the working directory, with a static-only policy naming models.txt."""
    root = tmp_path / "repo"
    shutil.copytree(SAMPLE, root)
    write_policy(root)
    monkeypatch.chdir(root)
    return root


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(tmp_path: Path):
    """Run `patronus ARGS` in-process (the real click group); results cache under tmp_path."""
    from scanner.cli import main

    cache = tmp_path / "cache"

    def invoke(*args: str, cache_dir: Path | None = cache) -> CliResult:
        extra = ["--cache-dir", str(cache_dir)] if cache_dir is not None and args[0] in ("gate", "lock") else []
        result = CliRunner().invoke(main, [*args, *extra], catch_exceptions=False)
        code = result.return_value if isinstance(result.return_value, int) else result.exit_code
        return CliResult(code=code, stdout=result.stdout, stderr=result.stderr)

    return invoke
