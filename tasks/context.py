"""What a task function needs: settings, a session factory and a way to enqueue scans. No Celery here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy.orm import Session, sessionmaker

from db.session import make_engine, make_session_factory
from tasks.settings import Settings, get_settings

Enqueue = Callable[[int, str], None]  # (scan id, celery task id) -> sends the message


@dataclass
class TaskContext:
    settings: Settings
    sessions: sessionmaker[Session]
    enqueue_scan: Enqueue | None = None  # discovery and the reaper enqueue through this

    def send_scan(self, scan_id: int, task_id: str) -> bool:
        """Send the scan message (after its row is committed); False when no sender is configured or it failed."""
        if self.enqueue_scan is None:
            return False
        self.enqueue_scan(scan_id, task_id)
        return True


@lru_cache(maxsize=4)
def sessions_for(url: str) -> sessionmaker[Session]:
    """One engine and session factory per database URL per process."""
    return make_session_factory(make_engine(url))


def default_context(enqueue: Enqueue | None = None) -> TaskContext:
    """The context of a worker/web process: settings from the environment."""
    settings = get_settings()
    settings.ensure_data_dir()
    return TaskContext(settings=settings, sessions=sessions_for(settings.database_url), enqueue_scan=enqueue)
