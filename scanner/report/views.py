"""Shared view helpers of every renderer: formatting, escaping, ordering, and the extras a caller passes in.

Pure: no file reads, no imports from scanner.mitigate (the caller builds ReportExtras).
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from typing import Any, TypeGuard

import markupsafe

from scanner.report.schema import Report, Severity, SkipCategory, Skipped, Trigger

REPORT_FILE = "report.json"  # how the mitigation commands name this scan's JSON report
PURIFIED_DIR = "purified"
PURIFICATION_RECORD = "purification.json"  # what `patronus purify` writes beside the purified model
TABLE_COLUMNS = ("trigger", "source", "shift_before", "shift_after", "reduction", "score_before", "score_after")


@dataclass
class ReportExtras:
    """What a report shows beyond the Report itself, computed by the caller: the monitor rules and commands
    (scanner.mitigate.report_extras) and a purification record found beside a scanned folder."""

    mitigation: dict[str, Any] | None = None  # {"rules": [MonitorRule], "skipped": [str], "commands": [str]}
    purification: dict[str, Any] | None = None  # a purification.json record, or {"problem": reason}


NO_EXTRAS = ReportExtras()

# --------------------------------------------------------------------------------------------------- formatting


def visible(text: Any) -> str:
    """Make control and format characters (ANSI escapes, bidi overrides, zero-width) visible as escapes."""
    if isinstance(text, markupsafe.Markup):
        return text
    return "".join(_escape_char(char) for char in str(text))


_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(char: str) -> str:
    if unicodedata.category(char)[0] != "C":
        return char
    code = ord(char)
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _finite(value: float | None) -> TypeGuard[float]:
    return value is not None and not (isinstance(value, float) and not math.isfinite(value))


def fmt_num(value: float | None) -> str:
    """A shift or score: thousands separators when large, 2 decimals when small."""
    if not _finite(value):
        return "n/a"
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    return f"{value:.1f}" if size >= 10 else f"{value:.2f}"


def fmt_p(value: float | None) -> str:
    """A p-value: 3 decimals, scientific below 0.001."""
    if not _finite(value):
        return "n/a"
    return f"{value:.1e}" if 0 < value < 0.001 else f"{value:.3f}"


def fmt_cos(value: float | None) -> str:
    """A cosine or a rate in 0..1."""
    return f"{value:.3f}" if _finite(value) else "n/a"


def fmt_prob(value: float | None) -> str:
    """A calibrated probability as a percentage that never rounds to a false 0% or 100%."""
    if not _finite(value):
        return "not computed"
    if 0.999 < value < 1:
        return ">99.9%"
    if 0 < value < 0.001:
        return "<0.1%"
    return f"{value:.1%}"


def fmt_params(value: int | None) -> str:
    """A parameter count: 22.7M, 110M, 1.3B."""
    if value is None:
        return "unknown"
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.3g}{suffix} ({value:,})"
    return f"{value:,}"


def fmt_bytes(value: int | None) -> str:
    if value is None:
        return "n/a"
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value} B"


def fmt_seconds(value: float | None) -> str:
    """Wall time of the scan."""
    if not _finite(value):
        return "n/a"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def yes_no(value: bool | None) -> str:
    return "n/a" if value is None else ("yes" if value else "no")


# --------------------------------------------------------------------------------------------------- shared views


def sorted_triggers(report: Report) -> list[Trigger]:
    """Strongest evidence first: smallest p-value, then largest shift."""
    return sorted(report.triggers, key=lambda t: (_sort_float(t.p_value), -_sort_float(t.shift, 0.0)))


def _sort_float(value: float | None, default: float = math.inf) -> float:
    return float(value) if _finite(value) else default


def behavioural_skip(report: Report) -> Skipped | None:
    """The skipped entry saying the behavioural (trigger) search did not run, if any."""
    return next((s for s in report.skipped if s.category == SkipCategory.BEHAVIOURAL), None)


def model_ref(report: Report) -> str:
    """`id@sha` (short sha), or `id@revision` when no sha is known."""
    pin = report.model.sha[:12] if report.model.sha else report.model.revision
    return f"{report.model.id}@{pin}" if pin else report.model.id


def sarif_level(severity: Severity) -> str:
    """SARIF level for a severity."""
    return {
        Severity.CRITICAL: "error",
        Severity.HIGH: "error",
        Severity.MEDIUM: "warning",
        Severity.LOW: "note",
        Severity.NONE: "none",
    }[Severity(severity)]


def clean_json(value: Any) -> Any:
    """Drop None and replace non-finite floats (invalid JSON) with None, recursively."""
    if isinstance(value, dict):
        return {k: clean_json(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --------------------------------------------------------------------------------------------------- purification


def fmt_cell(value: Any) -> str:
    """A table value: floats to 3 significant digits, None as '-'."""
    if isinstance(value, float):
        return f"{value:.3g}" if math.isfinite(value) else str(value)
    return "-" if value is None else str(value)


def purification_rows(record: dict[str, Any]) -> list[list[str]]:
    """The before/after table's cells, formatted (a missing value is '-'; rows that are not objects are left out)."""
    table = record.get("table")
    rows = table if isinstance(table, list) else []
    return [[fmt_cell(row.get(c)) for c in TABLE_COLUMNS] for row in rows if isinstance(row, dict)]


