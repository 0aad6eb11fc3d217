"""What a task function needs: settings, a session factory and a way to enqueue scans. No Celery here."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

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


@lru_cache(maxsize=8)
def _sessions(url: str, kwargs_json: str) -> sessionmaker[Session]:
    kwargs: dict[str, Any] = json.loads(kwargs_json)
    return make_session_factory(make_engine(url, **kwargs))


def sessions_for(settings: Settings | str) -> sessionmaker[Session]:
    """One engine and session factory per database URL (and timeouts) per process."""
    if isinstance(settings, str):
        return _sessions(settings, "{}")
    return _sessions(settings.database_url, json.dumps(settings.engine_kwargs(), sort_keys=True))


def default_context(enqueue: Enqueue | None = None) -> TaskContext:
    """The context of a worker/web process: settings from the environment."""
    settings = get_settings()
    settings.ensure_data_dir()
    return TaskContext(settings=settings, sessions=sessions_for(settings), enqueue_scan=enqueue)
