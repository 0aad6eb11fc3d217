"""HTML pages: the scan index, a page per model, a page per scan (the shared report template when done).

Templates live in templates/ (index.html, model.html, scan.html, and the shared report.html); they extend
templates/_web.html, on the one layout and stylesheet (_layout.html, patronus.css). Autoescape is always on. Every
page carries a Content-Security-Policy whose only script allowance is a per-response nonce (the scan page's
live-status loop).
"""

from __future__ import annotations

import math
import secrets
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from db.models import Model, Scan, ScanStatus, ScanVerdict
from db.repo import ScanFilter, find_model, lineage_of, list_scans, report_of
from db.session import session_scope
from tasks.settings import SUPPORTED_FAMILIES
from web.access import Reader, can_read, get_reader
from web.context import WebContext, get_context

router = APIRouter()

VERDICTS = tuple(v.value for v in ScanVerdict)
STATUSES = tuple(v.value for v in ScanStatus)
HISTORY_LIMIT = 200
LINEAGE_LIMIT = 100  # bases and derived models shown per page (card data is bounded too)
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9999, 12, 30)


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """templates/ plus the layout, with the report renderer's filters; autoescape on, strict undefined."""
    from scanner.report.html import environment as report_environment
    from scanner.report.html import templates_dir

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(report_environment().filters)
    env.filters.update(when=_when, pct=_pct, short=_short)
    env.globals.update(model_url=model_url)
    return env


