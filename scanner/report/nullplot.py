"""The null picture: each candidate's score against the model's own null distribution, as inline SVG (no script).

Pure: reads only the report (scan.config.evidence.null_scores, threshold, task_features, and the triggers)."""

from __future__ import annotations

import html
import math
from typing import Any

import markupsafe

from scanner.report.schema import Report

WIDTH, ROW, LEFT, RIGHT, TOP = 640, 22, 150, 20, 28


def _scores(report: Report) -> tuple[list[float], float | None, list[tuple[str, float, str]]]:
    evidence = (report.scan.config or {}).get("evidence") or {}
    null_scores = evidence.get("null_scores") or {}
    null = [
        float(v)
        for values in null_scores.values()
        if isinstance(values, list)
        for v in values
        if isinstance(v, int | float) and math.isfinite(v)
    ]
    threshold = evidence.get("threshold")
    marks = [(t.text, float(t.score), "trigger") for t in report.triggers if math.isfinite(t.score)]
    for item in evidence.get("task_features") or []:
        if isinstance(item, dict) and isinstance(item.get("score"), int | float):
            marks.append((str(item.get("text", "")), float(item["score"]), "task"))
    return null, float(threshold) if isinstance(threshold, int | float) else None, marks


def null_plot(report: Report, limit: int = 12) -> markupsafe.Markup | None:
    """SVG strip chart: grey ticks = the null tokens' scores, dashed line = the significance threshold, one row per
    candidate (red: reported trigger, amber: explained as a task feature of a classifier). None without a null."""
    null, threshold, marks = _scores(report)
    if not null:
        return None
    marks = sorted(marks, key=lambda m: -m[1])[:limit]
    values = null + [m[1] for m in marks] + ([threshold] if threshold is not None else [])
    lo, hi = min(values + [0.0]), max(values)
    lo, hi = math.floor(lo) - 1, math.ceil(hi) + 1
    span = max(hi - lo, 1e-9)

    def x(v: float) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * (v - lo) / span

    height = TOP + ROW * (len(marks) + 1) + 24
    esc = html.escape
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="null-plot" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="candidate scores against the null">',
        f'<text x="{LEFT}" y="16" font-size="11" fill="#5d6b82">robust z against this model&#8217;s null '
        f"({len(null)} random rare tokens)</text>",
    ]
    y0 = TOP + ROW // 2
    parts.append(f'<text x="4" y="{y0 + 4}" font-size="12" fill="#5d6b82">null</text>')
    parts += [
        f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{y0 - 7}" y2="{y0 + 7}" stroke="#98a2b3" stroke-width="1"/>'
        for v in null
    ]
    for row, (text, score, kind) in enumerate(marks, start=1):
        y = y0 + ROW * row
        colour = "#d92d20" if kind == "trigger" else "#dc6803"
        label = esc(text if len(text) <= 20 else text[:19] + "\u2026")
        parts.append(f'<text x="4" y="{y + 4}" font-size="12" fill="#1d2939">{label}</text>')
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}" stroke="#eaecf0"/>')
        parts.append(
            f'<circle cx="{x(score):.1f}" cy="{y}" r="5" fill="{colour}"><title>{label}: z '
            f"{score:.1f}{' (task feature)' if kind == 'task' else ''}</title></circle>"
        )
    bottom = y0 + ROW * len(marks) + 12
    if threshold is not None:
        parts.append(
            f'<line x1="{x(threshold):.1f}" x2="{x(threshold):.1f}" y1="{TOP - 4}" y2="{bottom}" '
            f'stroke="#d92d20" stroke-dasharray="4 3"/>'
        )
        parts.append(
            f'<text x="{x(threshold) + 3:.1f}" y="{bottom + 12}" font-size="11" fill="#d92d20">'
            f"threshold {threshold:.1f}</text>"
        )
    for tick in _ticks(lo, hi):
        parts.append(
            f'<text x="{x(tick):.1f}" y="{bottom + 12}" font-size="10" fill="#5d6b82" '
            f'text-anchor="middle">{tick:g}</text>'
        )
    parts.append("</svg>")
    return markupsafe.Markup("".join(parts))


def _ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    step = max(1.0, 10 ** math.floor(math.log10(max(hi - lo, 1) / count)))
    while (hi - lo) / step > count:
        step *= 2
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) // step) + 1)]


def null_plot_data(report: Report) -> dict[str, Any]:
    """The numbers behind the picture (for tests and the web app)."""
    null, threshold, marks = _scores(report)
    return {"null": null, "threshold": threshold, "marks": marks}
