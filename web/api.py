"""JSON API: submit scans (token), read scans, a verdict endpoint for CI gates, an input monitor (token), and a
health check. Responses are the pydantic models of web.schemas (documented in /api/openapi.json).

Request bodies arrive bounded and authenticated (web.security.GuardMiddleware) and are parsed off the event loop;
database work runs in the thread pool. Reads follow the access model of web.access.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from db.models import Scan, ScanStatus, utcnow
from db.repo import (
    ScanKey,
    active_for,
    aware,
    failed_for,
    find_model,
    get_or_create_model,
    mark_enqueued,
    report_of,
    submit_scan,
    verdict_for,
)
from db.session import session_scope
from scanner import ENGINE_VERSION
from tasks.targets import TargetError, classify_target
from web.access import Reader, can_read, get_reader, require_token
from web.context import WebContext, get_context
from web.schemas import (
    MAX_ID,
    Health,
    MonitorOut,
    MonitorRequest,
    Problem,
    ScanOut,
    ScanRequest,
    ScanSubmitted,
    VerdictOut,
)

log = logging.getLogger(__name__)
router = APIRouter()

M = TypeVar("M", bound=BaseModel)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (400, 401, 403, 404, 409, 413, 422, 429, 503)
}


def clean_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Validation errors without the input echoed back (location, a short message, the error type)."""
    return [
        {"loc": list(err.get("loc", ())), "msg": str(err.get("msg", ""))[:200], "type": err.get("type", "")}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)[:20]
    ]


