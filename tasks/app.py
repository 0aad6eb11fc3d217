"""The Celery app: queues `gpu` (scan) and `default` (discover, requeue_stale), beat schedule.

Delivery guarantees: acks_late + prefetch 1 (a task is acknowledged only after it ran), task_reject_on_worker_lost
(prefork: a task whose child died goes back to the queue), the redis visibility timeout (solo pool: a task whose
worker was killed is redelivered), and the reaper (tasks.lifecycle.reap), which every worker runs in a thread every
`reaper_every_s` seconds, so recovery from a killed worker or a lost message does not depend on beat (beat's
`patronus.requeue_stale` runs the same sweep). Results live in the scans table, so Celery's result backend is off
unless configured.

The tasks are thin: each builds its context and calls a plain function from tasks.scan / tasks.discover.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery import Celery, signals
from kombu import Exchange, Queue

from tasks.settings import Settings, get_settings

log = logging.getLogger(__name__)

SCAN = "patronus.scan"
DISCOVER = "patronus.discover"
REQUEUE_STALE = "patronus.requeue_stale"


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings derived from ours (pure: tested without a broker)."""
    gpu, default = settings.gpu_queue, settings.default_queue
    transport: dict[str, Any] = {}
    if settings.broker_url.startswith(("redis://", "rediss://", "sentinel://")):
        vt = settings.broker_visibility_timeout_s
        transport = {
            "visibility_timeout": vt,
            "unacked_restore_interval": max(1, min(10, vt // 4)),
            "unacked_restore_throttle": 1,
        }
        if settings.queue_prefix:
            transport["global_keyprefix"] = settings.queue_prefix
    elif settings.broker_url.startswith(("sqla+sqlite", "sqlalchemy+sqlite")):
        transport = {"connect_args": {"timeout": 30}}  # handed to create_engine: wait on SQLite's write lock
    limit = settings.scan_time_limit_s
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        "task_ignore_result": settings.result_backend is None,
        "task_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": limit + 300,  # hard limit (prefork pools); the scan also checks it cooperatively
        "task_soft_time_limit": limit,
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "task_default_queue": default,
        "task_queues": (
            Queue(gpu, Exchange(gpu), routing_key=gpu),
            Queue(default, Exchange(default), routing_key=default),
        ),
        "task_default_exchange": default,
        "task_default_routing_key": default,
        "task_routes": {SCAN: {"queue": gpu}, DISCOVER: {"queue": default}, REQUEUE_STALE: {"queue": default}},
        "worker_enable_remote_control": not settings.embedded,  # the SQL transport has no fanout exchange
        "worker_send_task_events": False,
        "beat_schedule": {
            "discover": {"task": DISCOVER, "schedule": settings.discovery_interval_s},
            "requeue-stale": {"task": REQUEUE_STALE, "schedule": settings.reaper_every_s},
        },
    }


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    settings.ensure_data_dir()
    celery = Celery("patronus")
    celery.conf.update(celery_config(settings))
    return celery


app = make_celery()
_context = None


def context():
    """This process's TaskContext (built on first use), which enqueues scans through this app."""
    global _context
    if _context is None:
        from tasks.context import default_context

        _context = default_context(enqueue=enqueue_scan)
    return _context


def enqueue_scan(scan_id: int, task_id: str) -> None:
    """Send the scan task through this process's app; call only after the scan row is committed."""
    scan_task.apply_async(args=[scan_id], task_id=task_id, queue=get_settings().gpu_queue)


def sender_for(settings: Settings):
    """An Enqueue that sends scan tasks to the broker and queue `settings` name (the web app uses this)."""
    celery = app if settings is get_settings() else make_celery(settings)
    queue = settings.gpu_queue

    def send(scan_id: int, task_id: str) -> None:
        celery.send_task(SCAN, args=[scan_id], task_id=task_id, queue=queue)

    return send


@app.task(bind=True, name=SCAN, max_retries=None, acks_late=True)
def scan_task(self, scan_id: int) -> dict[str, Any]:
    """Scan one queued scan row (see tasks.scan.run_scan)."""
    from tasks.prefetch import PREFETCHER
    from tasks.scan import run_scan

    ctx = context()
    outcome = run_scan(ctx, scan_id, on_claimed=lambda: PREFETCHER.kick(ctx, scan_id))
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)
    return {"scan_id": scan_id, "status": outcome.status, "detail": outcome.detail}


@app.task(name=DISCOVER)
def discover_task() -> dict[str, Any]:
    """One discovery run over the configured families (see tasks.discover.discover)."""
    from tasks.discover import discover

    return discover(context()).to_dict()


def queue_size(settings: Settings | None = None) -> int | None:
    """Messages waiting in the scan queue (None when the broker cannot say)."""
    settings = settings or get_settings()
    with app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1, timeout=5)
        try:
            _, count, _ = conn.default_channel.queue_declare(queue=settings.gpu_queue, passive=True)
        except Exception as exc:  # redis: an empty queue has no key; amqp: NotFound (404) when never declared
            if "NOT_FOUND" in str(exc) or getattr(exc, "code", None) == 404:
                return 0
            raise
        return int(count)


@app.task(name=REQUEUE_STALE)
def requeue_stale_task() -> list[int]:
    """Re-send scans no broker will redeliver (see tasks.lifecycle.reap)."""
    from tasks.lifecycle import reap

    return reap(context(), queue_size)


@signals.worker_process_init.connect
def _reset_after_fork(**_: Any) -> None:
    """A forked child must not share the parent's database connections."""
    global _context
    if _context is not None:
        _context.sessions.kw["bind"].dispose(close=False)


@signals.worker_ready.connect
def _on_worker_ready(**_: Any) -> None:
    """Every worker sweeps for lost scans (killed workers, lost or unsent messages): recovery needs no beat."""
    settings = get_settings()
    threading.Thread(target=_sweep_forever, args=(settings.reaper_every_s,), name="reaper", daemon=True).start()


def _sweep_forever(interval: float) -> None:
    """Run the reaper now and every `interval` seconds."""
    from tasks.lifecycle import reap

    while True:
        try:
            reap(context(), queue_size)
        except Exception:
            log.exception("could not look for scans left behind")
        time.sleep(interval)
