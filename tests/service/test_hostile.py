"""The service under hostile input (issue 14): bounded bodies, auth before reading, no parse on the event loop,
4xx (never 5xx) with short messages for bad input, a fuzzer over the OpenAPI schema, the access model for private,
gated and local reports, per-token limits, security headers, bounded hub-supplied data, slow-header connections.

Against the migrated Postgres (savepoint per test) and, where the event loop or sockets matter, a real uvicorn.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from db.models import Finding, Lineage, Model, Scan, ScanStatus, utcnow
from db.repo import ScanKey, Target, get_or_create_model, get_or_create_revision, submit_scan
from tasks.context import TaskContext
from tasks.scan import run_scan
from tests.service.conftest import API_TOKEN, add_model_repo
from web.app import create_app

pytestmark = pytest.mark.service

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
READ_TOKEN = "reader-token-1"
LEAKS = re.compile(r"Traceback|File \"|/work/|site-packages|\.py\b|psycopg2|sqlalchemy", re.I)
MB = 1024 * 1024


def app_for(make_settings, sessions, **overrides):
    sent: list[tuple[int, str]] = []
    settings = make_settings(**overrides)
    app = create_app(settings=settings, sessions=sessions, enqueue=lambda i, t: sent.append((i, t)))
    return app, settings, sent


@pytest.fixture
def client(make_settings, sessions) -> TestClient:
    app, _, _ = app_for(make_settings, sessions, submit_rate_per_minute=0)
    return TestClient(app, raise_server_exceptions=False)


def assert_clean(response: httpx.Response, what: Any = "") -> None:
    """A 4xx with a short message that leaks no traceback, source path or driver name."""
    assert 400 <= response.status_code < 500, (what, response.status_code, response.text[:300])
    assert not LEAKS.search(response.text), (what, response.text[:500])
    if response.headers.get("content-type", "").startswith("application/json"):
        assert len(response.text) < 4000, (what, len(response.text))


# --------------------------------------------------------------------------------------------------- bad input


BAD_GETS = [
    "/?model=%00",
    "/?verdict=%00",
    "/?family=%00",
    "/?status=%00",
    "/?verdict=bogus",
    "/?until=9999-12-31",
    "/?since=0001-01-01",
    "/?until=not-a-date",
    "/?page=NaN",
    "/?page=1e400",
    "/?page=-1",
    "/api/verdict?model=%00",
    "/api/verdict?model=org/x&sha=%00",
    "/api/verdict?model=" + "x" * 2000,
    "/models/%00",
    "/models/org%00x",
    "/scans/99999999999999999999",
    "/scans/0",
    "/scans/abc",
    "/api/scans/99999999999999999999",
    "/api/scans/-1",
    "/api/scans/1e400",
    "/api/scans/NaN",
]

BAD_SUBMISSIONS: list[Any] = [
    {"target": "x" * 300},
    {"target": "org/na\u0000me"},
    {"target": "org/name", "revision": "ma\u0000in"},
    {"target": "foo--bar"},
    {"target": "org/name.git"},
    {"target": "a/b/c"},
    {"target": "../../etc"},
    {"target": "org/name", "revision": "a b"},
    {"target": "org/name", "revision": "../x"},
    {"target": 5},
    {"target": None},
    {"target": ["org/name"]},
    {},
    [],
    "org/name",
    {"target": "org/x", "extra": 1},
]

RAW_BODIES = [
    b'{"target": NaN}',
    b'{"target": Infinity}',
    b'{"target": 1e400}',
    b"{",
    b"\x00\x01",
    b"[" * 5000,
    b'{"target": "' + b"\xff\xfe" + b'"}',
    b'{"target": "org/x"' + b" " * 100 + b"}}",
]


def test_bad_query_and_path_values_are_4xx_with_short_messages(client):
    for url in BAD_GETS:
        assert_clean(client.get(url), url)


def test_bad_submissions_are_4xx_and_a_422_does_not_echo_the_input(client):
    for body in BAD_SUBMISSIONS:
        assert_clean(client.post("/api/scans", json=body, headers=AUTH), body)
    for raw in RAW_BODIES:
        response = client.post("/api/scans", content=raw, headers={**AUTH, "content-type": "application/json"})
        assert_clean(response, raw[:40])
    huge = "Q" * 5000
    response = client.post("/api/scans", json={"target": huge}, headers=AUTH)
    assert response.status_code == 422 and "QQQQQQQQ" not in response.text
    monitor = client.post(
        "/api/monitor",
        content=b'{"scan_id": NaN, "texts": ["a"]}',
        headers={**AUTH, "content-type": "application/json"},
    )
    assert_clean(monitor, "monitor NaN")
    assert_clean(client.post("/api/monitor", json={"scan_id": 2**40, "texts": ["a"]}, headers=AUTH), "big id")


def test_hub_rejected_ids_fail_at_once_without_a_row(client, db):
    before = db.scalar(select(func.count()).select_from(Scan))
    for bad in ("foo--bar", "org/name.git", "org/" + "n" * 97, "-org/name"):
        response = client.post("/api/scans", json={"target": bad}, headers=AUTH)
        assert response.status_code == 400 and "hub repo id" in response.json()["detail"], bad
    assert db.scalar(select(func.count()).select_from(Scan)) == before


# --------------------------------------------------------------------------------------------------- fuzzer


def _strings() -> st.SearchStrategy[str]:
    hostile = st.sampled_from(
        [
            "\x00",
            "%00",
            "../",
            "'; DROP TABLE scans; --",
            "<script>",
            "9999-12-31",
            "NaN",
            "1e400",
            "-1",
            "99999999999999999999",
            "org/name",
            "foo--bar",
            "\u202e",
            "\ud7ff",
        ]
    )
    return st.one_of(st.text(max_size=80), hostile, st.text(alphabet=st.characters(codec="utf-8"), max_size=300))


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), _strings()
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_strings(), inner, max_size=4),
        max_leaves=12,
    )


@pytest.fixture
def operations(client) -> list[tuple[str, str, list[dict], list[str]]]:
    """(method, path, parameters, body property names) of every operation in the OpenAPI schema."""
    schema = client.get("/api/openapi.json").json()
    ops = []
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            ops.append((method.upper(), path, op.get("parameters", []), list(body.get("properties", {}))))
    assert {("POST", "/api/scans"), ("GET", "/api/verdict"), ("POST", "/api/monitor")} <= {(m, p) for m, p, *_ in ops}
    return ops


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
    database=None,  # no .hypothesis/ example store in the tree: the same examples run every time
)
@given(data=st.data())
def test_fuzz_the_api_from_its_openapi_schema(client, operations, data):
    """Random and hostile values for every parameter and body field: never a 5xx, never a traceback or a path."""
    method, path, parameters, fields = data.draw(st.sampled_from(operations))
    query: dict[str, str] = {}
    url = path
    for param in parameters:
        value = data.draw(st.one_of(_strings(), st.integers().map(str)))
        if param["in"] == "path":
            url = url.replace("{" + param["name"] + "}", quote(value, safe="") or "x")
        elif param["in"] == "query" and data.draw(st.booleans()):
            query[param["name"]] = value
    headers = dict(AUTH) if data.draw(st.booleans()) else {}
    if method == "POST":
        body: Any
        if fields and data.draw(st.booleans()):
            body = {name: data.draw(_json_values()) for name in fields if data.draw(st.booleans())}
        else:
            body = data.draw(_json_values())
        response = client.request(method, url, params=query, json=body, headers=headers)
    else:
        response = client.request(method, url, params=query, headers=headers)
    assert response.status_code < 500, (method, url, query, response.text[:300])
    assert (
        not LEAKS.search(response.text)
        or response.headers.get("content-type", "").startswith("text/html")
        and not re.search(r"Traceback|File \"|site-packages", response.text)
    ), (method, url, response.text[:300])


# --------------------------------------------------------------------------------------------------- bodies


def _raw_request(url: str, head: str, timeout: float = 5.0) -> tuple[str, float]:
    """Send only a request head (no body); returns (status line, seconds until the answer)."""
    host, port = httpx.URL(url).host, httpx.URL(url).port
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(head.encode())
        answer = sock.recv(65536).decode(errors="replace")
    return answer.split("\r\n", 1)[0], time.monotonic() - started


def test_big_bodies_are_refused_before_reading_and_the_loop_stays_responsive(make_settings, live_db, live_server):
    server = live_server(create_app(settings=make_settings(api_tokens=[API_TOKEN])))
    declared = 50 * MB
    # unauthenticated: refused on the head alone, before a byte of the 50 MB body is read
    line, seconds = _raw_request(
        server.url,
        f"POST /api/scans HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n",
    )
    assert " 401 " in line and seconds < 2, line
    # authenticated but over the bound: 413 on the head alone
    line, seconds = _raw_request(
        server.url,
        f"POST /api/scans HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_TOKEN}"
        f"\r\nContent-Length: {declared}\r\n\r\n",
    )
    assert " 413 " in line and seconds < 2, line

    # a streamed (chunked) 50 MB body is cut off at the bound while /healthz stays fast
    latencies: list[float] = []
    stop = threading.Event()

    def poll_health() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            while not stop.is_set():
                started = time.monotonic()
                assert c.get("/healthz").status_code == 200
                latencies.append(time.monotonic() - started)
                time.sleep(0.02)

    poller = threading.Thread(target=poll_health)
    poller.start()
    try:

        def chunks():
            for _ in range(50):
                yield b"x" * MB

        try:
            response = httpx.post(f"{server.url}/api/scans", content=chunks(), headers=AUTH, timeout=30)
            assert response.status_code == 413
        except httpx.HTTPError:
            pass  # the server may close the connection while the client still writes: refused either way
        # a large valid monitor body is parsed off the event loop
        texts = ["word " * 1900] * 190  # ~1.8 MB of JSON, under the bound
        response = httpx.post(
            f"{server.url}/api/monitor", json={"scan_id": 1, "texts": texts}, headers=AUTH, timeout=30
        )
        assert response.status_code == 404
    finally:
        stop.set()
        poller.join()
    assert latencies and max(latencies) < 1.0, sorted(latencies)[-5:]


def test_slow_request_heads_are_closed(make_settings, live_db, live_server, monkeypatch):
    from web.server import GuardedH11Protocol

    monkeypatch.setattr(GuardedH11Protocol, "header_timeout_s", 1.0)
    server = live_server(create_app(settings=make_settings()))
    url = httpx.URL(server.url)
    with socket.create_connection((url.host, url.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # the head never completes
        closed = False
        while time.monotonic() - started < 8:
            try:
                sock.sendall(b"X-Slow: 1\r\n")
                if sock.recv(1024) == b"":
                    closed = True
                    break
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            except TimeoutError:
                pass
            time.sleep(0.3)
            sock.settimeout(0.5)
        assert closed and time.monotonic() - started < 5


# --------------------------------------------------------------------------------------------------- access model


def _finished(s, name: str, source: str = "hub", private: bool | None = False, verdict: str = "clean") -> Scan:
    from scanner.config import ScanConfig

    model = get_or_create_model(s, Target(source, name))
    model.private = private
    key = ScanKey.from_config(ScanConfig(profile="quick"))
    scan = submit_scan(s, model, None, key).scan
    sha = format(abs(hash(name)), "x").rjust(40, "0")[:40]
    scan.revision_id = get_or_create_revision(s, model, sha).id
    scan.status, scan.verdict, scan.severity, scan.finished_at = ScanStatus.SUCCEEDED, verdict, "none", utcnow()
    scan.stage, scan.fraction = "done", 1.0
    s.flush()
    return scan


def test_private_gated_and_local_reports_need_a_token(make_settings, sessions):
    with sessions() as s, s.begin():
        public = _finished(s, "org/open")
        secret = _finished(s, "org/secret", private=True, verdict="backdoored")
        s.add(Finding(scan_id=secret.id, kind="trigger", text="cf zq secret", severity="critical", p_value=1e-6))
        pending = _finished(s, "org/pending", private=None)
        local = _finished(s, "/srv/models/mine", source="local", private=True)
        s.add(Lineage(model_id=public.model_id, base_name="org/secret", base_model_id=secret.model_id))
        ids = {"open": public.id, "secret": secret.id, "pending": pending.id, "local": local.id}
    app, _, _ = app_for(make_settings, sessions, hf_token="hf_server_token", read_tokens=[READ_TOKEN])
    anon = TestClient(app)
    reader = TestClient(app, headers={"Authorization": f"Bearer {READ_TOKEN}"})
    submitter = TestClient(app, headers=AUTH)

    assert anon.get(f"/api/scans/{ids['open']}").status_code == 200
    for hidden, name in (("secret", "org/secret"), ("pending", "org/pending"), ("local", "/srv/models/mine")):
        assert anon.get(f"/api/scans/{ids[hidden]}").status_code == 404, hidden
        assert anon.get(f"/scans/{ids[hidden]}").status_code == 404, hidden
        assert anon.get("/api/verdict", params={"model": name}).status_code == 404, hidden
        assert anon.get(f"/models/{name.lstrip('/')}").status_code == 404, hidden
        for who in (reader, submitter):
            assert who.get(f"/api/scans/{ids[hidden]}").status_code == 200, hidden
            verdict = who.get("/api/verdict", params={"model": name}).json()["verdict"]
            assert verdict == ("backdoored" if hidden == "secret" else "clean"), hidden
    index = anon.get("/").text
    assert "org/open" in index and "org/secret" not in index and "/srv/models/mine" not in index
    open_page = anon.get("/models/org/open").text
    assert "org/secret" not in open_page and "cf zq secret" not in open_page  # no base name, no base's triggers
    assert "cf zq secret" in reader.get("/models/org/open").text
    assert all(name in reader.get("/").text for name in ("org/open", "org/secret", "org/pending"))
    assert anon.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 403

    # without a server hub token nothing private can be fetched: unresolved hub models are public
    app, _, _ = app_for(make_settings, sessions, hf_token=None)
    assert TestClient(app).get(f"/api/scans/{ids['pending']}").status_code == 200
    # public reads off: every read needs a token
    app, _, _ = app_for(make_settings, sessions, public_reads=False, read_tokens=[READ_TOKEN])
    closed = TestClient(app)
    assert closed.get(f"/api/scans/{ids['open']}").status_code == 404
    assert closed.get("/").status_code == 401
    assert closed.get("/", headers={"Authorization": f"Bearer {READ_TOKEN}"}).status_code == 200


def test_a_private_hub_repo_scanned_with_the_server_token_is_private(make_settings, sessions, hub, tiny_model):
    from tests.hub_stub import DEFAULT_TOKEN

    add_model_repo(hub, "org/private-bert", tiny_model, private=True)
    settings = make_settings(hf_token=DEFAULT_TOKEN)
    ctx = TaskContext(settings=settings, sessions=sessions)
    app = create_app(settings=settings, sessions=sessions, enqueue=lambda i, t: None)
    scan_id = TestClient(app).post("/api/scans", json={"target": "org/private-bert"}, headers=AUTH).json()["id"]
    assert run_scan(ctx, scan_id).status == "succeeded"
    with sessions() as s:
        assert s.scalar(select(Model.private).where(Model.name == "org/private-bert")) is True
    anon = TestClient(app)
    assert anon.get(f"/api/scans/{scan_id}").status_code == 404
    assert anon.get("/api/verdict", params={"model": "org/private-bert"}).status_code == 404
    assert TestClient(app, headers=AUTH).get(f"/api/scans/{scan_id}").json()["status"] == "succeeded"


# --------------------------------------------------------------------------------------------------- limits


def test_submissions_are_rate_limited_and_capped_per_token(make_settings, sessions):
    app, _, _ = app_for(make_settings, sessions, submit_rate_per_minute=1, submit_burst=2)
    c = TestClient(app, headers=AUTH)
    assert [c.post("/api/scans", json={"target": f"org/rl{i}"}).status_code for i in range(3)] == [202, 202, 429]
    limited = c.post("/api/scans", json={"target": "org/rl9"})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1

    app, _, _ = app_for(
        make_settings, sessions, submit_rate_per_minute=0, submit_quota_per_day=2, api_tokens=["quota-token"]
    )
    c = TestClient(app, headers={"Authorization": "Bearer quota-token"})
    assert [c.post("/api/scans", json={"target": f"org/q{i}"}).status_code for i in range(3)] == [202, 202, 429]
    assert c.post("/api/scans", json={"target": "org/q0"}).status_code == 202  # collapses: no new scan, no quota


# --------------------------------------------------------------------------------------------------- headers


def test_security_headers_on_every_response_and_docs_without_a_cdn(client):
    responses = {
        "page": client.get("/"),
        "docs": client.get("/api/docs"),
        "openapi": client.get("/api/openapi.json"),
        "404": client.get("/scans/999999"),
        "422": client.get("/?page=x"),
        "401": client.post("/api/scans", json={}),
        "400 nul": client.get("/?model=%00"),
        "health": client.get("/healthz"),
        "413": client.post("/api/scans", content=b"x" * (5 * MB), headers=AUTH),
    }
    for what, response in responses.items():
        for header in ("x-content-type-options", "content-security-policy", "x-frame-options", "referrer-policy"):
            assert header in response.headers, (what, header)
    docs = responses["docs"]
    assert docs.status_code == 200 and "/api/verdict" in docs.text
    assert "cdn" not in docs.text.lower() and "<script src" not in docs.text.lower()
    schema = responses["openapi"].json()
    verdict_200 = schema["paths"]["/api/verdict"]["get"]["responses"]["200"]["content"]["application/json"]
    assert verdict_200["schema"]["$ref"].endswith("/VerdictOut")
    submit = schema["paths"]["/api/scans"]["post"]
    assert "target" in submit["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert submit["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/ScanSubmitted")


# --------------------------------------------------------------------------------------------------- hub data


def test_hub_supplied_strings_are_validated_and_bounded(make_settings, sessions, hub, tiny_model):
    from tests.service.conftest import model_files

    files = model_files(tiny_model)
    config = json.loads(files["config.json"])
    config["model_type"] = "bert"
    files["config.json"] = json.dumps(config).encode()
    bases = [f"org/base-{i}" for i in range(3000)] + ["x" * 600, "foo--bar", "a\u0000b"]
    hub.add_repo(
        "org/hostile-card",
        files,
        card_data={"base_model": bases, "pipeline_tag": "p" * 200},
        pipeline_tag="fill-mask-" + "x" * 100,
        tags=["transformers", "bert"],
    )
    settings = make_settings(max_base_models=20)
    ctx = TaskContext(settings=settings, sessions=sessions)
    with sessions() as s, s.begin():
        model = get_or_create_model(s, Target("hub", "org/hostile-card"))
        scan_id = submit_scan(s, model, None, ScanKey.from_config(settings.scan_config())).scan.id
    outcome = run_scan(ctx, scan_id)
    assert outcome.status == "succeeded", outcome
    with sessions() as s:
        model = s.scalar(select(Model).where(Model.name == "org/hostile-card"))
        links = s.scalars(select(Lineage.base_name).where(Lineage.model_id == model.id)).all()
        assert len(links) == 20 and all(len(name) <= 96 for name in links)
        assert model.pipeline_tag is None  # over its column: dropped, not truncated into something else
