"""The scan row's lifecycle, apart from hub resolution and heartbeats: claim, reuse, finish, reap.

Every function takes the TaskContext and a scan id; rows are changed only under the claim token a worker got from
`claim`, so a worker whose lease was taken over (LeaseLost) writes nothing. A failure is recorded once, with its
cause; every hub-supplied value is cleaned (no NUL) and bounded before it reaches the database.

Recovery does not depend on beat: every worker runs `reap` every `Settings.reaper_every_s` seconds (and beat may
too: sweeps lock the rows they re-send, so concurrent sweepers do not double-send).
- a running scan whose heartbeat is older than `scan_lease_s` (its worker died) is sent again; the claim takes it
  over, and after `scan_max_retries + 1` attempts it fails with `too_many_attempts` and the last recorded cause;
- a queued scan whose message never went out (broker down at submission) is sent after a minute;
- a queued scan whose message was due more than `queue_lease_s` ago is sent again when the queue has moved past it
  (a scan due later was claimed since) or the queue is empty: its message was lost.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select

from db.models import ACTIVE, Finding, Model, Revision, Scan, ScanStatus, ScanVerdict, utcnow
from db.repo import ScanKey, Target, aware, executed_scan, get_or_create_model, get_or_create_revision
from db.session import session_scope
from scanner.report import Report
from scanner.report.issues import issues_of
from tasks.context import TaskContext
from tasks.lineage import candidate_triggers_for, record_links

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 1800.0
MESSAGE_CHARS = 2000
UNSENT_GRACE_S = 60.0


class LeaseLost(BaseException):
    """Another worker took the scan over; stop without writing. BaseException: no broad handler swallows it."""


@dataclass
class Outcome:
    """What happened to one delivery; `retry_in` asks the Celery wrapper to send the task again later."""

    status: str  # succeeded | failed | reused | skipped | retry | busy
    retry_in: float | None = None
    detail: str = ""


@dataclass
class Claim:
    token: str
    target: Target
    requested: str
    key: ScanKey
    attempts: int


@dataclass
class Resolved:
    """What resolution found: the commit, and card data already cleaned and bounded."""

    sha: str
    base_models: list[str] = field(default_factory=list)
    family: str | None = None
    pipeline_tag: str | None = None
    private: bool = False


# --------------------------------------------------------------------------------------------------- bounds

_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_PATH = re.compile(r"(?<![\w.])/[^\s'\"(),:]+")


def clean(value: Any, limit: int) -> str | None:
    """A hub-supplied string without NUL/control characters, at most `limit` characters; None if not a string."""
    if not isinstance(value, str):
        return None
    value = "".join(ch for ch in value if ch >= " " or ch in "\t\n").strip()
    return value[:limit] or None


def clean_word(value: Any, limit: int) -> str | None:
    """A short identifier from the hub (model_type, pipeline_tag): dropped unless it is one word within `limit`."""
    if not isinstance(value, str) or len(value) > limit or not _WORD.match(value):
        return None
    return value


def valid_repo_id(name: Any) -> bool:
    """huggingface_hub's own repo-id rules (what the hub itself accepts)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(name, str) or not name or len(name) > 200:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def bounded_base_models(names: list[Any], limit: int) -> list[str]:
    """Card `base_model` entries that are valid repo ids, deduplicated, at most `limit`."""
    out: list[str] = []
    for name in names:
        if valid_repo_id(name) and name not in out:
            out.append(name)
        if len(out) >= limit:
            break
    return out


def scrub(value: Any) -> Any:
    """A JSON value without NUL characters (Postgres rejects them in text and JSONB)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def describe(exc: BaseException) -> str:
    """An unexpected error as a one-line cause: its type and first line, file system paths elided."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return _PATH.sub("<path>", text)[:500]


def backoff(attempt: int, base: float) -> float:
    """Exponential backoff for the `attempt`-th transient failure (1-based), capped."""
    return min(base * 2 ** max(attempt - 1, 0), MAX_BACKOFF_S)


# --------------------------------------------------------------------------------------------------- claim


