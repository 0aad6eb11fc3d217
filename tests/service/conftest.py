"""Service test fixtures: a real migrated Postgres (savepoint per test), a real Redis broker, real worker processes,
the loopback hub stand-in with a tiny real model, and a real uvicorn server.

Postgres at 127.0.0.1:5432 (user postgres, trust auth) and Redis at 127.0.0.1:6379 must be running (.ci/run starts
them). A dedicated database `patronus_test_<pid>` is created and migrated with Alembic when the session starts and
dropped at the end. Workers use their own Redis database number and a queue/key prefix unique to the session.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from db.session import make_engine
from tasks.context import TaskContext
from tasks.settings import Settings
from tests.hub_stub import HubStub

REPO = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = os.environ.get("PATRONUS_TEST_PG_ADMIN", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("PATRONUS_TEST_REDIS", "redis://127.0.0.1:6379/13")
API_TOKEN = "test-token-1"
TABLES = ("findings", "lineage", "scans", "revisions", "models", "discovery_cursor")

pytestmark = pytest.mark.service


# --------------------------------------------------------------------------------------------------- postgres


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh database migrated to head with Alembic; dropped after the session."""
    from db.scratch import scratch_database

    try:
        database = scratch_database(PG_ADMIN_URL, f"patronus_test_{os.getpid()}")
        url = database.__enter__()
    except Exception as exc:  # not a skip: the service tests need it
        pytest.fail(
            f"Postgres is not reachable at {PG_ADMIN_URL} ({type(exc).__name__}: {exc}); start it "
            "(CI: .ci/run starts it with pg_ctlcluster)"
        )
    yield url
    database.__exit__(None, None, None)


@pytest.fixture(scope="session")
def pg_engine(pg_url):
    engine = make_engine(pg_url, pool_size=10, max_overflow=30)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(pg_engine) -> Iterator[sessionmaker[Session]]:
    """A session factory inside one outer transaction that is rolled back after the test (warehouse style).

    Every session joins the test's connection with a SAVEPOINT, so code that commits (session_scope) works
    unchanged while nothing outlives the test.
    """
    conn = pg_engine.connect()
    outer = conn.begin()
    factory = sessionmaker(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    yield factory
    outer.rollback()
    conn.close()


@pytest.fixture
def db(sessions) -> Iterator[Session]:
    session = sessions()
    yield session
    session.close()


@pytest.fixture
def live_db(pg_url, pg_engine) -> Iterator[str]:
    """The committed database (for worker processes and concurrent clients); emptied after the test."""
    yield pg_url
    with pg_engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))


# --------------------------------------------------------------------------------------------------- settings


@pytest.fixture(scope="session")
def queue_prefix() -> str:
    return f"pt{os.getpid()}-{uuid.uuid4().hex[:6]}-"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hf-cache")


@pytest.fixture(scope="session")
def make_settings(pg_url, queue_prefix, cache_dir, hub):
    """Settings for in-process code; keyword overrides allowed."""

    def build(**overrides) -> Settings:
        values = dict(
            database_url=pg_url,
            broker_url=REDIS_URL,
            queue_prefix=queue_prefix,
            api_tokens=[API_TOKEN],
            hf_endpoint=hub.url,
            scan_profile="quick",
            scan_device="cpu",
            scan_behavioural=False,
            cache_dir=cache_dir,
            scan_retry_backoff_s=1.0,
            scan_lease_s=30.0,
        )
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture
def task_ctx(make_settings, sessions):
    """A TaskContext on the savepoint session factory that records what it would enqueue."""
    sent: list[tuple[int, str]] = []
    ctx = TaskContext(settings=make_settings(), sessions=sessions, enqueue_scan=lambda i, t: sent.append((i, t)))
    ctx.sent = sent  # type: ignore[attr-defined]
    return ctx


