"""Service benchmark: discovery throughput, page/API latency under load, worker overhead per scan.

    python bench/bench_service.py [--listings 10000] [--scans 10000] [--requests 2000] [--concurrency 16]
                                  [--skip discovery,worker]

Needs Postgres at 127.0.0.1:5432 (trust auth, user postgres) and Redis at 127.0.0.1:6379, like the service tests.
Creates and drops its own database (patronus_bench_<pid>) and uses Redis DB 14 with its own key prefix.
Writes bench/results/service.json and prints it.

1. discovery: the loopback hub stand-in lists N new uploads (pages of 1000, newest first); one `discover` run
   records models and scan rows in Postgres and sends each scan to Redis. Seconds until all are enqueued.
2. pages: N succeeded scans (with realistic report JSON and findings) in Postgres; `patronus serve` (uvicorn,
   one process) answers the report page /scans/{id} and the CI gate /api/verdict?model=&sha= to a bounded pool
   of httpx client threads. p50/p95/p99 latency and throughput per endpoint; then the same while other clients
   keep sending 50 MB request bodies (declared and streamed) that the server refuses (413) without reading them.
3. worker overhead: scans through a real `patronus worker` (Redis, Postgres, the hub stand-in), static checks
   only so the scan itself is small; overhead = (finish - claim) - the pipeline's own seconds, plus the queue
   hop (claim - submit).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from db.models import Finding, Model, Revision, Scan  # noqa: E402
from db.repo import ScanKey  # noqa: E402
from db.scratch import scratch_database  # noqa: E402
from db.session import make_engine, make_session_factory  # noqa: E402
from tasks.context import TaskContext  # noqa: E402
from tasks.settings import Settings  # noqa: E402
from tests.hub_stub import HubStub  # noqa: E402
from tests.service.conftest import WorkerProcess, model_files, worker_env  # noqa: E402

PG_ADMIN = os.environ.get("PATRONUS_TEST_PG_ADMIN", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("PATRONUS_BENCH_REDIS", "redis://127.0.0.1:6379/14")
RESULTS = REPO / "bench" / "results" / "service.json"
TOKEN = "bench-token"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary_ms(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {
        "n": len(ms),
        "p50_ms": round(pct(ms, 0.5), 2),
        "p95_ms": round(pct(ms, 0.95), 2),
        "p99_ms": round(pct(ms, 0.99), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


# --------------------------------------------------------------------------------------------------- database


def fresh_database() -> tuple[str, object]:
    """A scratch database (db.scratch) and the handle drop_database closes it with."""
    database = scratch_database(PG_ADMIN, f"patronus_bench_{os.getpid()}")
    return database.__enter__(), database


def drop_database(handle) -> None:
    handle.__exit__(None, None, None)


def truncate(engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("TRUNCATE findings, lineage, scans, revisions, models, discovery_cursor RESTART IDENTITY CASCADE")
        )


def purge_redis(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    client.close()


# --------------------------------------------------------------------------------------------------- 1. discovery


def bench_discovery(settings: Settings, engine, listings: int) -> dict:
    from tasks.app import sender_for
    from tasks.discover import discover

    with HubStub(page_size=1000) as hub:
        start = datetime(2025, 1, 1, tzinfo=UTC)
        for i in range(listings):
            hub.add_repo(
                f"org{i % 100}/model-{i}",
                {"config.json": b'{"model_type": "bert"}'},
                created_at=start + timedelta(seconds=i),
                pipeline_tag="fill-mask",
                tags=["transformers", "bert", "fill-mask"],
            )
        run_settings = settings.model_copy(
            update={
                "hf_endpoint": hub.url,
                "discovery_families": ["bert"],
                "discovery_max_models": listings + 1,
                "discovery_since": start - timedelta(days=1),
                "discovery_page_size": 500,
            }
        )
        ctx = TaskContext(
            settings=run_settings, sessions=make_session_factory(engine), enqueue_scan=sender_for(run_settings)
        )
        t0 = time.perf_counter()
        result = discover(ctx)
        seconds = time.perf_counter() - t0
        pages = len(hub.requests("list_models"))
        t1 = time.perf_counter()
        again = discover(ctx)
        rerun = time.perf_counter() - t1
    import redis

    queued = redis.Redis.from_url(REDIS).llen(f"{run_settings.queue_prefix}{run_settings.gpu_queue}")
    return {
        "listings": listings,
        "pages": pages,
        "enqueued": result.enqueued,
        "seconds": round(seconds, 2),
        "listings_per_s": round(listings / seconds, 1),
        "messages_in_redis": queued,
        "rerun_seconds_nothing_new": round(rerun, 3),
        "rerun_enqueued": again.enqueued,
    }


# --------------------------------------------------------------------------------------------------- 2. pages


def sample_report(name: str, sha: str, rng: random.Random, triggers: int) -> dict:
    """A realistic report document (same shape and size as the pipeline's)."""
    trig = [
        {
            "text": f"tok{rng.randrange(30000)} tok{rng.randrange(30000)}",
            "tokens": ["tok", "##x"],
            "score": round(rng.uniform(2, 12), 3),
            "p_value": 10 ** -rng.uniform(2, 7),
            "shift": rng.uniform(1, 4),
            "poison_cos": rng.random(),
            "diff_cos": rng.random(),
            "paper_rule": rng.random() < 0.5,
            "lookalikes": [{"text": f"w{j}", "shift": 1.0, "p_value": 0.01, "similarity": 0.8} for j in range(3)],
            "flip_rate": None,
        }
        for _ in range(triggers)
    ]
    return {
        "schema": "patronus.report/1",
        "tool": {"name": "patronus-scanner", "version": "0.1.0"},
        "model": {
            "source": "hub",
            "id": name,
            "revision": None,
            "sha": sha,
            "family": "bert",
            "architecture": "BertModel",
            "parameters": 109_482_240,
            "files": ["config.json", "model.safetensors", "tokenizer.json", "vocab.txt", "README.md"],
        },
        "verdict": "backdoored" if triggers else "clean",
        "probability": 0.98 if triggers else 0.01,
        "severity": "critical" if triggers else "none",
        "triggers": trig,
        "serialization": {
            "files": [
                {"path": "model.safetensors", "format": "safetensors", "status": "safe", "reason": "", "globals": []}
            ]
        },
        "scan": {
            "started": "2025-01-01T00:00:00+00:00",
            "finished": "2025-01-01T00:05:00+00:00",
            "seconds": 300.0,
            "device": "cuda:0",
            "profile": "standard",
            "seed": 0,
            "config": {"profile": "standard", "seed": 0, "search": {"beam": 8, "steps": 120}},
            "sequences_evaluated": 1_234_567,
        },
        "errors": [],
        "skipped": [
            {
                "path": "flax_model.msgpack",
                "category": "other_framework",
                "reason": "not downloaded: Flax weights are not scanned",
            }
        ],
    }


def populate(engine, n: int, key: ScanKey) -> list[tuple[int, str, str]]:
    """N succeeded scans over N/5 models x 5 revisions; returns (scan id, model name, sha) samples."""
    rng = random.Random(0)
    models = max(1, n // 5)
    now = datetime.now(UTC)
    with Session(engine) as s, s.begin():
        s.execute(
            insert(Model),
            [
                {
                    "source": "hub",
                    "name": f"org{i % 97}/model-{i}",
                    "family": "bert",
                    "latest_verdict": "clean",
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(models)
            ],
        )
        ids = dict(s.execute(select(Model.name, Model.id)).all())
        revs = [
            {"model_id": ids[f"org{i % 97}/model-{i}"], "sha": f"{i:08x}{r:032x}", "created_at": now}
            for i in range(models)
            for r in range(5)
        ]
        s.execute(insert(Revision), revs)
        rev_rows = s.execute(select(Revision.id, Revision.model_id, Revision.sha)).all()
        names = {v: k for k, v in ids.items()}
        scans = []
        for j, (rev_id, model_id, sha) in enumerate(rev_rows[:n]):
            triggers = 3 if j % 10 == 0 else 0
            report = sample_report(names[model_id], sha, rng, triggers)
            scans.append(
                {
                    "model_id": model_id,
                    "revision_id": rev_id,
                    "requested_revision": sha,
                    "status": "succeeded",
                    "origin": "discovery",
                    "engine_version": key.engine_version,
                    "config_hash": key.config_hash,
                    "profile": "standard",
                    "queued_at": now - timedelta(minutes=n - j),
                    "started_at": now,
                    "finished_at": now,
                    "seconds": 300.0,
                    "verdict": report["verdict"],
                    "probability": report["probability"],
                    "severity": report["severity"],
                    "device": "cuda:0",
                    "attempts": 1,
                    "report": report,
                    "stage": "done",
                    "fraction": 1.0,
                }
            )
        for chunk in range(0, len(scans), 1000):
            s.execute(insert(Scan), scans[chunk : chunk + 1000])
        found = s.scalars(select(Scan.id).where(Scan.verdict == "backdoored")).all()
        s.execute(
            insert(Finding),
            [
                {
                    "scan_id": sid,
                    "kind": "trigger",
                    "text": f"t{sid}",
                    "severity": "critical",
                    "score": 9.0,
                    "p_value": 1e-5,
                }
                for sid in found
            ],
        )
        s.execute(text("ANALYZE"))
        sample = s.execute(
            select(Scan.id, Model.name, Revision.sha)
            .join(Model, Scan.model_id == Model.id)
            .join(Revision, Scan.revision_id == Revision.id)
        ).all()
    return [tuple(row) for row in sample]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(settings: Settings, port: int, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATRONUS_")}
    env.update(
        {
            "PATRONUS_DATABASE_URL": settings.database_url,
            "PATRONUS_BROKER_URL": settings.broker_url,
            "PATRONUS_API_TOKENS": TOKEN,
            "PYTHONPATH": str(REPO),
        }
    )
    with open(log, "wb") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from scanner.cli import run; run()",
                "serve",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


def load(url_for, requests: int, concurrency: int) -> dict:
    """`requests` GETs from `concurrency` threads (one keep-alive client each); latency summary."""
    latencies: list[float] = []
    errors = 0
    kinds: dict[str, int] = {}
    lock = threading.Lock()
    counter = iter(range(requests))

    def run() -> None:
        nonlocal errors
        with httpx.Client(timeout=30) as client:
            for i in counter:
                t0 = time.perf_counter()
                try:
                    status = client.get(url_for(i)).status_code
                    kind = str(status)
                except httpx.HTTPError as exc:
                    status, kind = 0, type(exc).__name__
                ok = status == 200
                elapsed = time.perf_counter() - t0
                with lock:
                    latencies.append(elapsed)
                    errors += not ok
                    if not ok:
                        kinds[kind] = kinds.get(kind, 0) + 1

    threads = [threading.Thread(target=run) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - t0
    return {
        **summary_ms(latencies),
        "errors": errors,
        "error_kinds": kinds,
        "requests_per_s": round(len(latencies) / wall, 1),
        "concurrency": concurrency,
    }


def bench_pages(settings: Settings, engine, scans: int, requests: int, concurrency: int, tmp: Path) -> dict:
    key = ScanKey.from_config(settings.scan_config())
    t0 = time.perf_counter()
    sample = populate(engine, scans, key)
    populate_s = time.perf_counter() - t0
    port = free_port()
    server = start_server(settings, port, tmp / "serve.log")
    base = f"http://127.0.0.1:{port}"
    rng = random.Random(1)
    picks = [rng.choice(sample) for _ in range(requests)]
    try:
        load(lambda i: f"{base}/scans/{picks[i % len(picks)][0]}", 50, 2)  # warm-up
        page = load(lambda i: f"{base}/scans/{picks[i][0]}", requests, concurrency)
        verdict = load(lambda i: f"{base}/api/verdict?model={picks[i][1]}&sha={picks[i][2]}", requests, concurrency)
        index = load(lambda i: f"{base}/?page={1 + i % 50}", max(100, requests // 10), concurrency)
        size = len(httpx.get(f"{base}/scans/{picks[0][0]}").content)
        with BigBodies(port) as attack:
            page_attacked = load(lambda i: f"{base}/scans/{picks[i][0]}", requests, concurrency)
            verdict_attacked = load(
                lambda i: f"{base}/api/verdict?model={picks[i][1]}&sha={picks[i][2]}", requests, concurrency
            )
        rss_mb = _rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=15)
        log = (tmp / "serve.log").read_text(errors="replace")
        if "Traceback" in log:
            print(log[-4000:], file=sys.stderr)
    return {
        "scans_in_db": scans,
        "populate_seconds": round(populate_s, 1),
        "server": "uvicorn, 1 process",
        "report_page": {**page, "bytes": size},
        "verdict_api": verdict,
        "index_page": index,
        "while_50mb_bodies_are_refused": {
            "report_page": page_attacked,
            "verdict_api": verdict_attacked,
            **attack.summary(),
            "server_rss_mb_after": rss_mb,
        },
    }


class BigBodies:
    """Two clients that keep sending 50 MB bodies (one declared with Content-Length, one streamed) while the
    load runs; the server answers 413 without reading them. Counts refusals and the bytes actually sent."""

    SIZE = 50 * 1024 * 1024

    def __init__(self, port: int) -> None:
        self.port = port
        self.stop = threading.Event()
        self.refused = 0
        self.other = 0
        self.sent_bytes = 0
        self.threads = [threading.Thread(target=self._run, args=(chunked,), daemon=True) for chunked in (False, True)]

    def _run(self, chunked: bool) -> None:
        import socket

        chunk = b"x" * (1024 * 1024)
        while not self.stop.is_set():
            framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {self.SIZE}"
            head = (
                f"POST /api/scans HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {TOKEN}\r\n"
                f"Content-Type: application/json\r\n{framing}\r\n\r\n"
            ).encode()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
                    sock.sendall(head)
                    sent = 0
                    sock.settimeout(0.05)
                    answer = b""
                    while sent < self.SIZE and not answer:
                        piece = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") if chunked else chunk
                        try:
                            sock.sendall(piece)
                            sent += len(chunk)
                        except OSError:
                            break
                        with contextlib.suppress(TimeoutError):
                            answer = sock.recv(4096)
                    self.sent_bytes += sent
                    if not answer:
                        sock.settimeout(5)
                        answer = sock.recv(4096)
                    if b" 413 " in answer.split(b"\r\n", 1)[0]:
                        self.refused += 1
                    else:
                        self.other += 1
            except OSError:
                self.other += 1

    def __enter__(self) -> BigBodies:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def summary(self) -> dict:
        return {
            "big_bodies_refused_413": self.refused,
            "big_bodies_other": self.other,
            "big_body_bytes_sent_mb": round(self.sent_bytes / 1024 / 1024, 1),
        }


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


# --------------------------------------------------------------------------------------------------- 3. worker


def bench_worker(settings: Settings, engine, n: int, tmp: Path) -> dict:
    import torch

    from scanner.research.base_models import build_base
    from web.app import create_app

    torch.set_num_threads(1)
    model_dir = build_base("bert", tmp / "tiny-bert", layers=2, hidden=32)
    with HubStub() as hub:
        for i in range(n + 1):
            hub.add_repo(f"org/overhead-{i}", model_files(model_dir), pipeline_tag="fill-mask")
        run_settings = settings.model_copy(
            update={
                "hf_endpoint": hub.url,
                "scan_behavioural": False,
                "cache_dir": tmp / "cache",
                "api_tokens": [TOKEN],
            }
        )
        worker = WorkerProcess(worker_env(run_settings), tmp / "worker.log", f"bench{os.getpid()}")
        try:
            worker.wait_ready()
            from fastapi.testclient import TestClient

            client = TestClient(create_app(settings=run_settings))
            auth = {"Authorization": f"Bearer {TOKEN}"}

            def one(i: int) -> tuple[float, int]:
                t0 = time.perf_counter()
                scan_id = client.post("/api/scans", json={"target": f"org/overhead-{i}"}, headers=auth).json()["id"]
                while client.get(f"/api/scans/{scan_id}", params={"report": "false"}).json()["status"] not in (
                    "succeeded",
                    "failed",
                ):
                    time.sleep(0.02)
                return time.perf_counter() - t0, scan_id

            one(n)  # warm-up: imports torch/transformers in the worker
            results = [one(i) for i in range(n)]
        finally:
            worker.stop()
    sessions = make_session_factory(engine)
    overhead, hop, scan_s, e2e = [], [], [], []
    with sessions() as s:
        for wall, scan_id in results:
            scan = s.get(Scan, scan_id)
            assert scan.status == "succeeded", (scan.error_code, scan.error_message)
            pipeline = scan.report["scan"]["seconds"]
            task = (scan.finished_at - scan.started_at).total_seconds()
            overhead.append(task - pipeline)
            hop.append((scan.started_at - scan.queued_at).total_seconds())
            scan_s.append(pipeline)
            e2e.append(wall)
    return {
        "scans": n,
        "kind": "static checks of a 2-layer BERT via the hub stand-in (Redis broker, Postgres)",
        "pipeline_seconds": summary_ms(scan_s),
        "task_overhead_beyond_scan": summary_ms(overhead),
        "queue_hop_submit_to_claim": summary_ms(hop),
        "http_submit_to_seen_finished": summary_ms(e2e),
        "overhead_includes": "claim (SELECT FOR UPDATE), commit resolution (model_info), revision/lineage rows, "
        "heartbeat thread, progress writes, report + findings write",
    }


# --------------------------------------------------------------------------------------------------- main


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_results(results: dict, out: Path) -> None:
    """Stamp the time and the closing load average on `results` and write it as JSON to `out`."""
    results["recorded_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["machine"]["load_average_at_end"] = list(os.getloadavg())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listings", type=int, default=10_000)
    parser.add_argument("--scans", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--skip", default="", help="comma list of parts to skip: discovery, pages, worker")
    parser.add_argument("--worker-scans", type=int, default=20)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    import tempfile

    prefix = f"bench{os.getpid()}-"
    url, handle = fresh_database()
    engine = make_engine(url)
    settings = Settings(
        database_url=url,
        broker_url=REDIS,
        queue_prefix=prefix,
        api_tokens=[TOKEN],
        scan_profile="quick",
        scan_device="cpu",
    )
    skip = {part.strip() for part in args.skip.split(",") if part.strip()}
    results: dict = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "cpu": _cpu_model(),
            "load_average_at_start": list(os.getloadavg()),
            "note": "shared VM; Postgres and Redis on the same host, load generator too",
        }
    }
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp)
            if "discovery" not in skip:
                results["discovery"] = bench_discovery(settings, engine, args.listings)
                print(json.dumps({"discovery": results["discovery"]}, indent=2), flush=True)
                truncate(engine)
                purge_redis(prefix)
            if "pages" not in skip:
                results["pages"] = bench_pages(settings, engine, args.scans, args.requests, args.concurrency, tmp_path)
                print(json.dumps({"pages": results["pages"]}, indent=2), flush=True)
                truncate(engine)
            if "worker" not in skip:
                results["worker"] = bench_worker(settings, engine, args.worker_scans, tmp_path)
    finally:
        engine.dispose()
        purge_redis(prefix)
        drop_database(handle)
    write_results(results, args.out)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
