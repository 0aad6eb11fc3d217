"""Download ahead (issue 16's pipelined worker): while this worker scans one model, the files of the next queued hub
models are fetched into the shared download cache, so the scan that claims them starts on cached files.

Read-only on the database: no claim, no row change. At-most-once, the lease and retries stay with tasks.lifecycle,
whichever worker ends up claiming the prefetched scan. Bounded: `scan_prefetch` models ahead, one background thread
per process, each download within `scan_max_size`; files already cached for the resolved commit cost no download
(scanner.fetch), so seeing a scan again on the next pass costs one commit lookup. A prefetch failure is only logged:
the scan that needs the files fetches them itself and records any error.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from sqlalchemy import select

from db.models import Model, Scan, ScanStatus
from db.session import session_scope
from tasks.context import TaskContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ahead:
    """A queued hub scan whose files can be fetched before it is claimed."""

    scan_id: int
    repo_id: str
    revision: str  # "" = the default branch


def queued_ahead(ctx: TaskContext, current: int, limit: int) -> list[Ahead]:
    """The next `limit` queued hub scans in queue order, other than `current`."""
    if limit <= 0:
        return []
    with session_scope(ctx.sessions) as s:
        rows = s.execute(
            select(Scan.id, Model.name, Scan.requested_revision)
            .join(Model, Scan.model_id == Model.id)
            .where(Scan.status == ScanStatus.QUEUED, Model.source == "hub", Scan.id != current)
            .order_by(Scan.queued_at, Scan.id)
            .limit(limit)
        ).all()
    return [Ahead(scan_id, name, revision or "") for scan_id, name, revision in rows]


class Prefetcher:
    """One per worker process; `kick` after a claim starts (at most) one background pass over the queue ahead."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def kick(self, ctx: TaskContext, current: int) -> threading.Thread | None:
        """Start a prefetch pass unless one is running or prefetch is off; the thread, for tests to join."""
        limit = ctx.settings.scan_prefetch
        if limit <= 0:
            return None
        with self.lock:
            if self.thread is not None and self.thread.is_alive():
                return None
            self.thread = threading.Thread(
                target=self._pass, args=(ctx, current, limit), name=f"prefetch-after-{current}", daemon=True
            )
            self.thread.start()
            return self.thread

    def _pass(self, ctx: TaskContext, current: int, limit: int) -> None:
        try:
            ahead = queued_ahead(ctx, current, limit)
        except Exception:  # the database is the scan's business; a prefetch never fails anything
            log.warning("prefetch: cannot read the queue", exc_info=True)
            return
        for item in ahead:
            self.fetch(ctx, item)

    @staticmethod
    def fetch(ctx: TaskContext, item: Ahead) -> bool:
        """Fetch one queued model's files into the scan cache (what its scan would download); False on failure."""
        from scanner.fetch import ModelRef, fetch_for

        try:
            fetch_for(ModelRef(repo_id=item.repo_id, revision=item.revision or None), ctx.settings.scan_config())
            log.info("prefetch: %s@%s cached for scan %s", item.repo_id, item.revision or "main", item.scan_id)
            return True
        except Exception as exc:  # gated, missing, too large, offline: the scan itself reports it
            log.info("prefetch: %s for scan %s not cached: %s", item.repo_id, item.scan_id, exc)
            return False


PREFETCHER = Prefetcher()