def claim(ctx: TaskContext, scan_id: int) -> Outcome | Claim:
    """Take the row (SELECT ... FOR UPDATE on Postgres, the write lock on SQLite) or say why not."""
    lease = timedelta(seconds=ctx.settings.scan_lease_s)
    max_attempts = ctx.settings.scan_max_retries + 1
    with session_scope(ctx.sessions) as s:
        scan = s.scalar(select(Scan).where(Scan.id == scan_id).with_for_update())
        if scan is None:
            return Outcome("skipped", detail="no such scan")
        if scan.status in (ScanStatus.SUCCEEDED, ScanStatus.FAILED):
            return Outcome("skipped", detail=f"already {scan.status}")
        now = utcnow()
        heartbeat = aware(scan.heartbeat_at)
        if scan.status == ScanStatus.RUNNING and heartbeat is not None and heartbeat > now - lease:
            # a duplicate message (redelivery, or a reaper's re-send): dropped, not retried; should that worker
            # die, the reaper re-sends the scan once its lease runs out
            return Outcome("skipped", detail="running on another worker")
        if scan.attempts >= max_attempts:
            last = scan.error_message or ("worker lost" if scan.status == ScanStatus.RUNNING else "none recorded")
            fail_row(scan, "too_many_attempts", f"gave up after {scan.attempts} attempts (last cause: {last})")
            update_latest(scan.model, scan)
            return Outcome("failed", detail="too_many_attempts")
        token = str(uuid.uuid4())
        scan.status, scan.claim_token, scan.heartbeat_at, scan.claimed_at = ScanStatus.RUNNING, token, now, now
        scan.attempts += 1
        scan.started_at = scan.started_at or now
        scan.stage, scan.fraction, scan.message = "claimed", None, f"attempt {scan.attempts}"
        model = scan.model
        key = ScanKey(scan.engine_version, scan.config_hash, scan.profile, scan.config or {})
        return Claim(token, Target(model.source, model.name), scan.requested_revision, key, scan.attempts)


def owned(s, scan_id: int, token: str) -> Scan:
    """The scan row if this worker still holds it (locked), else LeaseLost."""
    scan = s.scalar(select(Scan).where(Scan.id == scan_id).with_for_update())
    if scan is None or scan.claim_token != token or scan.status != ScanStatus.RUNNING:
        raise LeaseLost()
    return scan


# --------------------------------------------------------------------------------------------------- reuse


def prepare(ctx: TaskContext, scan_id: int, token: str, resolved: Resolved, key: ScanKey) -> Outcome | list[str]:
    """Pin the revision; reuse a finished scan of it; defer to a running one; record lineage; seed triggers."""
    try:
        with session_scope(ctx.sessions) as s:
            scan = owned(s, scan_id, token)
            model = scan.model
            get_or_create_model(
                s, Target(model.source, model.name), family=resolved.family, pipeline_tag=resolved.pipeline_tag
            )
            model.private = resolved.private or model.source == "local"
            revision = get_or_create_revision(s, model, resolved.sha)
            scan.revision_id = revision.id
            done = executed_scan(s, revision.id, key)
            if done is not None and done.id != scan.id:
                reuse(scan, done)
                update_latest(model, scan)
                return Outcome("reused", detail=f"scan {done.id}")
            busy = running_twin(s, scan, key, ctx.settings.scan_lease_s)
            if busy is not None:
                delay = min(30.0, ctx.settings.scan_lease_s)
                scan.status, scan.claim_token = ScanStatus.QUEUED, None
                scan.attempts -= 1  # waiting for a twin is not an attempt
                scan.enqueued_at = utcnow() + timedelta(seconds=delay)  # the retry message is due then
                scan.stage, scan.message = "waiting", f"scan {busy.id} is scanning the same commit"
                return Outcome("busy", retry_in=delay, detail=f"scan {busy.id}")
            record_links(s, model, resolved.base_models)
            s.flush()
            seeds = candidate_triggers_for(s, model)
            scan.seed_triggers = seeds or None
            scan.stage, scan.message = "resolved", f"commit {resolved.sha[:12]}"
            return seeds
    except LeaseLost:
        return Outcome("skipped", detail="lease lost to another worker")


def running_twin(s, scan: Scan, key: ScanKey, lease_s: float) -> Scan | None:
    """Another live scan already executing this same commit with the same key."""
    fresh = utcnow() - timedelta(seconds=lease_s)
    rows = s.scalars(
        select(Scan).where(
            Scan.revision_id == scan.revision_id,
            Scan.id != scan.id,
            Scan.status == ScanStatus.RUNNING,
            Scan.engine_version == key.engine_version,
            Scan.config_hash == key.config_hash,
        )
    )
    return next((row for row in rows if row.heartbeat_at and aware(row.heartbeat_at) > fresh), None)


