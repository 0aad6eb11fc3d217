"""Render a finished scan's report to a file (the `render` task): an audit artifact outside the database."""

from __future__ import annotations

from pathlib import Path

from db.models import Scan
from db.repo import report_of
from db.session import session_scope
from tasks.context import TaskContext
from tasks.settings import data_dir

SUFFIX = {"html": "html", "sarif": "sarif", "json": "json", "text": "txt"}


def render_scan(ctx: TaskContext, scan_id: int, fmt: str = "html", out_dir: Path | None = None) -> Path | None:
    """Write `<out_dir>/scan-<id>.<suffix>`; None when the scan has no report yet."""
    from scanner.report import Report
    from scanner.report.output import write_report

    if fmt not in SUFFIX:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(SUFFIX)}")
    with session_scope(ctx.sessions) as s:
        scan = s.get(Scan, scan_id)
        data = report_of(scan) if scan is not None else None
    if data is None:
        return None
    out_dir = Path(out_dir or data_dir() / "reports")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"scan-{scan_id}.{SUFFIX[fmt]}"
    write_report(Report.from_dict(data), fmt, path)
    return path
