"""Writing a rendered report: atomically, so a reader never sees half a file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from scanner.report import NO_EXTRAS, Report, ReportExtras, render


def write_report(report: Report, fmt: str, path: Path | None = None, extras: ReportExtras = NO_EXTRAS) -> str:
    """Render `report` as `fmt` (a FORMATS name); write it to `path` atomically when given. Returns the text."""
    text = render(report, fmt, extras)
    if path is not None:
        atomic_write(Path(path), text if text.endswith("\n") else text + "\n")
    return text


def atomic_write(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it: readers never see half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
