"""The one exit-code table of the CLI (scan, monitor, purify, gate): the contract CI users script against."""

from __future__ import annotations

from enum import IntEnum

from scanner.errors import NothingScannableError, PatronusError, UsageError
from scanner.report import Report, Severity, Verdict


class ExitCode(IntEnum):
    """What `patronus` exits with. Documented in README.md; changing a value breaks users' CI scripts."""

    OK = 0  # nothing at or above --fail-on (monitor: no input flagged; purify: purified)
    FINDINGS = 1  # findings at or above --fail-on (monitor: an input was flagged)
    FAILED = 2  # the scan / purification failed: unreadable model, network, dangerous serialization, ...
    NOTHING_SCANNABLE = 3  # the target holds no supported weight files
    USAGE = 4  # bad arguments or an unreadable input file


_FOR_ERROR: dict[type[PatronusError], ExitCode] = {
    NothingScannableError: ExitCode.NOTHING_SCANNABLE,
    UsageError: ExitCode.USAGE,
}
_FOR_ERROR_CODE = {cls.code: code for cls, code in _FOR_ERROR.items()}


def for_error(exc: PatronusError) -> ExitCode:
    """The exit code of a failure raised by a command."""
    for cls, code in _FOR_ERROR.items():
        if isinstance(exc, cls):
            return code
    return ExitCode.FAILED


def for_report(report: Report, fail_on: Severity = Severity.HIGH) -> ExitCode:
    """0 nothing at or above fail_on; 1 findings at or above it; 2 scan failed; 3 nothing scannable."""
    if report.verdict is Verdict.ERROR:
        return _FOR_ERROR_CODE.get(report.error_code or "", ExitCode.FAILED)
    if report.severity is not Severity.NONE and report.severity.at_least(fail_on):
        return ExitCode.FINDINGS
    return ExitCode.OK
