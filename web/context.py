"""What the web app needs per process: settings, sessions, the scan sender (Celery unless injected), and the
per-token submission buckets."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker

from tasks.context import Enqueue
from tasks.settings import Settings
from web.limits import TokenBuckets


@dataclass
class WebContext:
    settings: Settings
    sessions: sessionmaker[Session]
    enqueue: Enqueue | None = None
    health_sessions: sessionmaker[Session] | None = None  # a one-connection pool: /healthz cannot pile up threads
    buckets: TokenBuckets = field(init=False)

    def __post_init__(self) -> None:
        self.buckets = TokenBuckets(self.settings.submit_rate_per_minute, self.settings.submit_burst)

    def send(self, scan_id: int, task_id: str) -> None:
        """Send a scan task (the row is already committed). Celery's app is imported on first use."""
        if self.enqueue is None:
            from tasks.app import sender_for

            self.enqueue = sender_for(self.settings)
        self.enqueue(scan_id, task_id)


def get_context(request: Request) -> WebContext:
    return request.app.state.ctx
