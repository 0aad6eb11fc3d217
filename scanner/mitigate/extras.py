"""What a report shows beyond the Report: the monitor rules and commands, and a purification record found beside
a scanned local folder. Built here, by the caller's side, so the renderers stay pure."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from scanner.mitigate.monitor import MonitorRules
from scanner.report import Report, ReportExtras
from scanner.report.views import PURIFICATION_RECORD, PURIFIED_DIR, REPORT_FILE

PURIFICATION_MAX_BYTES = 5_000_000


def report_extras(report: Report) -> ReportExtras:
    """The monitor rules of `report` and, for a local folder, its purification record."""
    return ReportExtras(mitigation=mitigation(report), purification=load_purification(report))


def mitigation(report: Report) -> dict[str, Any] | None:
    """The monitor rules `patronus monitor --report` builds from this report (MonitorRules.from_report with its
    defaults, so they are the same) and the commands to act on them; None when the report has no triggers."""
    if not report.triggers:
        return None
    rules = MonitorRules.from_report(report)
    return {"rules": rules.rules, "skipped": rules.skipped, "commands": mitigation_commands(report)}


def mitigation_commands(report: Report) -> list[str]:
    """Command lines to monitor inputs for the triggers and to purify the model (TARGET shell-quoted)."""
    target = report.model.id
    if target.startswith("-"):  # a local folder named like an option
        target = f"./{target}"
    rep = REPORT_FILE
    return [
        f"patronus monitor --report {rep} 'some input text'",
        f"patronus monitor --report {rep} --strip - < inputs.txt",
        f"patronus purify {shlex.quote(target)} --report {rep} -o {PURIFIED_DIR}",
    ]


def load_purification(report: Report) -> dict[str, Any] | None:
    """purification.json of a scanned local model folder (`patronus purify` output), or None when there is none.
    A record that cannot be read comes back as {"problem": reason}: it is shown, never silently dropped."""
    if report.model.source != "local" or not report.model.id:
        return None
    path = Path(report.model.id) / PURIFICATION_RECORD
    try:
        if not path.is_file():
            return None
        if path.stat().st_size > PURIFICATION_MAX_BYTES:
            return {"problem": f"larger than {PURIFICATION_MAX_BYTES:,} bytes"}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return {"problem": f"unreadable ({type(exc).__name__}: {exc})"}
    if not isinstance(data, dict) or not isinstance(data.get("table"), list):
        return {"problem": "not a purification record (no table)"}
    return data
