"""`patronus serve`, `patronus worker`, `patronus beat`, `patronus db upgrade`: the service's command shells.

Imports of db/, tasks/ and web/ stay inside the commands, so `scanner` never imports them at module load.
With no settings, everything runs on one machine: SQLite under ~/.local/share/patronus and the SQLAlchemy
transport on its own SQLite file as the broker; the SQLite database is migrated on start.
"""

from __future__ import annotations

import socket

import click


def _settings():
    from tasks.settings import get_settings

    settings = get_settings()
    settings.ensure_data_dir()
    return settings


def _auto_migrate(settings) -> None:
    """The embedded SQLite database migrates itself; Postgres is migrated explicitly (`patronus db upgrade`)."""
    if settings.database_url.startswith("sqlite"):
        from db.migrate import upgrade

        upgrade(settings.database_url)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="uvicorn worker processes.")
@click.option("--log-level", default="info", show_default=True)
def serve(host: str, port: int, workers: int, log_level: str) -> None:
    """Run the web app (report pages and the JSON API)."""
    import uvicorn

    settings = _settings()
    _auto_migrate(settings)
    click.echo(f"patronus: serving on http://{host}:{port} (database {_redact(settings.database_url)})", err=True)
    from web.server import MAX_HEAD_BYTES, GuardedH11Protocol

    uvicorn.run(
        "web.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        proxy_headers=True,
        http=GuardedH11Protocol,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        limit_concurrency=1000,
        timeout_keep_alive=5,
    )


@click.command()
@click.option("--queues", "-Q", default=None, help="Comma list of queues (default: gpu,default).")
@click.option("--pool", default="solo", show_default=True, help="Celery pool; solo: one scan at a time per GPU.")
@click.option("--concurrency", "-c", default=1, show_default=True, type=int)
@click.option("--beat/--no-beat", "-B", default=False, help="Also run the beat scheduler (single-machine setups).")
@click.option("--hostname", "-n", default=None, help="Worker node name (default patronus@<host>).")
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@click.option(
    "--gpus",
    default=None,
    help="One worker process per GPU, each pinned to its device: all, a count, or a comma list of indices.",
)
def worker(
    queues: str | None, pool: str, concurrency: int, beat: bool, hostname: str | None, loglevel: str, gpus: str | None
) -> None:
    """Run a Celery worker for scans (gpu queue) and discovery (default queue)."""
    if gpus is not None:
        from scanner.cli.gpus import parse_gpus, plan, supervise, visible_gpus

        if beat:  # one scheduler a deployment, not one a GPU
            raise click.BadParameter("run beat separately (`patronus beat`) with --gpus", param_hint="--beat")
        try:
            devices = parse_gpus(gpus, visible_gpus())
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--gpus") from None
        children = plan(devices, hostname)
        click.echo(f"patronus: {len(children)} worker(s): " + ", ".join(w.hostname for w in children), err=True)
        args = [f"--pool={pool}", f"--concurrency={concurrency}", f"--loglevel={loglevel}"]
        if queues:
            args.append(f"--queues={queues}")
        raise SystemExit(supervise(children, args))
    settings = _settings()
    _auto_migrate(settings)
    from tasks.app import app
    from tasks.settings import data_dir

    queues = queues or f"{settings.gpu_queue},{settings.default_queue}"
    argv = [
        "worker",
        f"--pool={pool}",
        f"--concurrency={concurrency}",
        f"--queues={queues}",
        f"--loglevel={loglevel}",
        f"--hostname={hostname or f'patronus@{socket.gethostname()}'}",
        "--without-gossip",
        "--without-mingle",
    ]
    if beat:
        argv += ["--beat", f"--schedule={data_dir() / 'celerybeat-schedule'}"]
    app.worker_main(argv)


@click.command()
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@click.option("--schedule", default=None, help="Beat state file (default under the data directory).")
def beat(loglevel: str, schedule: str | None) -> None:
    """Run the beat scheduler (discovery every PATRONUS_DISCOVERY_INTERVAL_S, stale-scan recovery)."""
    _settings()
    from tasks.app import app
    from tasks.settings import data_dir

    app.start(["beat", f"--loglevel={loglevel}", f"--schedule={schedule or data_dir() / 'celerybeat-schedule'}"])


@click.group()
def db() -> None:
    """Database maintenance."""


@db.command()
@click.option("--revision", default="head", show_default=True)
def upgrade(revision: str) -> None:
    """Apply the migrations to PATRONUS_DATABASE_URL."""
    from db.migrate import current_revision
    from db.migrate import upgrade as run_upgrade

    settings = _settings()
    run_upgrade(settings.database_url, revision)
    click.echo(f"database {_redact(settings.database_url)} at revision {current_revision(settings.database_url)}")


@db.command()
def current() -> None:
    """Print the database's migration revision and the newest one shipped."""
    from db.migrate import current_revision, head_revision

    settings = _settings()
    click.echo(f"current: {current_revision(settings.database_url)}  head: {head_revision()}")


def _redact(url: str) -> str:
    """A database URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable url>"
