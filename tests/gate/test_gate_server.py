"""`patronus gate --server URL`: verdicts come from a running service (real Postgres, the real API over HTTP via
uvicorn) for shas it has scanned; everything else is scanned locally. The service fixtures are tests/service's."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from tests.gate.gatekit import write_policy
from tests.service import conftest as _service

# the service tests' fixtures (Postgres, the hub with org/tiny-bert, uvicorn), used here by name
add_model_repo = _service.add_model_repo
cache_dir = _service.cache_dir
hub = _service.hub
live_db = _service.live_db
live_server = _service.live_server
make_settings = _service.make_settings
pg_engine = _service.pg_engine
queue_prefix = _service.queue_prefix
tiny_model = _service.tiny_model
API_TOKEN = _service.API_TOKEN

pytestmark = pytest.mark.service


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A database of this module's own (created, migrated, dropped): one session can run these and tests/service
    side by side without both creating and dropping the same database."""
    from db.scratch import scratch_database

    try:
        database = scratch_database(_service.PG_ADMIN_URL, f"patronus_test_gate_{os.getpid()}")
        url = database.__enter__()
    except Exception as exc:
        pytest.fail(f"Postgres is not reachable at {_service.PG_ADMIN_URL} ({type(exc).__name__}: {exc})")
    yield url
    database.__exit__(None, None, None)


@pytest.fixture
def service(make_settings, live_db, pg_engine, live_server, hub, monkeypatch):
    """A uvicorn server on the migrated test database, and a way to finish a scan the way a worker does."""
    from tasks.context import TaskContext
    from tasks.scan import run_scan
    from web.app import create_app

    settings = make_settings()
    sent: list[tuple[int, str]] = []
    server = live_server(create_app(settings=settings, enqueue=lambda i, t: sent.append((i, t))))
    ctx = TaskContext(settings=settings, sessions=sessionmaker(bind=pg_engine, expire_on_commit=False))
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.delenv("HF_TOKEN", raising=False)

    def scan_on_server(model: str) -> int:
        import httpx

        answer = httpx.post(
            f"{server.url}/api/scans", json={"target": model}, headers={"Authorization": f"Bearer {API_TOKEN}"}
        )
        assert answer.status_code == 202, answer.text
        scan_id = answer.json()["id"]
        assert run_scan(ctx, scan_id).status == "succeeded"
        return scan_id

    return server.url, scan_on_server


def test_verdicts_from_the_service_when_it_has_them_local_scan_otherwise(
    service, hub, tiny_model, tmp_path: Path, monkeypatch, cli
) -> None:
    url, scan_on_server = service
    add_model_repo(hub, "org/gate-local", tiny_model)
    repo = tmp_path / "code"
    repo.mkdir()
    (repo / "models.txt").write_text("")
    (repo / "app.py").write_text(
        "from transformers import AutoModel\n\n"
        "known = AutoModel.from_pretrained('org/tiny-bert')\n"
        "unknown = AutoModel.from_pretrained('org/gate-local')\n"
    )
    write_policy(repo)
    monkeypatch.chdir(repo)
    scan_id = scan_on_server("org/tiny-bert")

    result = cli("gate", "--server", url, "--format", "json")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    origin = {m["model"]: (m["origin"], m["origin_detail"]) for m in data["models"]}
    assert origin["org/tiny-bert"] == ("server", f"scan {scan_id} at {url}")
    assert origin["org/gate-local"][0] == "scanned" and "not on record" in origin["org/gate-local"][1]
    assert data["scans_run"] == 1
    tiny = next(m for m in data["models"] if m["model"] == "org/tiny-bert")
    assert tiny["sha"] == hub.repos["org/tiny-bert"].refs["main"] and tiny["verdict"] == "inconclusive"

    # warm: both shas are on record (the service's verdict is cached by sha with the local scan)
    again = json.loads(cli("gate", "--server", url, "--format", "json").stdout)
    assert again["scans_run"] == 0 and {m["origin"] for m in again["models"]} == {"cache"}
