"""The scan task as a plain function of its context: claim the row, resolve the commit, reuse or scan, record.

This module holds hub resolution, the pipeline run and the heartbeat; the row's lifecycle (claim, reuse, finish,
reap) lives in tasks.lifecycle. Idempotent under redelivery: a finished row is left alone; a running row with a fresh
heartbeat belongs to another worker (the duplicate is dropped); a running row whose heartbeat went stale (worker
killed) is taken over. Retries are decided by the error's `retryable` flag (scanner.errors), never by code lists.
An unexpected exception anywhere after the claim is recorded once as `internal_error` with its cause.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import update

from db.models import Scan, ScanStatus, utcnow
from db.repo import Target
from db.session import session_scope
from scanner.errors import FetchError, GatedRepoError, PatronusError, SizeLimitError, retryable_code
from tasks import lifecycle
from tasks.context import TaskContext
from tasks.lifecycle import (
    MESSAGE_CHARS,
    Claim,
    LeaseLost,
    Outcome,
    Resolved,
    backoff,
    bounded_base_models,
    clean,
    clean_word,
    describe,
)
from tasks.lineage import base_models_from_card, card_of_local

log = logging.getLogger(__name__)

__all__ = ["LeaseLost", "Outcome", "ProgressWriter", "Resolved", "backoff", "resolve", "run_scan"]


class ScanTimeout(BaseException):
    """The scan ran past its time limit (cooperative check in the progress callback)."""


# --------------------------------------------------------------------------------------------------- entry point


def run_scan(ctx: TaskContext, scan_id: int, on_claimed: Callable[[], object] | None = None) -> Outcome:
    """Run one delivery of the scan task for `scan_id`; `on_claimed` runs once this worker holds the row (the
    worker starts its download-ahead there: tasks.prefetch)."""
    claimed = lifecycle.claim(ctx, scan_id)
    if isinstance(claimed, Outcome):
        return claimed
    if on_claimed is not None:
        on_claimed()
    try:
        return _run_claimed(ctx, scan_id, claimed)
    except LeaseLost:
        return Outcome("skipped", detail="lease lost to another worker")
    except ScanTimeout:
        lifecycle.finish_failed(
            ctx, scan_id, claimed.token, "timeout", f"scan ran past {ctx.settings.scan_time_limit_s} s"
        )
        return Outcome("failed", detail="timeout")
    except Exception as exc:  # a bug, a permission error, a value the database refused: recorded once, not retried
        log.exception("scan %s crashed", scan_id)
        lifecycle.finish_failed(ctx, scan_id, claimed.token, "internal_error", describe(exc))
        return Outcome("failed", detail="internal_error")


def _run_claimed(ctx: TaskContext, scan_id: int, claimed: Claim) -> Outcome:
    token, attempts = claimed.token, claimed.attempts
    try:
        resolved = resolve(ctx, claimed.target, claimed.requested)
    except PatronusError as exc:
        if exc.retryable:
            return lifecycle.retry_later(ctx, scan_id, token, attempts, exc.code, str(exc))
        lifecycle.finish_failed(ctx, scan_id, token, exc.code, str(exc))
        return Outcome("failed", detail=exc.code)
    prepared = lifecycle.prepare(ctx, scan_id, token, resolved, claimed.key)
    if isinstance(prepared, Outcome):
        return prepared
    report = _execute(ctx, scan_id, token, claimed.target, resolved, prepared)
    code = report.error_code
    if report.verdict.value == "error":
        message = report.errors[0].message if report.errors else "the scan failed"
        if retryable_code(code):
            return lifecycle.retry_later(ctx, scan_id, token, attempts, code or "scan_failed", message)
        lifecycle.finish_failed(ctx, scan_id, token, code or "scan_failed", message, report)
        return Outcome("failed", detail=code or "scan_failed")
    return lifecycle.finish_succeeded(ctx, scan_id, token, report, claimed.key)


# --------------------------------------------------------------------------------------------------- resolve


def resolve(ctx: TaskContext, target: Target, requested: str) -> Resolved:
    """The commit to scan (hub sha, or content hash of a local folder) and what the card says (bounded)."""
    if target.source == "local":
        return _resolve_local(ctx, Path(target.name))
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
        raise GatedRepoError(f"{repo_id} is gated: {_first_line(exc)}") from exc
    except hf_errors.RevisionNotFoundError as exc:
        raise _permanent(f"revision {revision!r} not found in {repo_id} on {endpoint}") from exc
    except hf_errors.RepositoryNotFoundError as exc:
        raise _permanent(f"repository {repo_id} not found on {endpoint}") from exc
    except hf_errors.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            raise GatedRepoError(f"{endpoint} refused access to {repo_id} ({status})") from exc
        if status is not None and 400 <= status < 500 and status not in (408, 429):
            raise _permanent(f"{endpoint} answered {status} for {repo_id}") from exc
        raise FetchError(f"{endpoint} answered {status} for {repo_id}") from exc
    except Exception as exc:  # transport errors (connection refused, timeouts, DNS)
        raise FetchError(f"cannot reach {endpoint}: {type(exc).__name__}: {_first_line(exc)}") from exc
    sha = info.sha if isinstance(info.sha, str) and len(info.sha) == 40 else None
    if sha is None:
        raise FetchError(f"{endpoint} did not say which commit {repo_id} is at")
    config = info.config if isinstance(info.config, dict) else {}
    return Resolved(
        sha=sha,
        base_models=bounded_base_models(_card_base_models(info.card_data), ctx.settings.max_base_models),
        family=clean_word(config.get("model_type"), 32),
        pipeline_tag=clean_word(info.pipeline_tag, 64),
        private=bool(info.private) or bool(info.gated),
    )


def _card_base_models(card_data: Any) -> list[Any]:
    try:
        return base_models_from_card(card_data)
    except Exception:  # malformed card data is not a scan failure
        return []


def _permanent(message: str) -> FetchError:
    """A fetch failure retrying cannot fix (missing repo or revision)."""
    exc = FetchError(message)
    exc.retryable = False
    return exc


def _resolve_local(ctx: TaskContext, path: Path) -> Resolved:
    """A local folder's revision is the sha256 of the files a scan reads (names, sizes and contents), within the
    size bound (checked before anything is hashed)."""
    from scanner.fetch import fetch

    snapshot = fetch(str(path), max_size=ctx.settings.scan_max_size)
    files = [snapshot.local_dir / rel for rel in sorted(snapshot.downloaded)]
    total = sum(file.stat().st_size for file in files)
    if total > ctx.settings.scan_max_size:
        raise SizeLimitError(
            f"the folder's files are {total:,} bytes, over the bound of {ctx.settings.scan_max_size:,}"
        )
    digest = hashlib.sha256()
    for rel, file in zip(sorted(snapshot.downloaded), files, strict=True):
        digest.update(rel.encode() + b"\0" + str(file.stat().st_size).encode() + b"\0")
        with open(file, "rb") as fh:
            for chunk in iter(partial(fh.read, 1 << 20), b""):
                digest.update(chunk)
    family = None
    config = snapshot.local_dir / "config.json"
    if config.is_file() and config.stat().st_size < 1 << 20:
        import json

        try:
            family = clean_word(json.loads(config.read_text()).get("model_type"), 32)
        except (ValueError, OSError, AttributeError):
            family = None
    card = snapshot.card or card_of_local(path)
    return Resolved(
        sha=digest.hexdigest(),
        base_models=bounded_base_models(_card_base_models(card), ctx.settings.max_base_models),
        family=family,
        pipeline_tag=clean_word(card.get("pipeline_tag") if card else None, 64),
        private=True,
    )


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)[:500]


# --------------------------------------------------------------------------------------------------- execute


def _execute(ctx: TaskContext, scan_id: int, token: str, target: Target, resolved: Resolved, seeds: list[str]):
    """Run the pipeline on the pinned commit while a heartbeat thread keeps the lease."""
    from scanner.fetch import ModelRef
    from scanner.lineage import BASE_FROM_CARD
    from scanner.pipeline import scan as pipeline_scan

    config = ctx.settings.scan_config()
    if target.source == "local":
        ref = ModelRef(path=Path(target.name))
    else:
        ref = ModelRef(repo_id=target.name, revision=resolved.sha)
    writer = ProgressWriter(ctx, scan_id, token)
    with Heartbeat(ctx, scan_id, token, writer):  # the hub endpoint travels in the ScanConfig
        base = BASE_FROM_CARD if ctx.settings.lineage_base else None
        return pipeline_scan(ref, config, progress=writer, seed_triggers=seeds or None, base=base)


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
        if not self.write(stage=stage[:32], fraction=fraction, message=clean(message or "", MESSAGE_CHARS)):
            self.lost = True
            raise LeaseLost()

    def write(self, **values: Any) -> bool:
        """Update the row while this worker holds it; False when the lease is gone."""
        with session_scope(self.ctx.sessions) as s:
            result = s.execute(
                update(Scan)
                .where(Scan.id == self.scan_id, Scan.claim_token == self.token, Scan.status == ScanStatus.RUNNING.value)
                .values(heartbeat_at=utcnow(), **values)
            )
            return getattr(result, "rowcount", 0) == 1


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