def purification_view(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the HTML and text reports show of a purification record: facts, the before/after table, a problem."""
    if record is None:
        return None
    if "problem" in record:
        return {"problem": str(record["problem"])}
    rescan = record.get("rescan") if isinstance(record.get("rescan"), dict) else None
    rows = purification_rows(record)
    values = [r.get("reduction") for r in record["table"] if isinstance(r, dict)]
    reductions = [float(v) for v in values if isinstance(v, int | float) and _finite(v)]
    return {
        "problem": None,
        "facts": [
            ("Purified from", fmt_cell(record.get("target"))),
            ("Steps", fmt_cell(record.get("steps_done"))),
            ("Clean fidelity (cos)", fmt_cell(record.get("clean_fidelity"))),
            ("Evidence threshold (z)", fmt_cell(record.get("threshold"))),
        ]
        + (
            [
                (
                    "Rescan",
                    f"{fmt_cell(rescan.get('profile'))}: {fmt_cell(rescan.get('verdict'))}, P(backdoored) "
                    f"{fmt_cell(rescan.get('probability'))}",
                )
            ]
            if rescan
            else []
        ),
        "columns": [c.replace("_", " ") for c in TABLE_COLUMNS],
        "rows": rows,
        "min_reduction": min(reductions) if reductions else None,
        "steps": fmt_cell(record.get("steps_done")),
        "rescan": rescan,
    }


def lineage_view(report: Report) -> dict[str, Any] | None:
    """The base model used for lineage evidence and each candidate's score there (None: no base named)."""
    config = report.scan.config or {}
    lineage = config.get("lineage")
    if not isinstance(lineage, dict):
        return None
    evidence = (config.get("evidence") or {}).get("lineage") or {}
    scores = evidence.get("base_scores") or {}
    threshold = evidence.get("base_threshold")
    rows: list[dict[str, Any]] = [
        {"text": str(text), "score": float(score), "fires": threshold is not None and score >= threshold}
        for text, score in scores.items()
        if isinstance(score, int | float)
    ]
    rows.sort(key=lambda r: -float(r["score"]))
    weakened = [
        {"text": str(w["text"]), "score": float(w["score"]), "base_score": float(w["base_score"])}
        for w in evidence.get("inherited_below_threshold") or []
        if isinstance(w, dict)
        and isinstance(w.get("score"), int | float)
        and isinstance(w.get("base_score"), int | float)
    ]
    return {
        "base": str(lineage.get("base", "")),
        "source": str(lineage.get("source", "")),
        "note": str(lineage.get("note", "")),
        "threshold": threshold,
        "rows": rows,
        "weakened": sorted(weakened, key=lambda w: -w["base_score"]),
    }
