"""JSON API: submit scans (token), read scans, a verdict endpoint for CI gates, an input monitor (token), and a
health check."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy import text
from sqlalchemy.orm import Session

from db.models import Scan
from db.repo import (
    ScanKey,
    TargetError,
    active_for,
    aware,
    classify_target,
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
from web.context import WebContext, get_context, require_token

log = logging.getLogger(__name__)
router = APIRouter()


class ScanRequest(BaseModel):
    target: str = Field(min_length=1, max_length=1024, description="hub repo id (org/name) or a local folder")
    revision: str | None = Field(default=None, max_length=255, description="branch, tag or commit sha")


MONITOR_MAX_TEXTS = 1000
MONITOR_MAX_CHARS = 100_000  # per text
MONITOR_MAX_TOTAL_CHARS = 2_000_000


class MonitorRequest(BaseModel):
    scan_id: int | None = Field(default=None, ge=1, description="a finished scan whose report gives the rules")
    model: str | None = Field(default=None, min_length=1, max_length=1024,
                              description="a model as stored (repo id or local path): its newest finished scan")
    texts: list[str] = Field(min_length=1, max_length=MONITOR_MAX_TEXTS, description="inputs to check")
    strip: bool = Field(default=False, description="also return each text with the triggers removed")

    @field_validator("texts")
    @classmethod
    def bounded(cls, texts: list[str]) -> list[str]:
        """Each text at most MONITOR_MAX_CHARS characters, all together at most MONITOR_MAX_TOTAL_CHARS."""
        for index, value in enumerate(texts):
            if len(value) > MONITOR_MAX_CHARS:
                raise ValueError(f"texts[{index}] has {len(value):,} characters; the limit is {MONITOR_MAX_CHARS:,}")
        total = sum(map(len, texts))
        if total > MONITOR_MAX_TOTAL_CHARS:
            raise ValueError(f"texts have {total:,} characters in all; the limit is {MONITOR_MAX_TOTAL_CHARS:,}")
        return texts

    @model_validator(mode="after")
    def one_source(self) -> MonitorRequest:
        if (self.scan_id is None) == (self.model is None):
            raise ValueError("give exactly one of scan_id and model")
        return self


def iso(value) -> str | None:
    return aware(value).isoformat() if value is not None else None


def scan_json(scan: Scan, with_report: bool = True) -> dict[str, Any]:
    """The public JSON form of a scan row."""
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


@router.post("/api/scans", status_code=202)
def submit(body: ScanRequest, ctx: WebContext = Depends(get_context), _token: str = Depends(require_token)):
    """Queue a scan of `target` (at `revision`); concurrent and repeated requests share one scan."""
    settings = ctx.settings
    try:
        target = classify_target(body.target, allow_local=settings.allow_local_targets)
    except TargetError as exc:
        status = 403 if "PATRONUS_ALLOW_LOCAL_TARGETS" in str(exc) else 400
        raise HTTPException(status, str(exc)) from exc
    if target.source == "local" and body.revision:
        raise HTTPException(400, "revision applies to hub repositories, not to local folders")
    key = ScanKey.from_config(settings.scan_config())
    with session_scope(ctx.sessions) as s:
        model = get_or_create_model(s, target)
        sub = submit_scan(s, model, body.revision, key, origin="api")
        scan_id, task_id, status = sub.scan.id, sub.scan.celery_task_id, sub.scan.status
    enqueued = not sub.created
    if sub.created:
        try:
            ctx.send(scan_id, task_id)
            with session_scope(ctx.sessions) as s:
                mark_enqueued(s, scan_id)
            enqueued = True
        except Exception:  # the row stays queued; the requeue_stale task sends it once the broker is back
            log.exception("could not enqueue scan %s", scan_id)
    return {"id": scan_id, "status": status, "created": sub.created, "enqueued": enqueued,
            "url": f"/scans/{scan_id}"}


@router.get("/api/scans/{scan_id}")
def get_scan(scan_id: int, report: bool = True, ctx: WebContext = Depends(get_context)):
    with session_scope(ctx.sessions) as s:
        scan = s.get(Scan, scan_id)
        if scan is None:
            raise HTTPException(404, f"no scan {scan_id}")
        return scan_json(scan, with_report=report)


@router.get("/api/verdict")
def verdict(model: str = Query(min_length=1, max_length=1024), sha: str | None = Query(default=None, max_length=64),
            ctx: WebContext = Depends(get_context)):
    """The verdict a CI gate needs for `model` (at commit `sha`): 200 known, 202 in progress, 404 never scanned."""
    with session_scope(ctx.sessions) as s:
        row = find_model(s, model)
        if row is None:
            return JSONResponse({"model": model, "sha": sha, "status": "unknown", "verdict": None,
                                 "detail": "this model was never scanned here"}, status_code=404)
        done = verdict_for(s, row, sha, ENGINE_VERSION)
        if done is not None:
            return {
                "model": row.name, "sha": done.revision.sha if done.revision else sha, "status": done.status,
                "verdict": done.verdict, "severity": done.severity, "probability": done.probability,
                "scan_id": done.id, "engine_version": done.engine_version,
                "current_engine": done.engine_version == ENGINE_VERSION, "config_hash": done.config_hash,
                "finished_at": iso(done.finished_at), "url": f"/scans/{done.id}",
            }
        running = active_for(s, row, sha)
        if running is not None:
            return JSONResponse({"model": row.name, "sha": sha, "status": running.status, "verdict": None,
                                 "scan_id": running.id, "url": f"/scans/{running.id}"}, status_code=202)
        failed = failed_for(s, row, sha)
        if failed is not None:
            return {"model": row.name, "sha": sha, "status": "failed", "verdict": "error", "scan_id": failed.id,
                    "error": {"code": failed.error_code, "message": failed.error_message},
                    "url": f"/scans/{failed.id}"}
        return JSONResponse({"model": row.name, "sha": sha, "status": "unknown", "verdict": None,
                             "detail": "no scan of this commit"}, status_code=404)


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
        row = find_model(s, body.model)
        if row is None:
            raise HTTPException(404, f"no model {body.model!r}: it was never scanned here")
        scan = verdict_for(s, row, None, ENGINE_VERSION) or active_for(s, row, None) or failed_for(s, row, None)
        if scan is None:
            raise HTTPException(409, f"model {row.name!r} has no finished scan with a report")
    report = report_of(scan) if scan.status == "succeeded" else None
    if report is None:
        raise _no_report(scan)
    return scan, report


def _match_json(match: dict[str, Any], given: str, sources: dict[str, str]) -> dict[str, Any]:
    """One match: the trigger it echoes, the rule, the matched characters [start, end) and the rule's source."""
    return {"trigger": match["trigger"], "rule": match["rule"], "text": given[match["start"]:match["end"]],
            "start": match["start"], "end": match["end"], "source": sources.get(match["rule"], "trigger")}


@router.post("/api/monitor")
def monitor(body: MonitorRequest, ctx: WebContext = Depends(get_context), _token: str = Depends(require_token)):
    """Check texts against the triggers (and look-alikes) of a finished scan's report: lexical matching, no model
    is loaded. 404 unknown scan or model, 409 the scan has no report yet, 422 oversize input."""
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
    return {"scan_id": scan_id, "model": model, "sha": sha, "verdict": report.verdict.value,
            "rules": [{"text": r.text, "trigger": r.trigger, "source": r.source, "tokens": list(r.tokens),
                       "shift": r.shift, "p_value": r.p_value} for r in rules.rules],
            "skipped": rules.skipped, "flagged": sum(r["flagged"] for r in results), "results": results}


@router.get("/healthz")
def healthz(ctx: WebContext = Depends(get_context)):
    try:
        with session_scope(ctx.sessions) as s:
            s.execute(text("SELECT 1"))
    except Exception as exc:
        return JSONResponse({"status": "error", "database": f"{type(exc).__name__}"}, status_code=503)
    return {"status": "ok", "database": "ok"}