# --------------------------------------------------------------------------------------------------- models, hub


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A real (random-weight) 2-layer BERT with a real tokenizer, safetensors."""
    import torch

    from scanner.research.base_models import build_base

    torch.set_num_threads(1)
    return build_base("bert", tmp_path_factory.mktemp("models") / "tiny-bert", layers=2, hidden=32)


def model_files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


@pytest.fixture(scope="session")
def hub(tiny_model) -> Iterator[HubStub]:
    """The loopback hub with `org/tiny-bert` (a scannable model) and `org/empty` (nothing scannable)."""
    with HubStub(page_size=1000) as stub:
        stub.add_repo(
            "org/tiny-bert",
            model_files(tiny_model),
            pipeline_tag="fill-mask",
            tags=["transformers", "bert", "fill-mask"],
            created_at="2024-06-01T00:00:00Z",
        )
        stub.add_repo(
            "org/empty",
            {"config.json": b'{"model_type": "bert"}'},
            pipeline_tag="fill-mask",
            tags=["transformers", "bert"],
            created_at="2024-06-01T00:01:00Z",
        )
        yield stub


def add_model_repo(hub: HubStub, repo_id: str, tiny_model: Path, **kwargs) -> str:
    """Publish the tiny model under another name (a distinct commit sha)."""
    if repo_id in hub.repos:
        return hub.repos[repo_id].refs["main"]
    kwargs.setdefault("pipeline_tag", "fill-mask")
    kwargs.setdefault("tags", ["transformers", "bert", "fill-mask"])
    return hub.add_repo(repo_id, model_files(tiny_model), **kwargs)


# --------------------------------------------------------------------------------------------------- redis, worker


def _redis():
    import redis

    return redis.Redis.from_url(REDIS_URL)


@pytest.fixture(scope="session")
def redis_broker(queue_prefix) -> Iterator[str]:
    client = _redis()
    try:
        client.ping()
    except Exception as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} ({exc}); start it (CI: .ci/run starts redis-server)")
    yield REDIS_URL
    for key in client.scan_iter(match=f"{queue_prefix}*"):
        client.delete(key)
    client.close()


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a worker subprocess for `settings` (everything through PATRONUS_* variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PATRONUS_", "HF_"))}
    env.update(
        {
            "PATRONUS_DATABASE_URL": settings.database_url,
            "PATRONUS_BROKER_URL": settings.broker_url,
            "PATRONUS_QUEUE_PREFIX": settings.queue_prefix,
            "PATRONUS_SCAN_PROFILE": settings.scan_profile,
            "PATRONUS_SCAN_DEVICE": settings.scan_device,
            "PATRONUS_SCAN_BEHAVIOURAL": "1" if settings.scan_behavioural else "0",
            "PATRONUS_CACHE_DIR": str(settings.cache_dir),
            "HF_ENDPOINT": settings.hf_endpoint or "",
            "PATRONUS_SCAN_LEASE_S": str(settings.scan_lease_s),
            "PATRONUS_SCAN_RETRY_BACKOFF_S": str(settings.scan_retry_backoff_s),
            "PATRONUS_BROKER_VISIBILITY_TIMEOUT_S": str(settings.broker_visibility_timeout_s),
            "PATRONUS_SCAN_PROGRESS_DELAY_S": str(settings.scan_progress_delay_s),
            "PATRONUS_QUEUE_LEASE_S": str(settings.queue_lease_s),
            "PATRONUS_SCAN_MAX_RETRIES": str(settings.scan_max_retries),
            "PATRONUS_DB_CONNECT_TIMEOUT_S": str(settings.db_connect_timeout_s),
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": str(REPO),
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }
    )
    env.update(extra)
    return env


class WorkerProcess:
    """`patronus worker` as a subprocess, its output in a log file."""

    def __init__(self, env: dict[str, str], log_path: Path, name: str) -> None:
        self.log_path = log_path
        self.log_file = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        cmd = [
            sys.executable,
            "-c",
            "from scanner.cli import run; run()",
            "worker",
            "--loglevel=INFO",
            f"--hostname={name}@%h",
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready after {timeout} s:\n{self.log()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL, no chance to clean up (what an OOM kill or a lost node does)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Cold shutdown (SIGQUIT): an idle worker holds nothing, and waiting for a warm one costs seconds."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGQUIT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log_file.close()


class Workers:
    """Starts workers for given Settings; stops every one it started."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[WorkerProcess] = []

    def __call__(self, settings: Settings, name: str = "w", **extra_env: str) -> WorkerProcess:
        n = len(self.started)
        worker = WorkerProcess(
            worker_env(settings, **extra_env), self.log_dir / f"worker-{name}-{n}.log", f"{name}{n}-{os.getpid()}"
        )
        self.started.append(worker)
        worker.wait_ready()
        return worker

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()


@pytest.fixture
def start_worker(redis_broker, tmp_path) -> Iterator[Workers]:
    """Start workers for given Settings; every one is stopped at teardown."""
    workers = Workers(tmp_path)
    yield workers
    workers.stop_all()


# --------------------------------------------------------------------------------------------------- web server


class LiveServer:
    """uvicorn serving an app on a free loopback port, in a thread."""

    def __init__(self, app) -> None:
        import uvicorn

        from web.server import MAX_HEAD_BYTES, GuardedH11Protocol

        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=0,
                log_level="warning",
                limit_concurrency=200,
                http=GuardedH11Protocol,
                h11_max_incomplete_event_size=MAX_HEAD_BYTES,
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    @property
    def url(self) -> str:
        sock = self.server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live_server():
    """Start a LiveServer for an app; stopped at teardown."""
    servers: list[LiveServer] = []

    def start(app) -> LiveServer:
        server = LiveServer(app).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def wait_for(predicate, timeout: float, interval: float = 0.25, what: str = "condition"):
    """Poll until `predicate()` is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = Path(os.environ.get("PATRONUS_ARTIFACTS", REPO / "out" / "ci-artifacts")) / "service"
    path.mkdir(parents=True, exist_ok=True)
    return path
