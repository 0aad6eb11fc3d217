"""The shipped CI integration: action.yml's shell steps run here exactly as written (bash -eo pipefail, inputs
through env, $GITHUB_OUTPUT between steps) against the sample codebase and the hub stand-in, and the pre-commit
hooks' entries run as pre-commit would run them. Steps that use other actions (setup-python, cache, upload-sarif)
are GitHub's; they are listed, not run."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXPRESSION = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")
USED_ACTIONS = {"actions/setup-python@v5", "actions/cache@v4", "github/codeql-action/upload-sarif@v3"}


def _outputs(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


class ActionRun:
    """Runs the composite action's `run:` steps in order, as the GitHub runner does."""

    def __init__(self, action: dict, inputs: dict[str, str], workdir: Path, temp: Path, env: dict[str, str]) -> None:
        defaults = {name: spec.get("default", "") for name, spec in action["inputs"].items()}
        unknown = set(inputs) - set(defaults)
        assert not unknown, f"not inputs of action.yml: {unknown}"
        self.inputs = {**defaults, **inputs}
        self.action = action
        self.workdir, self.temp, self.env = workdir, temp, env
        self.step_outputs: dict[str, dict[str, str]] = {}
        self.skipped: list[str] = []

    def expand(self, text: str) -> str:
        def value(match: re.Match) -> str:
            expr = match.group(1)
            if expr.startswith("inputs."):
                return self.inputs[expr.removeprefix("inputs.")]
            if expr == "github.action_path":
                return str(REPO)
            if expr == "runner.temp":
                return str(self.temp)
            if expr == "runner.os":
                return "Linux"
            step = re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expr)
            if step:
                return self.step_outputs.get(step.group(1), {}).get(step.group(2), "")
            raise AssertionError(f"expression the test runner does not know: {expr}")

        return EXPRESSION.sub(value, str(text))

    def run(self) -> list[subprocess.CompletedProcess]:
        done = []
        for index, step in enumerate(self.action["runs"]["steps"]):
            if "uses" in step:
                self.skipped.append(step["uses"])
                continue
            assert step["shell"] == "bash"
            output = self.temp / f"output-{index}"
            env = {
                **self.env,
                **{k: self.expand(v) for k, v in step.get("env", {}).items()},
                "GITHUB_OUTPUT": str(output),
                "GITHUB_STEP_SUMMARY": str(self.temp / "summary.md"),
            }
            script = self.temp / f"step-{index}.sh"
            script.write_text(step["run"])
            assert "${{" not in step["run"], "inputs go through env:, never into the script text"
            proc = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                cwd=self.workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            done.append(proc)
            if "id" in step:
                self.step_outputs[step["id"]] = _outputs(output)
            if proc.returncode != 0:
                break
        return done


@pytest.fixture
def action() -> dict:
    return yaml.safe_load((REPO / "action.yml").read_text())


def _env(hub, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PATRONUS_", "HF_", "GITHUB_"))}
    env.update(
        {
            "HF_ENDPOINT": hub.url,
            "HOME": str(tmp_path / "home"),
            "PYTHONPATH": str(REPO),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "OMP_NUM_THREADS": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }
    )
    return env


def test_action_steps_run_the_gate_write_sarif_and_cache_by_sha(action, hub, sample: Path, tmp_path: Path) -> None:
    cache = tmp_path / "gate-cache"
    inputs = {
        "cache-dir": str(cache),
        "args": "--device cpu",
        # a real install of this checkout, without touching the test environment's packages
        "pip-args": f"--no-deps --no-build-isolation --quiet --target {tmp_path / 'site'}",
    }
    runner = ActionRun(action, inputs, sample, tmp_path, _env(hub, tmp_path))
    steps = runner.run()
    assert set(runner.skipped) == USED_ACTIONS
    assert [p.returncode for p in steps] == [0, 0, 0, 0], [p.stderr[-2000:] for p in steps]
    assert (tmp_path / "site" / "scanner" / "gate" / "runner.py").is_file()  # the install step installed it
    assert runner.step_outputs["gate"]["exit-code"] == "0"
    sarif = json.loads((sample / "patronus.sarif").read_text())
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in sarif["runs"][0]["results"]}
    assert {"app/encoder.py", "app/search.py", "app/classify.py", "models.txt"} <= uris
    cached = sorted(p.name for p in (cache / "results").rglob("*.json"))
    shas = {repo.refs["main"] for repo in hub.repos.values()}
    assert len(cached) == 4 and {name.split("-")[0] for name in cached} == shas  # results by commit sha
    assert "Patronus adoption gate" in (tmp_path / "summary.md").read_text()

    # a second run restores nothing new to scan: every sha is on record in the cache
    again = ActionRun(
        action,
        inputs | {"pip-args": "--no-deps --no-build-isolation --quiet --dry-run"},
        sample,
        tmp_path,
        _env(hub, tmp_path),
    )
    assert [p.returncode for p in again.run()] == [0, 0, 0, 0]
    assert "0 scan(s) run" in (sample / "patronus-gate.log").read_text()


def test_action_fails_the_job_on_a_failing_gate_after_writing_sarif(action, hub, sample: Path, tmp_path: Path) -> None:
    (sample / "patronus.toml").write_text('static_only = true\ndeny = ["acme/sentence"]\n')
    inputs = {"cache-dir": str(tmp_path / "c"), "pip-args": "--no-deps --no-build-isolation --quiet --dry-run"}
    runner = ActionRun(action, inputs, sample, tmp_path, _env(hub, tmp_path))
    steps = runner.run()
    assert [p.returncode for p in steps] == [0, 0, 0, 1]
    assert "::error title=Patronus adoption gate::patronus gate exited 1" in steps[-1].stdout
    results = json.loads((sample / "patronus.sarif").read_text())["runs"][0]["results"]
    assert any(r["ruleId"] == "PATG03" for r in results)


def test_pre_commit_hooks_run_their_entries(hub, sample: Path, tmp_path: Path) -> None:
    hooks = {h["id"]: h for h in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}
    assert set(hooks) == {"patronus-gate", "patronus-gate-locked"}
    env = _env(hub, tmp_path) | {"PATRONUS_GATE_CACHE": str(tmp_path / "c")}
    gate = hooks["patronus-gate"]
    assert gate["types"] == ["python"]
    # pre-commit appends the staged file names
    proc = subprocess.run(
        [*shlex.split(gate["entry"]), "app/classify.py"],
        cwd=sample,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "acme/classifier@v1" in proc.stdout and "acme/sentence" not in proc.stdout
    locked = hooks["patronus-gate-locked"]
    assert locked["pass_filenames"] is False
    proc = subprocess.run(
        shlex.split(locked["entry"]), cwd=sample, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 1 and "not in patronus.lock" in proc.stdout
