"""Reports: the schema (patronus.report/1), the typed findings list and the renderers (pure: no file reads).

`from scanner.report import Report, Severity, ...` re-exports the schema; renderers live in text.py, sarif.py,
html.py and cyclonedx.py; `render(report, fmt, extras)` picks one by name.
"""

from __future__ import annotations

from collections.abc import Callable

from scanner.errors import UsageError
from scanner.report.cyclonedx import render_cyclonedx
from scanner.report.html import render_html
from scanner.report.sarif import render_sarif
from scanner.report.schema import (
    SCHEMA,
    FileFinding,
    FileStatus,
    Issue,
    IssueKind,
    Lookalike,
    ModelInfo,
    Report,
    ReportError,
    ScanInfo,
    Serialization,
    Severity,
    SkipCategory,
    Skipped,
    Trigger,
    Verdict,
)
from scanner.report.text import render_text
from scanner.report.views import NO_EXTRAS, ReportExtras

__all__ = [
    "SCHEMA",
    "FileFinding",
    "FileStatus",
    "Issue",
    "IssueKind",
    "Lookalike",
    "ModelInfo",
    "Report",
    "ReportError",
    "ScanInfo",
    "Serialization",
    "Severity",
    "SkipCategory",
    "Skipped",
    "Trigger",
    "Verdict",
    "ReportExtras",
    "NO_EXTRAS",
    "FORMATS",
    "render",
    "render_html",
    "render_sarif",
    "render_text",
]

FORMATS = ("text", "json", "sarif", "html", "cyclonedx")


_RENDERERS: dict[str, Callable[[Report, ReportExtras], str]] = {
    "text": render_text,
    "json": lambda report, extras: report.to_json(),
    "sarif": lambda report, extras: render_sarif(report),
    "html": render_html,
    "cyclonedx": lambda report, extras: render_cyclonedx(report),
}


def render(report: Report, fmt: str, extras: ReportExtras = NO_EXTRAS) -> str:
    """`report` rendered as `fmt` (one of FORMATS)."""
    renderer = _RENDERERS.get(fmt)
    if renderer is None:
        raise UsageError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return renderer(report, extras)