async def parse_body(request: Request, model: type[M]) -> M:
    """The JSON body as `model`, parsed and validated in the thread pool (never on the event loop)."""
    raw = await request.body()
    try:
        return await run_in_threadpool(model.model_validate_json, raw or b"{}")
    except ValidationError as exc:
        raise RequestValidationError(clean_errors(exc)) from None


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """openapi_extra for an endpoint that parses its own body."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": model.model_json_schema(ref_template="#/components/schemas/{model}")}
            },
        }
    }


def iso(value) -> str | None:
    return aware(value).isoformat() if value is not None else None


def scan_json(scan: Scan, with_report: bool = True) -> dict[str, Any]:
    """The public JSON form of a scan row (ScanOut)."""
    data: dict[str, Any] = {
        "id": scan.id,
        "status": scan.status,
        "model": scan.model.name,
        "source": scan.model.source,
        "requested_revision": scan.requested_revision or None,
        "sha": scan.revision.sha if scan.revision is not None else None,
        "verdict": scan.verdict,
        "severity": scan.severity,
        "probability": scan.probability,
        "progress": {"stage": scan.stage, "fraction": scan.fraction, "message": scan.message},
        "error": {"code": scan.error_code, "message": scan.error_message} if scan.error_code else None,
        "attempts": scan.attempts,
        "engine_version": scan.engine_version,
        "config_hash": scan.config_hash,
        "profile": scan.profile,
        "queued_at": iso(scan.queued_at),
        "started_at": iso(scan.started_at),
        "finished_at": iso(scan.finished_at),
        "seconds": scan.seconds,
        "reused_from": scan.reused_from_id,
        "url": f"/scans/{scan.id}",
    }
    if with_report and not scan.active:
        report = report_of(scan)
        if report is not None:
            data["report"] = report
    return data


# --------------------------------------------------------------------------------------------------- submit


@router.post(
    "/api/scans",
    status_code=202,
    response_model=ScanSubmitted,
    responses=ERRORS,
    openapi_extra=body_schema(ScanRequest),
)
async def submit(request: Request, ctx: WebContext = Depends(get_context), reader: Reader = Depends(require_token)):
    """Queue a scan of `target` (at `revision`); concurrent and repeated requests share one scan.

    Needs an API token. 400 invalid target (hub ids are checked with huggingface_hub's own rules), 403 local targets
    not allowed here, 413 a local folder over the size bound, 429 over the token's rate or daily quota."""
    wait = ctx.buckets.take(reader.fingerprint or "")
    if wait is not None:
        raise HTTPException(
            429,
            f"too many submissions with this token; retry in {wait:.0f} s",
            {"Retry-After": str(max(1, round(wait)))},
        )
    body = await parse_body(request, ScanRequest)
    return await run_in_threadpool(_submit, ctx, body, reader)


def _submit(ctx: WebContext, body: ScanRequest, reader: Reader) -> dict[str, Any]:
    settings = ctx.settings
    try:
        target = classify_target(body.target, settings)
    except TargetError as exc:
        raise HTTPException(exc.status, str(exc)) from exc
    if target.source == "local" and body.revision:
        raise HTTPException(400, "revision applies to hub repositories, not to local folders")
    key = ScanKey.from_config(settings.scan_config())
    with session_scope(ctx.sessions) as s:
        day_ago = utcnow() - timedelta(days=1)
        used = (
            s.scalar(
                select(func.count())
                .select_from(Scan)
                .where(Scan.submitted_by == reader.fingerprint, Scan.queued_at >= day_ago)
            )
            or 0
        )
        model = get_or_create_model(s, target)
        if target.source == "local":
            model.private = True
        sub = submit_scan(s, model, body.revision, key, origin="api")
        if sub.created and used >= settings.submit_quota_per_day:
            s.rollback()
            raise HTTPException(
                429,
                f"this token's quota of {settings.submit_quota_per_day:,} new scans per 24 h is used up",
                {"Retry-After": "3600"},
            )
        if sub.created:
            sub.scan.submitted_by = reader.fingerprint
        scan_id, task_id, status = sub.scan.id, sub.scan.celery_task_id, sub.scan.status
        enqueued = sub.scan.enqueued_at is not None
    if sub.created:
        try:
            ctx.send(scan_id, task_id or "")
            with session_scope(ctx.sessions) as s:
                mark_enqueued(s, scan_id)
            enqueued = True
        except Exception as exc:  # the row stays queued; the reaper sends it once the broker is back
            log.error(
                "could not enqueue scan %s (%s); the reaper will send it", scan_id, type(exc).__name__, exc_info=True
            )
    return {"id": scan_id, "status": status, "created": sub.created, "enqueued": enqueued, "url": f"/scans/{scan_id}"}


# --------------------------------------------------------------------------------------------------- read


@router.get("/api/scans/{scan_id}", response_model=ScanOut, response_model_exclude_unset=True, responses=ERRORS)
def get_scan(
    scan_id: int = Path(ge=1, le=MAX_ID),
    report: bool = True,
    ctx: WebContext = Depends(get_context),
    reader: Reader = Depends(get_reader),
):
    """A scan's status, progress, verdict and (once finished, unless `report=false`) its JSON report."""
    with session_scope(ctx.sessions) as s:
        scan = s.get(Scan, scan_id)
        if scan is None or not can_read(scan.model, reader, ctx.settings):
            raise HTTPException(404, f"no scan {scan_id}")
        return scan_json(scan, with_report=report)


def _not_found(model: str, sha: str | None, detail: str) -> JSONResponse:
    return JSONResponse(
        {"model": model, "sha": sha, "status": "unknown", "verdict": None, "detail": detail}, status_code=404
    )


@router.get(
    "/api/verdict",
    response_model=VerdictOut,
    response_model_exclude_unset=True,
    responses={
        202: {"model": VerdictOut, "description": "a scan is queued or running"},
        404: {"model": VerdictOut, "description": "never scanned here"},
        **ERRORS,
    },
)
def verdict(
    model: str = Query(min_length=1, max_length=1024),
    sha: str | None = Query(default=None, max_length=64),
    ctx: WebContext = Depends(get_context),
    reader: Reader = Depends(get_reader),
):
    """The verdict a CI gate needs for `model` (at commit `sha`): 200 known, 202 in progress, 404 never scanned."""
    with session_scope(ctx.sessions) as s:
        row = find_model(s, model)
        if row is None or not can_read(row, reader, ctx.settings):
            return _not_found(model, sha, "this model was never scanned here")
        done = verdict_for(s, row, sha, ENGINE_VERSION)
        if done is not None:
            return {
                "model": row.name,
                "sha": done.revision.sha if done.revision else sha,
                "status": done.status,
                "verdict": done.verdict,
                "severity": done.severity,
                "probability": done.probability,
                "scan_id": done.id,
                "engine_version": done.engine_version,
                "current_engine": done.engine_version == ENGINE_VERSION,
                "config_hash": done.config_hash,
                "finished_at": iso(done.finished_at),
                "url": f"/scans/{done.id}",
            }
        running = active_for(s, row, sha)
        if running is not None:
            return JSONResponse(
                {
                    "model": row.name,
                    "sha": sha,
                    "status": str(running.status),
                    "verdict": None,
                    "scan_id": running.id,
                    "url": f"/scans/{running.id}",
                },
                status_code=202,
            )
        failed = failed_for(s, row, sha)
        if failed is not None:
            return {
                "model": row.name,
                "sha": sha,
                "status": "failed",
                "verdict": "error",
                "scan_id": failed.id,
                "error": {"code": failed.error_code, "message": failed.error_message},
                "url": f"/scans/{failed.id}",
            }
        return _not_found(row.name, sha, "no scan of this commit")


# --------------------------------------------------------------------------------------------------- monitor


def _no_report(scan: Scan) -> HTTPException:
    """409 for a scan that cannot give monitor rules (still active, failed, or without a stored report)."""
    if scan.active:
        return HTTPException(409, f"scan {scan.id} is {scan.status}: its report is not ready yet")
    if scan.error_code:
        return HTTPException(409, f"scan {scan.id} {scan.status} ({scan.error_code}): it has no report")
    return HTTPException(409, f"scan {scan.id} ({scan.status}) has no stored report")


def _monitored_scan(s: Session, body: MonitorRequest) -> tuple[Scan, dict[str, Any]]:
    """The scan named by `body` and its stored report: 404 unknown scan or model, 409 no finished report."""
    if body.scan_id is not None:
        scan = s.get(Scan, body.scan_id)
        if scan is None:
            raise HTTPException(404, f"no scan {body.scan_id}")
    else:
        row = find_model(s, body.model or "")
        if row is None:
            raise HTTPException(404, "no such model: it was never scanned here")
        scan = verdict_for(s, row, None, ENGINE_VERSION) or active_for(s, row, None) or failed_for(s, row, None)
        if scan is None:
            raise HTTPException(409, f"model {row.name!r} has no finished scan with a report")
    report = report_of(scan) if scan.status == ScanStatus.SUCCEEDED else None
    if report is None:
        raise _no_report(scan)
    return scan, report


def _match_json(match: dict[str, Any], given: str, sources: dict[str, str]) -> dict[str, Any]:
    """One match: the trigger it echoes, the rule, the matched characters [start, end) and the rule's source."""
    return {
        "trigger": match["trigger"],
        "rule": match["rule"],
        "text": given[match["start"] : match["end"]],
        "start": match["start"],
        "end": match["end"],
        "source": sources.get(match["rule"], "trigger"),
    }


@router.post("/api/monitor", response_model=MonitorOut, responses=ERRORS, openapi_extra=body_schema(MonitorRequest))
async def monitor(request: Request, ctx: WebContext = Depends(get_context), _reader: Reader = Depends(require_token)):
    """Check texts against the triggers (and look-alikes) of a finished scan's report: lexical matching, no model
    is loaded. 404 unknown scan or model, 409 the scan has no report yet, 413/422 oversize input."""
    body = await parse_body(request, MonitorRequest)
    return await run_in_threadpool(_monitor, ctx, body)


def _monitor(ctx: WebContext, body: MonitorRequest) -> dict[str, Any]:
    from scanner.mitigate.monitor import MonitorRules, monitor_texts
    from scanner.report import Report

    with session_scope(ctx.sessions) as s:
        scan, data = _monitored_scan(s, body)
        scan_id, model = scan.id, scan.model.name
        sha = scan.revision.sha if scan.revision is not None else None
    report = Report.from_dict(data)
    rules = MonitorRules.from_report(report)
    sources = {rule.text: rule.source for rule in rules.rules}
    results = []
    for item in monitor_texts(rules, body.texts, strip=body.strip):
        given = body.texts[item["index"]]
        item["matches"] = [_match_json(m, given, sources) for m in item["matches"]]
        results.append(item)
    return {
        "scan_id": scan_id,
        "model": model,
        "sha": sha,
        "verdict": report.verdict.value,
        "rules": [
            {
                "text": r.text,
                "trigger": r.trigger,
                "source": r.source,
                "tokens": list(r.tokens),
                "shift": r.shift,
                "p_value": r.p_value,
            }
            for r in rules.rules
        ],
        "skipped": rules.skipped,
        "flagged": sum(r["flagged"] for r in results),
        "results": results,
    }


# --------------------------------------------------------------------------------------------------- health


def _check_database(ctx: WebContext) -> None:
    with session_scope(ctx.health_sessions or ctx.sessions) as s:
        s.execute(text("SELECT 1"))


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
async def healthz(ctx: WebContext = Depends(get_context)):
    """Liveness and the database's state within PATRONUS_HEALTH_TIMEOUT_S (503 when it is down or stalled)."""
    started = time.monotonic()
    try:
        await asyncio.wait_for(run_in_threadpool(_check_database, ctx), timeout=ctx.settings.health_timeout_s)
    except TimeoutError:
        return JSONResponse(
            {"status": "error", "database": "timeout", "seconds": round(time.monotonic() - started, 3)}, status_code=503
        )
    except Exception as exc:
        return JSONResponse(
            {"status": "error", "database": type(exc).__name__, "seconds": round(time.monotonic() - started, 3)},
            status_code=503,
        )
    return {"status": "ok", "database": "ok", "seconds": round(time.monotonic() - started, 3)}