def reuse(scan: Scan, done: Scan) -> None:
    now = utcnow()
    scan.status, scan.reused_from_id, scan.claim_token = ScanStatus.SUCCEEDED, done.id, None
    scan.verdict, scan.probability, scan.severity = done.verdict, done.probability, done.severity
    scan.device = done.device
    scan.finished_at, scan.seconds = now, 0.0
    scan.stage, scan.fraction, scan.message = "done", 1.0, f"reused scan {done.id} of the same commit"
    scan.error_code = scan.error_message = None


# --------------------------------------------------------------------------------------------------- finish


def retry_later(ctx: TaskContext, scan_id: int, token: str, attempts: int, code: str, message: str) -> Outcome:
    """Back to queued with the reason, to be retried after a backoff; failed once the attempts are spent."""
    if attempts >= ctx.settings.scan_max_retries + 1:
        finish_failed(ctx, scan_id, token, code, f"{message} (gave up after {attempts} attempts)")
        return Outcome("failed", detail=code)
    delay = backoff(attempts, ctx.settings.scan_retry_backoff_s)
    try:
        with session_scope(ctx.sessions) as s:
            scan = owned(s, scan_id, token)
            scan.status, scan.claim_token = ScanStatus.QUEUED, None
            scan.error_code, scan.error_message = code, clean(message, MESSAGE_CHARS)
            scan.enqueued_at = utcnow() + timedelta(seconds=delay)  # the retry message is due then
            scan.stage, scan.fraction = "retrying", None
            scan.message = clean(f"retry in {delay:.0f} s: {message}", MESSAGE_CHARS)
    except LeaseLost:
        return Outcome("skipped", detail="lease lost to another worker")
    return Outcome("retry", retry_in=delay, detail=code)


def fail_row(scan: Scan, code: str, message: str) -> None:
    now = utcnow()
    message = clean(message, MESSAGE_CHARS) or code
    scan.status, scan.claim_token = ScanStatus.FAILED, None
    scan.error_code, scan.error_message = code[:32], message
    scan.finished_at = now
    started = aware(scan.started_at)
    if started is not None:
        scan.seconds = (now - started).total_seconds()
    scan.stage, scan.message = "failed", message
    scan.verdict = ScanVerdict.ERROR


def finish_failed(ctx: TaskContext, scan_id: int, token: str, code: str, message: str, report: Any = None) -> None:
    """Record the failure (and the error report, when there is one) under this worker's claim."""
    try:
        with session_scope(ctx.sessions) as s:
            scan = owned(s, scan_id, token)
            fail_row(scan, code, message)
            if report is not None:
                scan.report = scrub(report.to_dict())
                scan.device = clean(report.scan.device, 32)
            update_latest(scan.model, scan)
    except LeaseLost:
        log.info("scan %s: lease lost before recording its failure", scan_id)


def finish_succeeded(ctx: TaskContext, scan_id: int, token: str, report: Any, key: ScanKey) -> Outcome:
    """Store report, verdict and findings; if a twin executed the same commit first, become its reuse.

    Finishing twins serialize on the revision row (FOR UPDATE; SQLite's write lock), so the check for an
    executed scan and the write that makes this one executed cannot interleave.
    """
    try:
        with session_scope(ctx.sessions) as s:
            scan = owned(s, scan_id, token)
            assert scan.revision_id is not None  # pinned by prepare()
            s.scalar(select(Revision).where(Revision.id == scan.revision_id).with_for_update())
            done = executed_scan(s, scan.revision_id, key)
            if done is not None and done.id != scan.id:
                reuse(scan, done)
                update_latest(scan.model, scan)
                return Outcome("reused", detail=f"scan {done.id}")
            now = utcnow()
            scan.status, scan.claim_token = ScanStatus.SUCCEEDED, None
            scan.verdict, scan.probability = ScanVerdict(report.verdict.value), report.probability
            scan.severity, scan.device = report.severity.value, clean(report.scan.device, 32)
            scan.report = scrub(report.to_dict())
            scan.error_code = scan.error_message = None
            scan.finished_at = now
            started = aware(scan.started_at)
            scan.seconds = (now - started).total_seconds() if started else None
            scan.stage, scan.fraction, scan.message = "done", 1.0, report.verdict.value
            scan.findings = findings_of(report)
            family = clean_word(report.model.family, 32)
            if family and scan.model.family is None:
                scan.model.family = family
            update_latest(scan.model, scan)
    except LeaseLost:
        return Outcome("skipped", detail="lease lost to another worker")
    return Outcome("succeeded", detail=report.verdict.value)


