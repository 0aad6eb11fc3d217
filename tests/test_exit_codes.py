"""The exit-code contract (scanner/cli/exit_codes.py): every command exits only with the codes its help
documents, through one table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from scanner.cli.exit_codes import ExitCode, for_error, for_report
from scanner.errors import (
    FetchError,
    GatedRepoError,
    ModelLoadError,
    NothingScannableError,
    PolicyError,
    SizeLimitError,
    UsageError,
)
from scanner.report import ModelInfo, Report, ReportError, Severity, Trigger, Verdict


def patronus(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from scanner.cli import run; run()", *args], capture_output=True, text=True, timeout=600
    )


def test_error_classes_map_to_documented_codes() -> None:
    assert for_error(NothingScannableError("x")) is ExitCode.NOTHING_SCANNABLE
    assert for_error(UsageError("x")) is ExitCode.USAGE and for_error(PolicyError("x")) is ExitCode.USAGE
    for exc in (FetchError("x"), SizeLimitError("x"), GatedRepoError("x"), ModelLoadError("x")):
        assert for_error(exc) is ExitCode.FAILED


def test_report_exit_codes() -> None:
    report = Report(
        model=ModelInfo(source="local", id="m"),
        verdict=Verdict.ERROR,
        errors=[ReportError(code=NothingScannableError.code, message="none")],
    )
    assert for_report(report) is ExitCode.NOTHING_SCANNABLE
    report.errors[0].code = "fetch_failed"
    assert for_report(report) is ExitCode.FAILED
    report = Report(model=ModelInfo(source="local", id="m"), verdict=Verdict.BACKDOORED, severity=Severity.HIGH)
    assert for_report(report, Severity.HIGH) is ExitCode.FINDINGS and for_report(report, Severity.CRITICAL) == 0


def test_purify_exits_only_with_documented_codes(tmp_path: Path) -> None:
    """Regression: purify returned the error's own exit code, so a folder without weights exited 3, which its
    help does not document (0 purified, 2 failed, 4 usage)."""
    empty = tmp_path / "empty"
    (empty).mkdir()
    (empty / "config.json").write_text('{"model_type": "bert", "architectures": ["BertModel"]}')
    report = Report(
        model=ModelInfo(source="local", id=str(empty)),
        triggers=[Trigger("cf", ["cf"], 30.0, 1e-9, 3000.0, 0.1, 0.9, True)],
    )
    path = tmp_path / "report.json"
    path.write_text(report.to_json())
    run = patronus("purify", str(empty), "--report", str(path), "-o", str(tmp_path / "out"), "-q")
    assert run.returncode == ExitCode.FAILED, run.stderr
    assert "Traceback" not in run.stderr and run.stderr.startswith("error:")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    run = patronus("purify", str(empty), "--report", str(bad), "-o", str(tmp_path / "out"), "-q")
    assert run.returncode == ExitCode.USAGE and "Traceback" not in run.stderr
    assert "Exit codes: 0 purified; 2 failed" in " ".join(patronus("purify", "--help").stdout.split())


def test_purify_maps_every_failure_to_2(tmp_path: Path, monkeypatch) -> None:
    """Whatever the purification raises (even 'nothing scannable', exit 3 for `scan`), purify exits 2."""
    from click.testing import CliRunner

    import scanner.mitigate.purify as purify_module
    from scanner.cli import main

    def nothing(*args: object, **kwargs: object) -> None:
        raise NothingScannableError("no weights")

    monkeypatch.setattr(purify_module, "purify", nothing)
    report = Report(
        model=ModelInfo(source="local", id=str(tmp_path)),
        triggers=[Trigger("cf", ["cf"], 30.0, 1e-9, 3000.0, 0.1, 0.9, True)],
    )
    (tmp_path / "report.json").write_text(report.to_json())
    res = CliRunner().invoke(
        main,
        [
            "purify",
            str(tmp_path),
            "--report",
            str(tmp_path / "report.json"),
            "-o",
            str(tmp_path / "out"),
            "-q",
            "--device",
            "cpu",
        ],
        standalone_mode=False,
    )
    assert res.exception is None and res.return_value == ExitCode.FAILED, res.output
