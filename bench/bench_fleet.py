"""Fleet benchmark: N models through the real service path, with and without download-ahead.

    python bench/bench_fleet.py [--models 6] [--model minilm-l2|tiny] [--profile quick] [--mbps 20]
                                [--prefetch 0 1] [--device cpu|cuda]

Each mode publishes N distinct repos of one real model on the loopback hub stand-in (tests/hub_stub.py, bodies
paced to --mbps to stand for the network), submits them all through the web API (Postgres rows, the Redis broker),
and lets one real `patronus worker` scan them with the behavioural search on. Reported per mode: wall time and
models/hour from the first submit to the last finish, and the mean split per scan into queue wait, download,
static, load (weights), prepare (corpus, clean statistics, vocabulary), search (search + verdict), and the
task's own overhead (claim, commit resolution, record); GPU utilisation (nvidia-smi samples) when a GPU is
present. Needs Postgres and Redis like bench/bench_service.py.
Writes bench/results/fleet.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from bench_service import _cpu_model, drop_database, fresh_database, purge_redis, write_results  # noqa: E402

from db.models import Scan  # noqa: E402
from db.session import make_engine, make_session_factory  # noqa: E402
from tasks.settings import Settings  # noqa: E402
from tests.hub_stub import HubStub  # noqa: E402
from tests.service.conftest import WorkerProcess, model_files, worker_env  # noqa: E402

RESULTS = REPO / "bench" / "results" / "fleet.json"
TOKEN = "fleet-token"
REDIS = os.environ.get("PATRONUS_BENCH_REDIS", "redis://127.0.0.1:6379/14")


def build_model(kind: str, cache: Path) -> Path:
    """The model every repo of the fleet carries: the real MiniLM cut to 2 layers, or a tiny random BERT."""
    from scanner.research.base_models import build_base, truncated_minilm

    if kind == "minilm-l2":
        return truncated_minilm(cache / "minilm-l2", 2)
    return build_base("bert", cache / "tiny-bert", layers=2, hidden=32)


class GpuSampler:
    """nvidia-smi utilisation samples every 0.5 s while running; empty without a GPU."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        if shutil.which("nvidia-smi") is None:
            return
        while not self.stop.wait(0.5):
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            values = [float(v) for v in out.split() if v.strip().replace(".", "", 1).isdigit()]
            if values:
                self.samples.append(statistics.mean(values))

    def __enter__(self) -> GpuSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)

    def summary(self) -> float | None:
        return round(statistics.mean(self.samples), 1) if self.samples else None


def run_mode(settings: Settings, model: Path, n: int, prefetch: int, mbps: float, tmp: Path) -> dict:
    """One worker, N repos, prefetch on or off; the per-scan split from the rows and their reports."""
    from fastapi.testclient import TestClient

    from web.app import create_app

    files = model_files(model)
    size = sum(len(b) for b in files.values())
    with HubStub(bytes_per_s=mbps * 1e6 if mbps > 0 else None) as hub:
        names = [f"fleet/p{prefetch}-{i}" for i in range(n + 1)]
        for name in names:
            hub.add_repo(name, files, pipeline_tag="fill-mask", tags=["transformers", "bert"])
        run = settings.model_copy(
            update={"hf_endpoint": hub.url, "cache_dir": tmp / f"cache-{prefetch}", "api_tokens": [TOKEN]}
        )
        worker = WorkerProcess(
            worker_env(run, PATRONUS_SCAN_PREFETCH=str(prefetch), PATRONUS_LINEAGE_BASE="0"),
            tmp / f"worker-{prefetch}.log",
            f"fleet{prefetch}",
        )
        try:
            worker.wait_ready(timeout=120)
            client = TestClient(create_app(settings=run))
            auth = {"Authorization": f"Bearer {TOKEN}"}

            def submit(name: str) -> int:
                answer = client.post("/api/scans", json={"target": name}, headers=auth)
                answer.raise_for_status()
                return int(answer.json()["id"])

            def wait(ids: list[int], timeout: float = 3600) -> None:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    states = [client.get(f"/api/scans/{i}", params={"report": "false"}).json()["status"] for i in ids]
                    if all(s in ("succeeded", "failed") for s in states):
                        return
                    time.sleep(0.25)
                raise TimeoutError(f"scans not finished after {timeout} s")

            wait([submit(names[-1])])  # warm-up: the worker imports torch and transformers once
            with GpuSampler() as gpu:
                t0 = time.perf_counter()
                ids = [submit(name) for name in names[:n]]
                wait(ids)
                wall = time.perf_counter() - t0
        finally:
            worker.stop()
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    parts = ("queue", "download", "static", "load", "prepare", "search", "overhead")
    split: dict[str, list[float]] = {k: [] for k in parts}
    rows = []
    failed = []
    with sessions() as s:
        for scan_id in ids:
            scan = s.get(Scan, scan_id)
            if scan.status != "succeeded":
                failed.append({"id": scan_id, "code": scan.error_code, "message": scan.error_message})
                continue
            stages = scan.report["scan"].get("stage_seconds", {})
            task = (scan.finished_at - scan.started_at).total_seconds()
            split["queue"].append((scan.started_at - scan.queued_at).total_seconds())
            split["download"].append(stages.get("fetch", 0.0))
            split["static"].append(stages.get("static", 0.0))
            split["load"].append(stages.get("load", 0.0))
            split["prepare"].append(stages.get("prepare", 0.0))
            split["search"].append(stages.get("search", 0.0) + stages.get("verdict", 0.0))
            split["overhead"].append(task - scan.report["scan"]["seconds"])
            rows.append({k: round(v[-1], 3) for k, v in split.items()})
    engine.dispose()
    return {
        "prefetch": prefetch,
        "models": n,
        "model_bytes": size,
        "wall_s": round(wall, 2),
        "models_per_hour": round(3600 * n / wall, 1),
        "mean_seconds": {k: round(statistics.mean(v), 3) if v else None for k, v in split.items()},
        "gpu_utilisation_pct": gpu.summary(),
        "scans": rows,
        "failed": failed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=6)
    parser.add_argument("--model", choices=("minilm-l2", "tiny"), default="minilm-l2")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--mbps", type=float, default=20.0, help="hub stand-in bandwidth, MB/s (0: unpaced)")
    parser.add_argument("--prefetch", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "patronus" / "bench-fleet")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    model = build_model(args.model, args.cache)
    prefix = f"fleet{os.getpid()}-"
    url, handle = fresh_database()
    settings = Settings(
        database_url=url,
        broker_url=REDIS,
        queue_prefix=prefix,
        scan_profile=args.profile,
        scan_device=args.device,
        scan_behavioural=True,
        lineage_base=False,
    )
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "cpu": _cpu_model(), "load_average_at_start": list(os.getloadavg())},
        "model": args.model,
        "profile": args.profile,
        "device": args.device,
        "mbps": args.mbps,
        "modes": [],
    }
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for prefetch in args.prefetch:
                mode = run_mode(settings, model, args.models, prefetch, args.mbps, Path(tmp))
                results["modes"].append(mode)
                print(json.dumps(mode, indent=2), flush=True)
    finally:
        purge_redis(prefix)
        drop_database(handle)
    write_results(results, args.out)


if __name__ == "__main__":
    main()
