"""The embedded default: `patronus serve` + `patronus worker` with no database or broker settings.

SQLite under $XDG_DATA_HOME/patronus and kombu's SQLAlchemy transport on its own SQLite file; no server to run.
Only the hub endpoint, an API token and a fast scan profile are set. Static-only scans keep this quick.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.service.conftest import REPO, WorkerProcess, add_model_repo, wait_for

pytestmark = pytest.mark.service


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def embedded_env(tmp_path, hub):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PATRONUS_", "HF_"))}
    env.update(
        {
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "HF_ENDPOINT": hub.url,
            "PATRONUS_API_TOKENS": "local-token",
            "PATRONUS_SCAN_BEHAVIOURAL": "0",
            "PATRONUS_SCAN_LEASE_S": "2",
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(REPO),
        }
    )
    return env


@pytest.fixture
def serve(embedded_env, tmp_path):
    port = free_port()
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from scanner.cli import run; run()", "serve", "--port", str(port)],
            cwd=REPO,
            env=embedded_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"

        def healthy():
            try:
                return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                return False

        wait_for(healthy, 60, what="patronus serve")
        yield base
        proc.terminate()
        proc.wait(timeout=15)


def test_serve_and_worker_need_no_database_or_broker(embedded_env, serve, tmp_path, hub, tiny_model):
    add_model_repo(hub, "org/embedded", tiny_model)
    worker = WorkerProcess(embedded_env, tmp_path / "worker.log", "embedded")
    try:
        worker.wait_ready()
        headers = {"Authorization": "Bearer local-token"}
        scan_id = httpx.post(f"{serve}/api/scans", json={"target": "org/embedded"}, headers=headers).json()["id"]
        done = wait_for(
            lambda: (d := httpx.get(f"{serve}/api/scans/{scan_id}").json())["status"] in ("succeeded", "failed") and d,
            120,
            what="the embedded scan",
        )
        assert done["status"] == "succeeded", worker.log()[-3000:]
        assert done["report"]["model"]["id"] == "org/embedded"
        data = tmp_path / "data" / "patronus"
        assert (data / "patronus.db").is_file() and (data / "broker.db").is_file()
        assert "sqla+sqlite" in worker.log()

        # a worker killed mid-scan: the SQL transport cannot redeliver, the worker's sweep re-sends it
        slow = {**embedded_env, "PATRONUS_SCAN_PROGRESS_DELAY_S": "0.6"}
        add_model_repo(hub, "org/embedded-kill", tiny_model)
        worker.stop()
        worker = WorkerProcess(slow, tmp_path / "worker2.log", "embedded2")
        worker.wait_ready()
        scan_id = httpx.post(f"{serve}/api/scans", json={"target": "org/embedded-kill"}, headers=headers).json()["id"]
        wait_for(
            lambda: httpx.get(f"{serve}/api/scans/{scan_id}").json()["status"] == "running",
            60,
            interval=0.1,
            what="the scan to start",
        )
        worker.kill()
        time.sleep(0.5)
        worker = WorkerProcess(embedded_env, tmp_path / "worker3.log", "embedded3")
        worker.wait_ready()
        done = wait_for(
            lambda: (d := httpx.get(f"{serve}/api/scans/{scan_id}").json())["status"] in ("succeeded", "failed") and d,
            120,
            what="the recovered scan",
        )
        assert done["status"] == "succeeded" and done["attempts"] == 2, worker.log()[-3000:]
        assert "re-sent 1 scans" in worker.log()
    finally:
        worker.stop()
