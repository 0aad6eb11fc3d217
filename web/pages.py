"""HTML pages: the scan index, a page per model, a page per scan (the shared report template when done).

Templates live in templates/ (index.html, model.html, scan.html, and the shared report.html); the small page
layout they extend is `_layout.html`, served from LAYOUT below. Autoescape is always on. Every page carries a
Content-Security-Policy whose only script allowance is a per-response nonce (the scan page's live-status loop).
"""

from __future__ import annotations

import math
import secrets
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from db.models import Model, Scan
from db.repo import ScanFilter, find_model, lineage_of, list_scans, report_of
from db.session import session_scope
from tasks.settings import SUPPORTED_FAMILIES
from web.context import WebContext, get_context

router = APIRouter()

VERDICTS = ("backdoored", "clean", "inconclusive", "error")
STATUSES = ("queued", "running", "succeeded", "failed")
HISTORY_LIMIT = 200

LAYOUT = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{% block title %}Patronus{% endblock %}</title>
<style>
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2939;background:#fff}
.top{display:flex;gap:18px;align-items:center;padding:10px 24px;border-bottom:1px solid #e4e7ec;background:#f7f8fa}
.top a{color:#1d2939;text-decoration:none;font-weight:600}
.wrap{max-width:1180px;margin:0 auto;padding:18px 24px}
h1{font-size:22px;margin:6px 0 12px}h2{font-size:17px;margin:22px 0 8px}
table.t{border-collapse:collapse;width:100%}
.t th,.t td{border-bottom:1px solid #e4e7ec;padding:6px 8px;text-align:left;vertical-align:top}
.t th{font-size:12px;text-transform:uppercase;letter-spacing:.03em;color:#5d6b82}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:13px}
.muted{color:#5d6b82}
.v{display:inline-block;border-radius:999px;padding:1px 9px;font-size:12px;font-weight:600;background:#eef1f5}
.v-backdoored,.v-failed,.v-error{background:#fef3f2;color:#b42318}
.v-clean,.v-succeeded{background:#ecfdf3;color:#067647}
.v-inconclusive,.v-running,.v-queued{background:#fffaeb;color:#b54708}
form.f{display:flex;flex-wrap:wrap;gap:10px;align-items:end;margin:8px 0 14px}
form.f label{display:flex;flex-direction:column;font-size:12px;color:#5d6b82}
.pager{display:flex;gap:14px;margin:12px 0}
.bar{height:8px;background:#eef1f5;border-radius:4px;overflow:hidden;max-width:420px}
.bar>span{display:block;height:100%;background:#2e90fa}
.box{border:1px solid #e4e7ec;border-radius:8px;padding:12px 16px;margin:12px 0}
.warn{border-color:#fda29b;background:#fef3f2}
</style>
{% block head %}{% endblock %}
</head>
<body>
<nav class="top"><a href="/">Patronus</a><a href="/">Scans</a>
<span class="muted">engine {{ engine_version }}</span></nav>
<div class="wrap">
{% block content %}{% endblock %}
</div>
{% block scripts %}{% endblock %}
</body>
</html>
"""


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """templates/ plus the layout, with the report renderer's filters; autoescape on, strict undefined."""
    from scanner.report.html import environment as report_environment
    from scanner.report.html import templates_dir

    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(templates_dir()),
                                    jinja2.DictLoader({"_layout.html": LAYOUT})]),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters.update(report_environment().filters)
    env.filters.update(when=_when, pct=_pct, short=_short)
    env.globals.update(model_url=model_url)
    return env


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a page with a fresh CSP nonce for its inline script (if any)."""
    from scanner import ENGINE_VERSION

    nonce = secrets.token_urlsafe(16)
    html = environment().get_template(name).render(nonce=nonce, engine_version=ENGINE_VERSION, **context)
    csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; connect-src 'self'; style-src 'unsafe-inline'; "
           "img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
    return HTMLResponse(html, status_code=status, headers={
        "Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
    })


def model_url(model: Model) -> str:
    return "/models/" + quote(model.name.lstrip("/") if model.source == "hub" else model.name, safe="/")


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pct(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.0%}"


def _short(value: str | None, n: int = 12) -> str:
    return (value or "")[:n]


# --------------------------------------------------------------------------------------------------- index


@router.get("/", response_class=HTMLResponse)
def index(
    request: Request,
    verdict: str | None = Query(default=None, max_length=16),
    family: str | None = Query(default=None, max_length=32),
    status: str | None = Query(default=None, max_length=16),
    since: date | None = None,
    until: date | None = None,
    model: str | None = Query(default=None, max_length=512),
    page: int = Query(default=1, ge=1, le=100_000),
    ctx: WebContext = Depends(get_context),
):
    """Scans, newest first: filter by verdict, family, status, date range (UTC days, inclusive) and model name."""
    flt = ScanFilter(
        verdict=verdict or None, family=family or None, status=status or None, model=model or None,
        since=datetime.combine(since, time.min, UTC) if since else None,
        until=datetime.combine(until, time.min, UTC) + timedelta(days=1) if until else None,
    )
    per_page = ctx.settings.page_size
    with session_scope(ctx.sessions) as s:
        scans, total = list_scans(s, flt, page, per_page)
        families = sorted({f for f in s.scalars(select(Model.family).distinct()) if f} | set(SUPPORTED_FAMILIES))
        for scan in scans:  # load what the template reads while the session is open
            _ = scan.model.name, scan.revision
    pages = max(1, math.ceil(total / per_page))
    params = {"verdict": verdict, "family": family, "status": status, "model": model,
              "since": since.isoformat() if since else None, "until": until.isoformat() if until else None}
    kept = {k: v for k, v in params.items() if v}

    def page_link(n: int) -> str:
        return "/?" + urlencode({**kept, "page": n})

    return render(
        request, "index.html", scans=scans, total=total, page=page, pages=pages, filters=params,
        verdicts=VERDICTS, statuses=STATUSES, families=families,
        prev_url=page_link(page - 1) if page > 1 else None, next_url=page_link(page + 1) if page < pages else None,
    )


# --------------------------------------------------------------------------------------------------- model


@router.get("/models/{name:path}", response_class=HTMLResponse)
def model_page(request: Request, name: str, ctx: WebContext = Depends(get_context)):
    """A model: latest verdict per revision, scan history, lineage (bases and derived models)."""
    with session_scope(ctx.sessions) as s:
        model = find_model(s, name) or find_model(s, "/" + name)
        if model is None:
            raise HTTPException(404, f"no model {name!r} has been scanned here")
        history = s.scalars(
            select(Scan).options(joinedload(Scan.revision)).where(Scan.model_id == model.id)
            .order_by(Scan.id.desc()).limit(HISTORY_LIMIT)
        ).all()
        per_revision: dict[str, dict[str, Any]] = {}
        for scan in history:
            sha = scan.revision.sha if scan.revision else None
            if sha is None:
                continue
            entry = per_revision.setdefault(sha, {"sha": sha, "latest": scan, "verdict_scan": None})
            if entry["verdict_scan"] is None and scan.status == "succeeded":
                entry["verdict_scan"] = scan
        bases, derived = lineage_of(s, model)
        base_rows = [{"name": link.base_name, "model": base} for link, base in bases]
        derived_rows = [{"model": link.model} for link in derived]
        from tasks.lineage import candidate_triggers_for

        seeds = candidate_triggers_for(s, model)
    return render(request, "model.html", model=model, history=history, revisions=list(per_revision.values()),
                  bases=base_rows, derived=derived_rows, seeds=seeds, history_limit=HISTORY_LIMIT)


# --------------------------------------------------------------------------------------------------- scan


@router.get("/scans/{scan_id}", response_class=HTMLResponse)
def scan_page(request: Request, scan_id: int, ctx: WebContext = Depends(get_context)):
    """A scan: live status while queued/running; the shared report template once finished."""
    from scanner.mitigate.extras import mitigation
    from scanner.report import Report, ReportExtras
    from scanner.report.html import report_context

    with session_scope(ctx.sessions) as s:
        scan = s.get(Scan, scan_id)
        if scan is None:
            raise HTTPException(404, f"no scan {scan_id}")
        _ = scan.model.name, scan.revision, scan.reused_from
        data = None if scan.active else report_of(scan)
        bases, derived = lineage_of(s, scan.model)
        base_rows = [{"name": link.base_name, "model": base} for link, base in bases]
        derived_rows = [{"model": link.model} for link in derived]
    report_ctx: dict[str, Any] = {}
    report_error = None
    if data is not None:
        try:
            stored = Report.from_dict(data)
            report_ctx = report_context(stored, ReportExtras(mitigation=mitigation(stored)), embedded=True)
        except (ValueError, TypeError, KeyError) as exc:  # a stored report of another schema
            report_error = f"the stored report cannot be shown: {exc}"
    return render(request, "scan.html", scan=scan, has_report=bool(report_ctx), report_error=report_error,
                  bases=base_rows, derived=derived_rows, **report_ctx)
