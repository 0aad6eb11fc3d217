"""The scan task as a plain function of its context: claim the row, resolve the commit, reuse or scan, record.

Idempotent under redelivery: a finished row is left alone; a running row with a fresh heartbeat belongs to another
worker (the caller retries later); a running row whose heartbeat went stale (worker killed) is taken over.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from db.models import ACTIVE, Finding, Model, Revision, Scan, ScanStatus, utcnow
from db.repo import ScanKey, Target, aware, executed_scan, get_or_create_model, get_or_create_revision
from db.session import session_scope
from scanner.report import FileStatus, Report, Severity, Verdict
from tasks.context import TaskContext
from tasks.lineage import base_models_from_card, candidate_triggers_for, card_of_local, record_links

log = logging.getLogger(__name__)

TRANSIENT_CODES = frozenset({"fetch_failed", "access_denied"})  # network / hub: retried with backoff
MAX_BACKOFF_S = 1800.0


class Transient(Exception):
    """A network or hub failure: worth retrying later."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Permanent(Exception):
    """A deterministic failure: recorded, never retried."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class LeaseLost(BaseException):
    """Another worker took the scan over; stop without writing. BaseException: no broad handler swallows it."""


class ScanTimeout(BaseException):
    """The scan ran past its time limit (cooperative check in the progress callback)."""


@dataclass
class Outcome:
    """What happened to one delivery; `retry_in` asks the Celery wrapper to send the task again later."""

    status: str  # succeeded | failed | reused | skipped | retry | busy
    retry_in: float | None = None
    detail: str = ""


@dataclass
class Resolved:
    sha: str
    base_models: list[str] = field(default_factory=list)
    family: str | None = None
    pipeline_tag: str | None = None


# --------------------------------------------------------------------------------------------------- entry point


def run_scan(ctx: TaskContext, scan_id: int) -> Outcome:
    """Run one delivery of the scan task for `scan_id`."""
    claim = _claim(ctx, scan_id)
    if isinstance(claim, Outcome):
        return claim
    token, target, requested, key, attempts = claim
    try:
        resolved = resolve(ctx, target, requested)
    except Transient as exc:
        return _transient(ctx, scan_id, token, attempts, exc.code, str(exc))
    except Permanent as exc:
        _finish_failed(ctx, scan_id, token, exc.code, str(exc), None)
        return Outcome("failed", detail=exc.code)
    prepared = _prepare(ctx, scan_id, token, resolved, key)
    if isinstance(prepared, Outcome):
        return prepared
    seeds = prepared
    try:
        report = _execute(ctx, scan_id, token, target, resolved, seeds)
    except LeaseLost:
        return Outcome("skipped", detail="lease lost to another worker")
    except ScanTimeout:
        _finish_failed(ctx, scan_id, token, "timeout", f"scan ran past {ctx.settings.scan_time_limit_s} s", None)
        return Outcome("failed", detail="timeout")
    except Exception as exc:  # a bug in the pipeline: record it, do not retry
        log.exception("scan %s crashed", scan_id)
        _finish_failed(ctx, scan_id, token, "internal_error", f"{type(exc).__name__}: {exc}", None)
        return Outcome("failed", detail="internal_error")
    code = report.error_code
    if report.verdict == Verdict.ERROR and code in TRANSIENT_CODES:
        return _transient(ctx, scan_id, token, attempts, code, report.errors[0].message)
    if report.verdict == Verdict.ERROR:
        message = report.errors[0].message if report.errors else "the scan failed"
        _finish_failed(ctx, scan_id, token, code or "scan_failed", message, report)
        return Outcome("failed", detail=code or "scan_failed")
    return _finish_succeeded(ctx, scan_id, token, report, key)


def backoff(attempt: int, base: float) -> float:
    """Exponential backoff for the `attempt`-th transient failure (1-based), capped."""
    return min(base * 2 ** max(attempt - 1, 0), MAX_BACKOFF_S)


# --------------------------------------------------------------------------------------------------- claim


def _claim(ctx: TaskContext, scan_id: int) -> Outcome | tuple[str, Target, str, ScanKey, int]:
    """Take the row (SELECT ... FOR UPDATE on Postgres, the write lock on SQLite) or say why not."""
    lease = timedelta(seconds=ctx.settings.scan_lease_s)
    max_attempts = ctx.settings.scan_max_retries + 1
    with session_scope(ctx.sessions) as s:
        scan = s.scalar(select(Scan).where(Scan.id == scan_id).with_for_update())
        if scan is None:
            return Outcome("skipped", detail="no such scan")
        if scan.status in (ScanStatus.SUCCEEDED.value, ScanStatus.FAILED.value):
            return Outcome("skipped", detail=f"already {scan.status}")
        now = utcnow()
        if scan.status == ScanStatus.RUNNING.value and scan.heartbeat_at and aware(scan.heartbeat_at) > now - lease:
            return Outcome("busy", retry_in=ctx.settings.scan_lease_s, detail="running on another worker")
        if scan.attempts >= max_attempts:
            _fail_row(scan, "too_many_attempts",
                      f"gave up after {scan.attempts} attempts (last: {scan.error_message or 'worker lost'})")
            return Outcome("failed", detail="too_many_attempts")
        token = str(uuid.uuid4())
        scan.status, scan.claim_token, scan.heartbeat_at = ScanStatus.RUNNING.value, token, now
        scan.attempts += 1
        scan.started_at = scan.started_at or now
        scan.stage, scan.fraction, scan.message = "claimed", None, f"attempt {scan.attempts}"
        model = scan.model
        key = ScanKey(scan.engine_version, scan.config_hash, scan.profile, scan.config or {})
        return token, Target(model.source, model.name), scan.requested_revision, key, scan.attempts


def _owned(s, scan_id: int, token: str) -> Scan:
    """The scan row if this worker still holds it (locked), else LeaseLost."""
    scan = s.scalar(select(Scan).where(Scan.id == scan_id).with_for_update())
    if scan is None or scan.claim_token != token or scan.status != ScanStatus.RUNNING.value:
        raise LeaseLost()
    return scan


# --------------------------------------------------------------------------------------------------- resolve


def resolve(ctx: TaskContext, target: Target, requested: str) -> Resolved:
    """The commit to scan (hub sha, or content hash of a local folder) and what the card says."""
    if target.source == "local":
        return _resolve_local(Path(target.name))
    return _resolve_hub(ctx, target.name, requested or None)


def _resolve_hub(ctx: TaskContext, repo_id: str, revision: str | None) -> Resolved:
    from huggingface_hub import HfApi
    from huggingface_hub import errors as hf_errors

    from scanner.fetch import hub_endpoint

    endpoint = hub_endpoint(ctx.settings.hf_endpoint)
    try:
        info = HfApi(endpoint=endpoint, library_name="patronus-scanner").model_info(
            repo_id, revision=revision, token=ctx.settings.hf_token or False
        )
    except hf_errors.GatedRepoError as exc:
        raise Transient("access_denied", f"{repo_id} is gated: {_first_line(exc)}") from exc
    except hf_errors.RevisionNotFoundError as exc:
        raise Permanent("fetch_failed", f"revision {revision!r} not found in {repo_id} on {endpoint}") from exc
    except hf_errors.RepositoryNotFoundError as exc:
        raise Permanent("fetch_failed", f"repository {repo_id} not found on {endpoint}") from exc
    except hf_errors.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            raise Transient("access_denied", f"{endpoint} refused access to {repo_id} ({status})") from exc
        if status is not None and 400 <= status < 500 and status not in (408, 429):
            raise Permanent("fetch_failed", f"{endpoint} answered {status} for {repo_id}") from exc
        raise Transient("fetch_failed", f"{endpoint} answered {status} for {repo_id}") from exc
    except Exception as exc:  # transport errors (connection refused, timeouts, DNS)
        raise Transient("fetch_failed", f"cannot reach {endpoint}: {type(exc).__name__}: {exc}") from exc
    if not info.sha:
        raise Transient("fetch_failed", f"{endpoint} did not say which commit {repo_id} is at")
    config = info.config or {}
    return Resolved(
        sha=info.sha, base_models=base_models_from_card(info.card_data),
        family=config.get("model_type") if isinstance(config, dict) else None, pipeline_tag=info.pipeline_tag,
    )


def _resolve_local(path: Path) -> Resolved:
    """A local folder's revision is the sha256 of the files a scan reads (names, sizes and contents)."""
    from scanner.errors import PatronusError
    from scanner.fetch import fetch

    try:
        snapshot = fetch(str(path))
    except PatronusError as exc:
        raise Permanent(exc.code, str(exc)) from exc
    digest = hashlib.sha256()
    for rel in sorted(snapshot.downloaded):
        file = snapshot.local_dir / rel
        digest.update(rel.encode() + b"\0" + str(file.stat().st_size).encode() + b"\0")
        with open(file, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    family = None
    config = snapshot.local_dir / "config.json"
    if config.is_file():
        import json

        try:
            family = json.loads(config.read_text()).get("model_type")
        except (ValueError, OSError):
            family = None
    card = snapshot.card or card_of_local(path)
    return Resolved(sha=digest.hexdigest(), base_models=base_models_from_card(card), family=family,
                    pipeline_tag=card.get("pipeline_tag"))


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


# --------------------------------------------------------------------------------------------------- prepare


def _prepare(ctx: TaskContext, scan_id: int, token: str, resolved: Resolved, key: ScanKey) -> Outcome | list[str]:
    """Pin the revision; reuse a finished scan of it; defer to a running one; record lineage; seed triggers."""
    try:
        with session_scope(ctx.sessions) as s:
            scan = _owned(s, scan_id, token)
            model = scan.model
            get_or_create_model(s, Target(model.source, model.name), family=resolved.family,
                                pipeline_tag=resolved.pipeline_tag)
            revision = get_or_create_revision(s, model, resolved.sha)
            scan.revision_id = revision.id
            done = executed_scan(s, revision.id, key)
            if done is not None and done.id != scan.id:
                _reuse(scan, done)
                _update_latest(model, scan)
                return Outcome("reused", detail=f"scan {done.id}")
            busy = _running_twin(s, scan, key, ctx.settings.scan_lease_s)
            if busy is not None:
                scan.status, scan.claim_token = ScanStatus.QUEUED.value, None
                scan.attempts -= 1  # waiting for a twin is not an attempt
                scan.stage, scan.message = "waiting", f"scan {busy.id} is scanning the same commit"
                return Outcome("busy", retry_in=min(30.0, ctx.settings.scan_lease_s), detail=f"scan {busy.id}")
            record_links(s, model, resolved.base_models)
            s.flush()
            seeds = candidate_triggers_for(s, model)
            scan.seed_triggers = seeds or None
            scan.stage, scan.message = "resolved", f"commit {resolved.sha[:12]}"
            return seeds
    except LeaseLost:
        return Outcome("skipped", detail="lease lost to another worker")


def _running_twin(s, scan: Scan, key: ScanKey, lease_s: float) -> Scan | None:
    """Another live scan already executing this same commit with the same key."""
    fresh = utcnow() - timedelta(seconds=lease_s)
    rows = s.scalars(select(Scan).where(
        Scan.revision_id == scan.revision_id, Scan.id != scan.id, Scan.status == ScanStatus.RUNNING.value,
        Scan.engine_version == key.engine_version, Scan.config_hash == key.config_hash,
    ))
    return next((row for row in rows if row.heartbeat_at and aware(row.heartbeat_at) > fresh), None)


def _reuse(scan: Scan, done: Scan) -> None:
    now = utcnow()
    scan.status, scan.reused_from_id, scan.claim_token = ScanStatus.SUCCEEDED.value, done.id, None
    scan.verdict, scan.probability, scan.severity = done.verdict, done.probability, done.severity
    scan.device = done.device
    scan.finished_at, scan.seconds = now, 0.0
    scan.stage, scan.fraction, scan.message = "done", 1.0, f"reused scan {done.id} of the same commit"
    scan.error_code = scan.error_message = None


# --------------------------------------------------------------------------------------------------- execute


def _execute(ctx: TaskContext, scan_id: int, token: str, target: Target, resolved: Resolved,
             seeds: list[str]) -> Report:
    """Run the pipeline on the pinned commit while a heartbeat thread keeps the lease."""
    from scanner.fetch import ModelRef
    from scanner.pipeline import scan as pipeline_scan

    config = ctx.settings.scan_config()
    if target.source == "local":
        ref = ModelRef(path=Path(target.name))
    else:
        ref = ModelRef(repo_id=target.name, revision=resolved.sha)
    writer = ProgressWriter(ctx, scan_id, token)
    with Heartbeat(ctx, scan_id, token, writer), hub_endpoint(ctx.settings.hf_endpoint):
        return pipeline_scan(ref, config, progress=writer, seed_triggers=seeds or None)


@contextmanager
def hub_endpoint(endpoint: str | None) -> Iterator[None]:
    """HF_ENDPOINT set to `endpoint` for the duration (scanner.fetch reads it at call time), then restored."""
    if not endpoint:
        yield
        return
    before = os.environ.get("HF_ENDPOINT")
    os.environ["HF_ENDPOINT"] = endpoint
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HF_ENDPOINT", None)
        else:
            os.environ["HF_ENDPOINT"] = before


class ProgressWriter:
    """A Progress that writes stage/fraction/message to the scan row (throttled) and enforces the deadline."""

    min_interval_s = 0.5

    def __init__(self, ctx: TaskContext, scan_id: int, token: str) -> None:
        self.ctx, self.scan_id, self.token = ctx, scan_id, token
        self.deadline = time.monotonic() + ctx.settings.scan_time_limit_s
        self.last_write = 0.0
        self.last_stage: str | None = None
        self.lost = False

    def __call__(self, stage: str, fraction: float | None = None, message: str = "") -> None:
        if self.lost:
            raise LeaseLost()
        if time.monotonic() > self.deadline:
            raise ScanTimeout()
        delay = self.ctx.settings.scan_progress_delay_s
        if delay > 0:
            time.sleep(delay)
        now = time.monotonic()
        if stage == self.last_stage and now - self.last_write < self.min_interval_s:
            return
        self.last_stage, self.last_write = stage, now
        if not self.write(stage=stage[:32], fraction=fraction, message=(message or "")[:2000]):
            self.lost = True
            raise LeaseLost()

    def write(self, **values: Any) -> bool:
        """Update the row while this worker holds it; False when the lease is gone."""
        with session_scope(self.ctx.sessions) as s:
            result = s.execute(
                update(Scan).where(Scan.id == self.scan_id, Scan.claim_token == self.token,
                                   Scan.status == ScanStatus.RUNNING.value)
                .values(heartbeat_at=utcnow(), **values)
            )
            return result.rowcount == 1


class Heartbeat:
    """A daemon thread refreshing heartbeat_at every lease/5 seconds while the pipeline runs."""

    def __init__(self, ctx: TaskContext, scan_id: int, token: str, writer: ProgressWriter) -> None:
        self.writer = writer
        self.interval = max(ctx.settings.scan_lease_s / 5, 0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"heartbeat-{scan_id}", daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                if not self.writer.write():
                    self.writer.lost = True
                    return
            except Exception:  # a database hiccup must not kill the scan; the next beat tries again
                log.warning("heartbeat of scan %s failed", self.writer.scan_id, exc_info=True)

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


# --------------------------------------------------------------------------------------------------- record


def _transient(ctx: TaskContext, scan_id: int, token: str, attempts: int, code: str, message: str) -> Outcome:
    """Back to queued with the reason, to be retried after a backoff; failed once the attempts are spent."""
    if attempts >= ctx.settings.scan_max_retries + 1:
        _finish_failed(ctx, scan_id, token, code, f"{message} (gave up after {attempts} attempts)", None)
        return Outcome("failed", detail=code)
    delay = backoff(attempts, ctx.settings.scan_retry_backoff_s)
    try:
        with session_scope(ctx.sessions) as s:
            scan = _owned(s, scan_id, token)
            scan.status, scan.claim_token = ScanStatus.QUEUED.value, None
            scan.error_code, scan.error_message = code, message
            scan.stage, scan.fraction, scan.message = "retrying", None, f"retry in {delay:.0f} s: {message}"[:2000]
    except LeaseLost:
        return Outcome("skipped", detail="lease lost to another worker")
    return Outcome("retry", retry_in=delay, detail=code)


def _fail_row(scan: Scan, code: str, message: str) -> None:
    now = utcnow()
    scan.status, scan.claim_token = ScanStatus.FAILED.value, None
    scan.error_code, scan.error_message = code, message
    scan.finished_at = now
    if scan.started_at:
        scan.seconds = (now - aware(scan.started_at)).total_seconds()
    scan.stage, scan.message = "failed", message[:2000]
    scan.verdict = Verdict.ERROR.value


def _finish_failed(ctx: TaskContext, scan_id: int, token: str, code: str, message: str,
                   report: Report | None) -> None:
    try:
        with session_scope(ctx.sessions) as s:
            scan = _owned(s, scan_id, token)
            _fail_row(scan, code, message)
            if report is not None:
                scan.report = report.to_dict()
                scan.device = report.scan.device
            _update_latest(scan.model, scan)
    except LeaseLost:
        log.info("scan %s: lease lost before recording its failure", scan_id)


def _finish_succeeded(ctx: TaskContext, scan_id: int, token: str, report: Report, key: ScanKey) -> Outcome:
    """Store report, verdict and findings; if a twin executed the same commit first, become its reuse.

    Finishing twins serialize on the revision row (FOR UPDATE; SQLite's write lock), so the check for an
    executed scan and the write that makes this one executed cannot interleave.
    """
    try:
        with session_scope(ctx.sessions) as s:
            scan = _owned(s, scan_id, token)
            s.scalar(select(Revision).where(Revision.id == scan.revision_id).with_for_update())
            done = executed_scan(s, scan.revision_id, key)
            if done is not None and done.id != scan.id:
                _reuse(scan, done)
                _update_latest(scan.model, scan)
                return Outcome("reused", detail=f"scan {done.id}")
            now = utcnow()
            scan.status, scan.claim_token = ScanStatus.SUCCEEDED.value, None
            scan.verdict, scan.probability = report.verdict.value, report.probability
            scan.severity, scan.device = report.severity.value, report.scan.device
            scan.report = report.to_dict()
            scan.error_code = scan.error_message = None
            scan.finished_at = now
            scan.seconds = (now - aware(scan.started_at)).total_seconds() if scan.started_at else None
            scan.stage, scan.fraction, scan.message = "done", 1.0, report.verdict.value
            scan.findings = findings_of(report)
            if report.model.family and scan.model.family is None:
                scan.model.family = report.model.family
            _update_latest(scan.model, scan)
    except LeaseLost:
        return Outcome("skipped", detail="lease lost to another worker")
    return Outcome("succeeded", detail=report.verdict.value)


def findings_of(report: Report) -> list[Finding]:
    """One row per recovered trigger and per weight file that is not safe."""
    rows = [
        Finding(kind="trigger", text=t.text, severity=report.severity.value, score=t.score, p_value=t.p_value,
                detail={"tokens": t.tokens, "shift": t.shift, "poison_cos": t.poison_cos, "diff_cos": t.diff_cos,
                        "paper_rule": t.paper_rule, "flip_rate": t.flip_rate})
        for t in report.triggers
    ]
    file_severity = {FileStatus.DANGEROUS.value: Severity.CRITICAL.value,
                     FileStatus.SUSPICIOUS.value: Severity.MEDIUM.value}
    for f in report.serialization.files:
        if f.status in file_severity:
            rows.append(Finding(kind="serialization", text=f.path, severity=file_severity[f.status],
                                detail={"format": f.format, "status": f.status, "reason": f.reason,
                                        "globals": f.globals}))
    return rows


def _update_latest(model: Model, scan: Scan) -> None:
    model.latest_verdict, model.latest_severity, model.latest_scan_id = scan.verdict, scan.severity, scan.id


# --------------------------------------------------------------------------------------------------- reaper


def requeue_stale(ctx: TaskContext, unsent_grace_s: float = 60.0) -> list[int]:
    """Send again what no broker message will bring back; returns the scan ids sent.

    Running scans whose heartbeat is older than the lease (the worker died and the broker cannot redeliver, as
    with the embedded transport), and queued scans whose message was never sent (the broker was down).
    A duplicate message is harmless: the claim makes the task idempotent.
    """
    now = utcnow()
    stale = now - timedelta(seconds=ctx.settings.scan_lease_s)
    unsent = now - timedelta(seconds=unsent_grace_s)
    with session_scope(ctx.sessions) as s:
        rows = s.execute(select(Scan.id, Scan.celery_task_id, Scan.status, Scan.heartbeat_at, Scan.queued_at,
                                Scan.enqueued_at).where(Scan.status.in_(ACTIVE))).all()
    due = []
    for scan_id, task_id, status, heartbeat, queued, enqueued in rows:
        lost = status == ScanStatus.RUNNING.value and (heartbeat is None or aware(heartbeat) < stale)
        never_sent = status == ScanStatus.QUEUED.value and enqueued is None and aware(queued) < unsent
        if lost or never_sent:
            due.append((scan_id, task_id))
    sent = []
    for scan_id, task_id in due:
        try:
            if ctx.send_scan(scan_id, task_id or str(uuid.uuid4())):
                sent.append(scan_id)
        except Exception:
            log.warning("could not re-send scan %s", scan_id, exc_info=True)
    if sent:
        with session_scope(ctx.sessions) as s:
            s.execute(update(Scan).where(Scan.id.in_(sent)).values(enqueued_at=utcnow()))
    return sent
