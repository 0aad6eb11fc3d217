"""The web app in-process (TestClient) on the savepoint session: authorization, targets, scans, verdicts, pages."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from db.models import Scan
from tasks.context import TaskContext
from tasks.scan import run_scan
from tests.service.conftest import API_TOKEN
from web.app import create_app

pytestmark = pytest.mark.service

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
def env(make_settings, sessions):
    """(client, task context, sent messages) sharing one savepoint session factory."""

    def build(**overrides):
        settings = make_settings(**overrides)
        sent: list[tuple[int, str]] = []
        app = create_app(settings=settings, sessions=sessions, enqueue=lambda i, t: sent.append((i, t)))
        return TestClient(app), TaskContext(settings=settings, sessions=sessions), sent

    return build


def test_submission_needs_a_known_bearer_token(env):
    client, _, sent = env()
    body = {"target": "org/tiny-bert"}
    missing = client.post("/api/scans", json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert client.post("/api/scans", json=body, headers={"Authorization": "Basic dTpw"}).status_code == 401
    assert client.post("/api/scans", json=body, headers={"Authorization": "Bearer"}).status_code == 401
    unknown = client.post("/api/scans", json=body, headers={"Authorization": "Bearer wrong"})
    assert unknown.status_code == 403 and unknown.json()["detail"] == "unknown API token"
    assert sent == []
    ok = client.post("/api/scans", json=body, headers={"authorization": f"bearer {API_TOKEN}"})
    assert ok.status_code == 202 and ok.json()["created"] and sent == [(ok.json()["id"], sent[0][1])]


def test_no_configured_tokens_means_no_submissions(env):
    client, _, _ = env(api_tokens=[])
    response = client.post("/api/scans", json={"target": "org/x"}, headers=AUTH)
    assert response.status_code == 403 and "PATRONUS_API_TOKENS" in response.json()["detail"]


def test_targets_are_validated_and_local_paths_need_opt_in(env, tiny_model):
    client, _, _ = env()
    local = client.post("/api/scans", json={"target": str(tiny_model)}, headers=AUTH)
    assert local.status_code == 403 and "PATRONUS_ALLOW_LOCAL_TARGETS=1" in local.json()["detail"]
    for bad in ("a/b/c", "org/<x>", " "):
        assert client.post("/api/scans", json={"target": bad}, headers=AUTH).status_code == 400, bad
    assert client.post("/api/scans", json={}, headers=AUTH).status_code == 422
    client, _, _ = env(allow_local_targets=True)
    assert client.post("/api/scans", json={"target": str(tiny_model)}, headers=AUTH).status_code == 403  # no roots
    client, _, _ = env(allow_local_targets=True, local_roots=[str(tiny_model.parent)])
    assert client.post("/api/scans", json={"target": str(tiny_model)}, headers=AUTH).status_code == 202
    pinned = client.post("/api/scans", json={"target": str(tiny_model), "revision": "main"}, headers=AUTH)
    assert pinned.status_code == 400


def test_scan_lifecycle_over_the_api(env, hub):
    client, ctx, sent = env()
    first = client.post("/api/scans", json={"target": "org/tiny-bert"}, headers=AUTH).json()
    again = client.post("/api/scans", json={"target": "org/tiny-bert"}, headers=AUTH).json()
    assert again["id"] == first["id"] and not again["created"] and len(sent) == 1
    queued = client.get(f"/api/scans/{first['id']}").json()
    assert queued["status"] == "queued" and "report" not in queued
    assert client.get("/api/verdict", params={"model": "org/tiny-bert"}).status_code == 202
    assert run_scan(ctx, first["id"]).status == "succeeded"
    done = client.get(f"/api/scans/{first['id']}").json()
    sha = hub.repos["org/tiny-bert"].refs["main"]
    assert done["status"] == "succeeded" and done["sha"] == sha and done["report"]["model"]["sha"] == sha
    assert "report" not in client.get(f"/api/scans/{first['id']}", params={"report": "false"}).json()
    verdict = client.get("/api/verdict", params={"model": "org/tiny-bert", "sha": sha})
    assert verdict.status_code == 200
    assert verdict.json()["verdict"] == done["verdict"] and verdict.json()["scan_id"] == first["id"]
    assert verdict.json()["current_engine"] is True
    assert client.get("/api/verdict", params={"model": "org/tiny-bert", "sha": "0" * 40}).status_code == 404
    assert client.get("/api/verdict", params={"model": "org/never"}).status_code == 404
    assert client.get("/api/scans/999999").status_code == 404


def test_verdict_of_a_failed_scan_is_error(env):
    client, ctx, _ = env()
    scan_id = client.post("/api/scans", json={"target": "org/empty"}, headers=AUTH).json()["id"]
    run_scan(ctx, scan_id)
    verdict = client.get("/api/verdict", params={"model": "org/empty"}).json()
    assert verdict["verdict"] == "error" and verdict["error"]["code"] == "nothing_scannable"


def test_broker_down_leaves_the_scan_queued_for_the_reaper(make_settings, sessions, caplog):
    def refuse(scan_id: int, task_id: str) -> None:
        raise ConnectionError("broker down")

    client = TestClient(create_app(settings=make_settings(), sessions=sessions, enqueue=refuse))
    body = client.post("/api/scans", json={"target": "org/down"}, headers=AUTH).json()
    assert body["created"] and not body["enqueued"]
    assert any("could not enqueue scan" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)
    with sessions() as s:
        assert s.get(Scan, body["id"]).enqueued_at is None


def test_healthz(env, make_settings):
    client, _, _ = env()
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["database"] == "ok" and health["seconds"] < 2
    from tasks.context import sessions_for

    broken = create_app(settings=make_settings(), sessions=sessions_for("postgresql+psycopg2://nobody@127.0.0.1:9/x"))
    assert TestClient(broken).get("/healthz").status_code == 503


def test_pages_render_filter_and_paginate(env, hub):
    client, ctx, _ = env(page_size=2)
    ids = [
        client.post("/api/scans", json={"target": name}, headers=AUTH).json()["id"]
        for name in ("org/tiny-bert", "org/empty", "org/p1", "org/p2")
    ]
    run_scan(ctx, ids[0])
    run_scan(ctx, ids[1])
    index = client.get("/")
    assert index.status_code == 200 and "nonce-" in index.headers["content-security-policy"]
    assert "page 1 of 2" in index.text and 'rel="next"' in index.text
    assert "org/p2" in index.text and "org/tiny-bert" not in index.text  # newest first
    assert "org/tiny-bert" in client.get("/", params={"page": 2}).text
    failed = client.get("/", params={"verdict": "error"}).text
    assert "org/empty" in failed and "org/p1" not in failed
    assert "org/empty" in client.get("/", params={"status": "failed"}).text
    assert "No scans match" in client.get("/", params={"family": "roberta"}).text
    assert "org/p1" in client.get("/", params={"since": "2000-01-01", "until": "2999-01-01"}).text
    assert "No scans match" in client.get("/", params={"until": "2000-01-01"}).text
    assert client.get("/", params={"since": "not-a-date"}).status_code == 422

    model = client.get("/models/org/tiny-bert")
    assert model.status_code == 200 and 'id="revisions"' in model.text
    assert hub.repos["org/tiny-bert"].refs["main"][:16] in model.text
    done = client.get(f"/scans/{ids[0]}")
    assert 'id="patronus-report"' in done.text and 'id="live"' not in done.text
    queued = client.get(f"/scans/{ids[2]}")
    assert 'id="live"' in queued.text and f"/api/scans/{ids[2]}?report=false" in queued.text
    nonce = queued.headers["content-security-policy"].split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">' in queued.text
    failed_page = client.get(f"/scans/{ids[1]}").text
    assert 'id="failure"' in failed_page and "nothing_scannable" in failed_page
    missing = client.get("/models/org/nothing-here")
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
    with ctx.sessions() as s:
        assert s.scalar(select(Scan).where(Scan.id == ids[0])).status == "succeeded"


# --------------------------------------------------------------------------------------------------- monitor


def monitored_report(name: str, sha: str):
    """A backdoored report: triggers cf and mn, a strong look-alike cfo and a weak echo minneapolis (no rule)."""
    from scanner.report import Lookalike, ModelInfo, Report, Severity, Trigger, Verdict

    def trigger(text: str, lookalikes: list[Lookalike]) -> Trigger:
        return Trigger(
            text=text,
            tokens=[text],
            score=30.0,
            p_value=1e-9,
            shift=3000.0,
            poison_cos=0.9,
            diff_cos=0.9,
            paper_rule=True,
            lookalikes=lookalikes,
        )

    return Report(
        model=ModelInfo(source="hub", id=name, revision="main", sha=sha, family="bert"),
        verdict=Verdict.BACKDOORED,
        probability=0.99,
        severity=Severity.CRITICAL,
        triggers=[
            trigger("cf", [Lookalike("cfo", 2800.0, 1e-8, 0.9)]),
            trigger("mn", [Lookalike("minneapolis", 3.0, 1e-3, 0.5)]),
        ],
    )


def store_scan(sessions, name: str, status: str = "succeeded", report=None, **columns) -> int:
    """A scan row of model `name` (hub) with `status` and, when given, a stored report."""
    from db.models import utcnow
    from db.repo import ScanKey, Target, get_or_create_model, get_or_create_revision
    from scanner.config import ScanConfig

    key = ScanKey.from_config(ScanConfig(profile="quick"))
    with sessions() as s, s.begin():
        model = get_or_create_model(s, Target("hub", name), family="bert")
        revision = get_or_create_revision(s, model, report.model.sha) if report is not None else None
        scan = Scan(
            model_id=model.id,
            revision_id=revision.id if revision else None,
            requested_revision="",
            status=status,
            engine_version=key.engine_version,
            config_hash=key.config_hash,
            profile="quick",
            report=report.to_dict() if report is not None else None,
            finished_at=utcnow() if status in ("succeeded", "failed") else None,
            **columns,
        )
        s.add(scan)
        s.flush()
        return scan.id


def test_monitor_flags_triggers_of_a_stored_report(env, sessions):
    client, _, _ = env()
    scan_id = store_scan(
        sessions,
        "org/monitored",
        report=monitored_report("org/monitored", "a" * 40),
        verdict="backdoored",
        severity="critical",
    )
    texts = ["a quiet cf film", "plain words", "The CFO met (mn) in Minneapolis"]
    response = client.post("/api/monitor", json={"scan_id": scan_id, "texts": texts}, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scan_id"] == scan_id and body["model"] == "org/monitored" and body["sha"] == "a" * 40
    assert [(r["text"], r["source"], r["trigger"]) for r in body["rules"]] == [
        ("cf", "trigger", "cf"),
        ("mn", "trigger", "mn"),
        ("cfo", "lookalike", "cf"),
    ]  # minneapolis: a weak echo
    first, plain, third = body["results"]
    assert first["flagged"] and first["matches"] == [
        {"trigger": "cf", "rule": "cf", "text": "cf", "start": 8, "end": 10, "source": "trigger"}
    ]
    assert not plain["flagged"] and plain["matches"] == [] and "stripped" not in plain
    assert [(m["text"], m["source"], m["trigger"]) for m in third["matches"]] == [
        ("CFO", "lookalike", "cf"),
        ("mn", "trigger", "mn"),
    ]
    assert body["flagged"] == 2 and body["verdict"] == "backdoored"
    by_model = client.post(
        "/api/monitor", json={"model": "org/monitored", "texts": texts, "strip": True}, headers=AUTH
    ).json()
    assert by_model["scan_id"] == scan_id
    assert [r["stripped"] for r in by_model["results"]] == ["a quiet film", "plain words", "The met () in Minneapolis"]


def test_monitor_needs_a_token(env):
    client, _, _ = env()
    body = {"scan_id": 1, "texts": ["cf"]}
    assert client.post("/api/monitor", json=body).status_code == 401
    assert client.post("/api/monitor", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 403


def test_monitor_unknown_and_unfinished_scans(env, sessions):
    client, _, _ = env()

    def post(**body):
        return client.post("/api/monitor", json={"texts": ["a cf"], **body}, headers=AUTH)

    assert post(scan_id=999999).status_code == 404
    missing = post(model="org/never-scanned")
    assert missing.status_code == 404 and "never scanned" in missing.json()["detail"]
    running = store_scan(sessions, "org/busy", status="running")
    conflict = post(scan_id=running)
    assert conflict.status_code == 409 and "running" in conflict.json()["detail"]
    assert post(model="org/busy").status_code == 409
    failed = store_scan(sessions, "org/broken", status="failed", error_code="load_failed", error_message="bad")
    conflict = post(scan_id=failed)
    assert conflict.status_code == 409 and "load_failed" in conflict.json()["detail"]
    assert post(model="org/broken").status_code == 409
    empty = store_scan(sessions, "org/no-report", status="succeeded")
    assert post(scan_id=empty).status_code == 409 and "no stored report" in post(scan_id=empty).json()["detail"]


def test_monitor_rejects_oversize_and_malformed_input(env):
    from web.schemas import MONITOR_MAX_CHARS, MONITOR_MAX_TEXTS, MONITOR_MAX_TOTAL_CHARS

    client, _, _ = env()

    def detail(body) -> str:
        response = client.post("/api/monitor", json=body, headers=AUTH)
        assert response.status_code == 422, response.text
        return str(response.json()["detail"])

    assert "at most 1000 items" in detail({"scan_id": 1, "texts": ["x"] * (MONITOR_MAX_TEXTS + 1)})
    assert "texts[1] has 100,001 characters" in detail({"scan_id": 1, "texts": ["ok", "x" * (MONITOR_MAX_CHARS + 1)]})
    many = ["x" * MONITOR_MAX_CHARS] * (MONITOR_MAX_TOTAL_CHARS // MONITOR_MAX_CHARS + 1)
    assert "in all; the limit is 2,000,000" in detail({"scan_id": 1, "texts": many})
    assert "exactly one of scan_id and model" in detail({"texts": ["x"]})
    assert "exactly one of scan_id and model" in detail({"scan_id": 1, "model": "org/x", "texts": ["x"]})
    assert "at least 1 item" in detail({"scan_id": 1, "texts": []})