def render(
    request: Request, name: str, status: int = 200, template_source: str | None = None, **context: Any
) -> HTMLResponse:
    """Render a page (a template name, or `template_source`) with a fresh CSP nonce for its inline script."""
    from scanner import ENGINE_VERSION

    nonce = secrets.token_urlsafe(16)
    env = environment()
    template = env.from_string(template_source) if template_source is not None else env.get_template(name)
    html = template.render(nonce=nonce, engine_version=ENGINE_VERSION, **context)
    csp = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; connect-src 'self'; style-src 'unsafe-inline'; "
        "img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
    return HTMLResponse(
        html,
        status_code=status,
        headers={
            "Content-Security-Policy": csp,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


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
    since: date | None = Query(default=None, ge=FIRST_DAY, le=LAST_DAY),  # type: ignore[arg-type]
    until: date | None = Query(default=None, ge=FIRST_DAY, le=LAST_DAY),  # type: ignore[arg-type]
    model: str | None = Query(default=None, max_length=512),
    page: int = Query(default=1, ge=1, le=100_000),
    ctx: WebContext = Depends(get_context),
    reader: Reader = Depends(get_reader),
):
    """Scans, newest first: filter by verdict, family, status, date range (UTC days, inclusive) and model name."""
    if verdict and verdict not in VERDICTS:
        raise HTTPException(400, f"unknown verdict; choose one of {', '.join(VERDICTS)}")
    if status and status not in STATUSES:
        raise HTTPException(400, f"unknown status; choose one of {', '.join(STATUSES)}")
    settings = ctx.settings
    flt = ScanFilter(
        verdict=verdict or None,
        family=family or None,
        status=status or None,
        model=model or None,
        since=datetime.combine(since, time.min, UTC) if since else None,
        until=datetime.combine(until, time.min, UTC) + timedelta(days=1) if until else None,
        public_only=not reader.sees_private,
        unresolved_public=not settings.hf_token,
    )
    if not reader.sees_private and not settings.public_reads:
        raise HTTPException(
            401,
            "this server's reports need a token: send 'Authorization: Bearer <token>'",
            {"WWW-Authenticate": 'Bearer realm="patronus"'},
        )
    per_page = ctx.settings.page_size
    with session_scope(ctx.sessions) as s:
        scans, total = list_scans(s, flt, page, per_page)
        families = sorted({f for f in s.scalars(select(Model.family).distinct()) if f} | set(SUPPORTED_FAMILIES))
        for scan in scans:  # load what the template reads while the session is open
            _ = scan.model.name, scan.revision
    pages = max(1, math.ceil(total / per_page))
    params = {
        "verdict": verdict,
        "family": family,
        "status": status,
        "model": model,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
    }
    kept = {k: v for k, v in params.items() if v}

    def page_link(n: int) -> str:
        return "/?" + urlencode({**kept, "page": n})

    return render(
        request,
        "index.html",
        scans=scans,
        total=total,
        page=page,
        pages=pages,
        filters=params,
        verdicts=VERDICTS,
        statuses=STATUSES,
        families=families,
        prev_url=page_link(page - 1) if page > 1 else None,
        next_url=page_link(page + 1) if page < pages else None,
    )


# --------------------------------------------------------------------------------------------------- model


@router.get("/models/{name:path}", response_class=HTMLResponse)
def model_page(
    request: Request, name: str, ctx: WebContext = Depends(get_context), reader: Reader = Depends(get_reader)
):
    """A model: latest verdict per revision, scan history, lineage (bases and derived models)."""
    if len(name) > 1024:
        raise HTTPException(404, "no such model has been scanned here")
    with session_scope(ctx.sessions) as s:
        model = find_model(s, name) or find_model(s, "/" + name)
        if model is None or not can_read(model, reader, ctx.settings):
            raise HTTPException(404, "no such model has been scanned here")
        history = s.scalars(
            select(Scan)
            .options(joinedload(Scan.revision))
            .where(Scan.model_id == model.id)
            .order_by(Scan.id.desc())
            .limit(HISTORY_LIMIT)
        ).all()
        per_revision: dict[str, dict[str, Any]] = {}
        for scan in history:
            sha = scan.revision.sha if scan.revision else None
            if sha is None:
                continue
            entry = per_revision.setdefault(sha, {"sha": sha, "latest": scan, "verdict_scan": None})
            if entry["verdict_scan"] is None and scan.status == "succeeded":
                entry["verdict_scan"] = scan
        base_rows, derived_rows = _lineage_rows(s, model, reader, ctx)
        from tasks.lineage import candidate_triggers_for

        seeds = candidate_triggers_for(s, model, visible=lambda base: can_read(base, reader, ctx.settings))
    return render(
        request,
        "model.html",
        model=model,
        history=history,
        revisions=list(per_revision.values()),
        bases=base_rows,
        derived=derived_rows,
        seeds=seeds,
        history_limit=HISTORY_LIMIT,
    )


def _lineage_rows(s, model: Model, reader: Reader, ctx: WebContext) -> tuple[list[dict], list[dict]]:
    """Bases and derived models the reader may see, at most LINEAGE_LIMIT each."""
    bases, derived = lineage_of(s, model)
    base_rows = []
    for link, base in bases:
        if base is not None and not can_read(base, reader, ctx.settings):
            continue
        base_rows.append({"name": link.base_name, "model": base})
    derived_rows = [{"model": link.model} for link in derived if can_read(link.model, reader, ctx.settings)]
    return base_rows[:LINEAGE_LIMIT], derived_rows[:LINEAGE_LIMIT]


# --------------------------------------------------------------------------------------------------- scan


@router.get("/scans/{scan_id}", response_class=HTMLResponse)
def scan_page(
    request: Request,
    scan_id: int = Path(ge=1, le=2**31 - 1),
    ctx: WebContext = Depends(get_context),
    reader: Reader = Depends(get_reader),
):
    """A scan: live status while queued/running; the shared report template once finished."""
    from scanner.mitigate.extras import mitigation
    from scanner.report import Report, ReportExtras
    from scanner.report.html import report_context

    with session_scope(ctx.sessions) as s:
        scan = s.get(Scan, scan_id)
        if scan is None or not can_read(scan.model, reader, ctx.settings):
            raise HTTPException(404, f"no scan {scan_id}")
        _ = scan.model.name, scan.revision, scan.reused_from
        data = None if scan.active else report_of(scan)
        base_rows, derived_rows = _lineage_rows(s, scan.model, reader, ctx)
    report_ctx: dict[str, Any] = {}
    report_error = None
    if data is not None:
        try:
            stored = Report.from_dict(data)
            report_ctx = report_context(stored, ReportExtras(mitigation=mitigation(stored)), embedded=True)
        except (ValueError, TypeError, KeyError) as exc:  # a stored report of another schema
            report_error = f"the stored report cannot be shown: {exc}"
    return render(
        request,
        "scan.html",
        scan=scan,
        has_report=bool(report_ctx),
        report_error=report_error,
        bases=base_rows,
        derived=derived_rows,
        **report_ctx,
    )