def findings_of(report: Report) -> list[Finding]:
    """One row per issue of the report (Report.issues, the list every output reads) that is a trigger or has a
    severity. Trigger rows keep kind "trigger" and the trigger text (lineage seeds a derived model's scan with
    them); the others carry the issue kind and its location."""
    rows = []
    for issue in issues_of(report):
        severity = getattr(issue.severity, "value", issue.severity)
        if issue.rule != "PAT001" and severity == "none":
            continue
        details = dict(issue.details)
        trigger = issue.rule == "PAT001"
        rows.append(
            Finding(
                kind="trigger" if trigger else str(issue.kind)[:16],
                text=scrub(str(details.get("trigger", issue.location)) if trigger else issue.location),
                severity=severity,
                score=details.get("score") if trigger else None,
                p_value=details.get("p_value") if trigger else None,
                detail=scrub({"rule": issue.rule, "message": issue.message, **details}),
            )
        )
    return rows


def update_latest(model: Model, scan: Scan) -> None:
    model.latest_verdict, model.latest_severity, model.latest_scan_id = scan.verdict, scan.severity, scan.id


# --------------------------------------------------------------------------------------------------- reap


def reap(ctx: TaskContext, queue_size: Callable[[], int | None] | None = None) -> list[int]:
    """Send again what no broker message will bring back; returns the scan ids sent (see the module docstring).

    `queue_size` says how many messages wait in the scan queue (None: unknown). A duplicate message is harmless:
    the claim makes the task idempotent. Rows are locked (SKIP LOCKED) and stamped while they are re-sent.
    """
    if ctx.enqueue_scan is None:
        return []
    settings = ctx.settings
    now = utcnow()
    stale = now - timedelta(seconds=settings.scan_lease_s)
    unsent = now - timedelta(seconds=min(UNSENT_GRACE_S, settings.queue_lease_s))
    overdue = now - timedelta(seconds=settings.queue_lease_s)
    sent: list[int] = []
    with session_scope(ctx.sessions) as s:
        rows = s.scalars(
            select(Scan)
            .where(
                Scan.status.in_(ACTIVE),
                or_(
                    (Scan.status == ScanStatus.RUNNING)
                    & (Scan.heartbeat_at.is_(None) | (Scan.heartbeat_at < stale))
                    & (Scan.enqueued_at.is_(None) | (Scan.enqueued_at < stale)),  # at most once per lease
                    (Scan.status == ScanStatus.QUEUED) & Scan.enqueued_at.is_(None) & (Scan.queued_at < unsent),
                    (Scan.status == ScanStatus.QUEUED) & (Scan.enqueued_at < overdue),
                ),
            )
            .order_by(Scan.id)
            .limit(1000)
            .with_for_update(skip_locked=True)
        ).all()
        overdue_rows = [r for r in rows if r.status == ScanStatus.QUEUED and r.enqueued_at is not None]
        frontier = None
        empty = False
        if overdue_rows:
            # the newest due time among messages a worker has consumed: the queue has moved past older ones
            frontier = aware(
                s.scalar(
                    select(func.max(Scan.enqueued_at)).where(
                        Scan.claimed_at.is_not(None), Scan.claimed_at >= Scan.enqueued_at
                    )
                )
            )
            size = _safe_size(queue_size)
            empty = size == 0
        for scan in rows:
            if scan.status == ScanStatus.QUEUED and scan.enqueued_at is not None:
                passed = frontier is not None and aware(scan.enqueued_at) < frontier
                if not (passed or empty):
                    continue
            try:
                ctx.send_scan(scan.id, scan.celery_task_id or str(uuid.uuid4()))
            except Exception:
                log.warning("could not re-send scan %s", scan.id, exc_info=True)
                continue
            scan.enqueued_at = now
            if scan.status == ScanStatus.RUNNING:  # lease expired: this is the evidence the next claim acts on
                scan.message = clean(
                    f"worker lost (no heartbeat for {settings.scan_lease_s:.0f} s); re-sent", MESSAGE_CHARS
                )
            sent.append(scan.id)
    if sent:
        log.warning("re-sent %d scans no broker message would bring back: %s", len(sent), sent[:20])
    return sent


def _safe_size(queue_size: Callable[[], int | None] | None) -> int | None:
    if queue_size is None:
        return None
    try:
        return queue_size()
    except Exception:
        log.warning("could not read the scan queue's length", exc_info=True)
        return None
