"""`patronus scan` as a CI user runs it: real processes, real exit codes, reports on disk."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import hostile_pickles as hp  # noqa: I001  (tests/ is on the path)
import pytest

from scanner.report import Report, render_html, render_sarif


def patronus(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from scanner.cli import run; run()", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def copy_model(src: Path, dst: Path, only: tuple[str, ...] = ()) -> Path:
    dst.mkdir(parents=True)
    for item in src.iterdir():
        if item.is_file() and (not only or item.name in only):
            shutil.copy(item, dst / item.name)
    return dst


def check_sarif(text: str) -> None:
    sarif = json.loads(text)
    assert sarif["version"] == "2.1.0"
    rules = {r["id"] for r in sarif["runs"][0]["tool"]["driver"]["rules"]}
    assert all(r["ruleId"] in rules for r in sarif["runs"][0]["results"])


def check_html(text: str) -> None:
    assert text.lstrip().lower().startswith("<!doctype html") and "<script" not in text.lower()


@pytest.mark.slow
def test_scan_truncated_minilm_writes_json_sarif_html(minilm_l2: Path, tmp_path: Path):
    out = tmp_path / "r.json"
    proc = patronus(
        "scan", str(minilm_l2), "--profile", "quick", "--device", "cpu", "-q", "--format", "json", "-o", str(out),
        "--base", str(minilm_l2),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = Report.from_json(out.read_text())
    lineage = report.scan.config["lineage"]
    assert lineage["base"] == str(minilm_l2) and lineage["note"].endswith("loaded for lineage evidence"), lineage
    assert report.verdict.value == "clean" and report.model.family == "bert"
    assert report.model.parameters > 1_000_000 and report.scan.sequences_evaluated > 0
    assert report.scan.peak_memory_bytes > 4 * report.model.parameters  # fp32 weights at least (peak RSS on CPU)
    stages = report.scan.stage_seconds
    assert {"fetch", "static", "load", "prepare", "search"} <= set(stages) and stages["search"] > 0, stages
    assert sum(stages.values()) <= report.scan.seconds + 0.01
    for fmt, check in (("sarif", check_sarif), ("html", check_html)):
        path = tmp_path / f"r.{fmt}"
        proc = patronus("scan", str(minilm_l2), "--static-only", "-q", "--format", fmt, "-o", str(path))
        assert proc.returncode == 0, proc.stderr
        check(path.read_text())


@pytest.mark.slow
def test_scan_whole_minilm_l6(tmp_path: Path):
    from scanner.research.base_models import minilm_path

    out = tmp_path / "l6.json"
    proc = patronus(
        "scan", str(minilm_path()), "--profile", "quick", "--device", "cpu", "--format", "json", "-o", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    assert "verdict:  clean" in proc.stdout.lower()  # the text summary is printed when -o is used
    report = Report.from_json(out.read_text())
    assert report.verdict.value == "clean" and report.model.parameters > 20_000_000
    check_sarif(render_sarif(report))
    check_html(render_html(report))


def test_hostile_pickle_checkpoint_exits_1_and_never_runs(minilm_l2: Path, tmp_path: Path):
    model = copy_model(minilm_l2, tmp_path / "evil", only=("config.json", "tokenizer.json", "tokenizer_config.json"))
    marker = tmp_path / "pwned"
    (model / "pytorch_model.bin").write_bytes(hp.os_system(marker))
    proc = patronus("scan", str(model), "--format", "json", "-q")
    assert proc.returncode == 1, proc.stderr
    report = Report.from_json(proc.stdout)
    assert report.serialization.files[0].status == "dangerous"
    assert any("system" in g for g in report.serialization.files[0].globals)
    assert any(s.category == "behavioural" for s in report.skipped)  # never loaded
    assert not marker.exists()


def test_remote_code_model_is_refused_and_nothing_runs(minilm_l2: Path, tmp_path: Path):
    model = copy_model(minilm_l2, tmp_path / "remote")
    marker = tmp_path / "imported"
    (model / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    config = json.loads((model / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    (model / "config.json").write_text(json.dumps(config))
    proc = patronus("scan", str(model), "--format", "json", "-q")
    assert proc.returncode == 1, proc.stderr
    report = Report.from_json(proc.stdout)
    remote = [s for s in report.skipped if s.category == "remote_code"]
    assert remote and "modeling_evil.py" in remote[0].reason
    assert report.severity.value == "high"
    assert not marker.exists()


def test_unreadable_model_exits_2(minilm_l2: Path, tmp_path: Path):
    model = copy_model(minilm_l2, tmp_path / "broken")
    (model / "config.json").write_text("{not json")
    proc = patronus("scan", str(model), "-q")
    assert proc.returncode == 2
    assert "config.json is not valid JSON" in proc.stderr and "Traceback" not in proc.stderr


def test_weights_that_do_not_match_the_config_exit_2(minilm_l2: Path, tmp_path: Path):
    model = copy_model(minilm_l2, tmp_path / "mismatch")
    config = json.loads((model / "config.json").read_text())
    config["num_hidden_layers"] = 4  # the checkpoint has 2: layers 2-3 would be random
    (model / "config.json").write_text(json.dumps(config))
    proc = patronus("scan", str(model), "-q", "--format", "json")
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["errors"][0]["code"] == "load_failed"


def test_folder_without_weights_exits_3(minilm_l2: Path, tmp_path: Path):
    model = copy_model(minilm_l2, tmp_path / "empty", only=("config.json", "tokenizer.json"))
    proc = patronus("scan", str(model), "-q", "--format", "json")
    assert proc.returncode == 3
    assert json.loads(proc.stdout)["errors"][0]["code"] == "nothing_scannable"


@pytest.mark.parametrize(
    "args",
    [
        ["scan", "x", "--bogus"],
        ["scan", "x", "--profile", "huge"],
        ["scan"],
        ["scan", "/no/such/folder"],
        ["scan", "x", "--max-size", "lots"],
    ],
)
def test_usage_errors_exit_4(args: list[str]):
    proc = patronus(*args)
    assert proc.returncode == 4, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr


def test_fail_on_threshold(minilm_l2: Path, tmp_path: Path):
    from scanner.cli.exit_codes import for_report as exit_code_for
    from scanner.report import ModelInfo, Severity, Verdict

    report = Report(model=ModelInfo(source="local", id="m"), verdict=Verdict.INCONCLUSIVE, severity=Severity.MEDIUM)
    assert exit_code_for(report, Severity.HIGH) == 0
    assert exit_code_for(report, Severity.MEDIUM) == 1
    assert exit_code_for(Report(model=ModelInfo(source="local", id="m"), verdict=Verdict.CLEAN), Severity.LOW) == 0


@pytest.mark.slow
def test_scan_uses_the_card_base_model_by_default_and_base_none_turns_it_off(
    minilm_l2: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """`patronus scan` defaults to `--base auto`, like the service: a card naming a base_model gets lineage
    evidence from the hub (the stand-in here); `--base none` scans without it."""
    from tests.hub_stub import HubStub, copy_with_card, folder_files

    derived = copy_with_card(minilm_l2, tmp_path / "derived", "org/minilm-l2")
    files = folder_files(minilm_l2)
    with HubStub() as stub:
        monkeypatch.setenv("HF_ENDPOINT", stub.url)
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the hub download cache, kept in tmp
        stub.add_repo("org/minilm-l2", files)
        reports = {}
        for name, extra in (("default", ()), ("none", ("--base", "none"))):
            out = tmp_path / f"{name}.json"
            proc = patronus(
                "scan",
                str(derived),
                "--profile",
                "quick",
                "--device",
                "cpu",
                "-q",
                "--format",
                "json",
                "-o",
                str(out),
                *extra,
            )
            assert proc.returncode == 0, proc.stderr
            reports[name] = Report.from_json(out.read_text())
    lineage = reports["default"].scan.config["lineage"]
    assert lineage["base"] == "org/minilm-l2" and lineage["source"] == "card", lineage
    assert lineage["note"].endswith("loaded for lineage evidence"), lineage
    assert "lineage" not in reports["none"].scan.config
    assert reports["default"].verdict.value == reports["none"].verdict.value == "clean"
