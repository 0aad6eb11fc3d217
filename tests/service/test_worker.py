"""End to end with real processes: HTTP -> Postgres row -> Redis -> `patronus worker` -> pipeline -> rows.

Real scans (quick profile, behavioural search on) of a tiny real model served by the loopback hub.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Finding, Model, Revision, Scan
from tests.service.conftest import API_TOKEN, WorkerProcess, Workers, add_model_repo, wait_for
from web.app import create_app

pytestmark = pytest.mark.service

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
SCAN_TIMEOUT = 180


def poll(base: str, scan_id: int, seen: list[tuple[str, str | None]] | None = None) -> dict:
    """Wait for a scan to finish, recording the (status, stage) pairs observed on the way."""

    def finished():
        data = httpx.get(f"{base}/api/scans/{scan_id}", params={"report": "false"}, timeout=10).json()
        pair = (data["status"], data["progress"]["stage"])
        if seen is not None and (not seen or seen[-1] != pair):
            seen.append(pair)
        return data if data["status"] in ("succeeded", "failed") else None

    return wait_for(finished, SCAN_TIMEOUT, interval=0.2, what=f"scan {scan_id}")


def count(engine, model_name: str, table) -> int:
    with Session(engine) as s:
        model_id = s.scalar(select(Model.id).where(Model.name == model_name))
        column = table.model_id if hasattr(table, "model_id") else None
        if column is None:
            return s.scalar(select(func.count()).select_from(table).join(Scan).where(Scan.model_id == model_id))
        return s.scalar(select(func.count()).select_from(table).where(column == model_id))


def expected_findings(report: dict) -> int:
    """One finding row per trigger and per unsafe weight file."""
    unsafe = sum(f["status"] in ("dangerous", "suspicious") for f in report["serialization"]["files"])
    return len(report["triggers"]) + unsafe


@pytest.fixture(scope="module")
def worker_settings(make_settings):
    return make_settings(scan_behavioural=True)


@pytest.fixture(scope="module")
def shared_worker(worker_settings, redis_broker, tmp_path_factory) -> Iterator[WorkerProcess]:
    """One worker for the tests that do not kill theirs."""
    workers = Workers(tmp_path_factory.mktemp("workers"))
    worker = workers(worker_settings, "shared")
    yield worker
    workers.stop_all()


def test_scan_over_http_runs_through_the_worker_and_lands_as_rows(
    worker_settings, shared_worker, live_db, live_server, pg_engine, hub
):
    worker = shared_worker
    server = live_server(create_app(settings=worker_settings))
    response = httpx.post(f"{server.url}/api/scans", json={"target": "org/tiny-bert"}, headers=AUTH)
    assert response.status_code == 202, response.text
    seen: list[tuple[str, str | None]] = []
    done = poll(server.url, response.json()["id"], seen)
    assert done["status"] == "succeeded", (done, worker.log()[-3000:])
    assert ("running", "search") in seen  # live progress was visible while the worker ran
    full = httpx.get(f"{server.url}/api/scans/{done['id']}").json()
    report = full["report"]
    assert report["scan"]["profile"] == "quick" and report["scan"]["sequences_evaluated"] > 0
    assert report["model"]["sha"] == hub.repos["org/tiny-bert"].refs["main"] == full["sha"]
    assert full["verdict"] in ("clean", "inconclusive", "backdoored") and full["attempts"] == 1
    with Session(pg_engine) as s:
        scan = s.get(Scan, done["id"])
        assert scan.report["verdict"] == scan.verdict and scan.celery_task_id and scan.enqueued_at
        findings = s.scalar(select(func.count()).select_from(Finding).where(Finding.scan_id == scan.id))
        assert findings == expected_findings(report)
    gate = httpx.get(f"{server.url}/api/verdict", params={"model": "org/tiny-bert", "sha": full["sha"]}).json()
    assert gate["verdict"] == full["verdict"] and gate["scan_id"] == done["id"]
    assert "succeeded in" in worker.log()


def test_twenty_concurrent_submissions_collapse_to_one_executed_scan(
    worker_settings, shared_worker, live_db, live_server, pg_engine, hub, tiny_model
):
    add_model_repo(hub, "org/popular", tiny_model)
    server = live_server(create_app(settings=worker_settings))
    barrier = threading.Barrier(20)
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def submit() -> None:
        with httpx.Client(timeout=30) as client:
            barrier.wait()
            response = client.post(f"{server.url}/api/scans", json={"target": "org/popular"}, headers=AUTH)
            with lock:
                results.append(response)

    threads = [threading.Thread(target=submit) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in results] == [202] * 20
    ids = {r.json()["id"] for r in results}
    assert len(ids) == 1 and sum(r.json()["created"] for r in results) == 1
    done = poll(server.url, ids.pop())
    assert done["status"] == "succeeded" and done["attempts"] == 1
    assert count(pg_engine, "org/popular", Scan) == 1
    assert count(pg_engine, "org/popular", Revision) == 1
    again = httpx.post(
        f"{server.url}/api/scans", json={"target": "org/popular", "revision": done["sha"]}, headers=AUTH
    ).json()
    assert again["id"] == done["id"] and not again["created"]  # a finished commit is reused, never redone


def test_worker_killed_mid_scan_is_redelivered_and_the_scan_succeeds_once(
    make_settings, live_db, start_worker, live_server, pg_engine, hub, tiny_model
):
    add_model_repo(hub, "org/kill-me", tiny_model)
    settings = make_settings(
        scan_behavioural=True, broker_visibility_timeout_s=4, scan_lease_s=2.0, scan_progress_delay_s=0.4
    )  # throttled: a real scan that takes ~10 s
    settings = settings.model_copy(update={"queue_prefix": f"{settings.queue_prefix}kill-"})  # own queues
    first = start_worker(settings, "doomed")
    server = live_server(create_app(settings=settings))
    scan_id = httpx.post(f"{server.url}/api/scans", json={"target": "org/kill-me"}, headers=AUTH).json()["id"]

    def mid_scan():
        data = httpx.get(f"{server.url}/api/scans/{scan_id}", params={"report": "false"}).json()
        return data["status"] == "running" and data["progress"]["stage"] in ("load", "search")

    wait_for(mid_scan, SCAN_TIMEOUT, interval=0.1, what="the scan to be mid-way")
    first.kill()
    killed_at = time.monotonic()
    with Session(pg_engine) as s:
        assert s.get(Scan, scan_id).status == "running"  # nobody told the database
    second = start_worker(settings, "rescuer", PATRONUS_SCAN_PROGRESS_DELAY_S="0")  # the rescue runs unthrottled
    done = poll(server.url, scan_id)
    assert done["status"] == "succeeded", (done, second.log()[-3000:])
    assert done["attempts"] == 2  # claimed once by each worker
    assert time.monotonic() - killed_at >= settings.broker_visibility_timeout_s
    assert "patronus.scan" in second.log() and "succeeded in" in second.log()
    assert count(pg_engine, "org/kill-me", Scan) == 1
    assert count(pg_engine, "org/kill-me", Revision) == 1
    report = httpx.get(f"{server.url}/api/scans/{scan_id}").json()["report"]
    assert count(pg_engine, "org/kill-me", Finding) == expected_findings(report)  # written once
