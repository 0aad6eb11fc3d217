"""Where a gate finds a scan already on record: its results cache (keyed by commit sha and scan config) and a
Patronus service's verdict API (`--server URL`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from scanner.config import ScanConfig
from scanner.report import Report, Verdict

log = logging.getLogger(__name__)


@dataclass
class ResultsCache:
    """Reports by (model, sha or content digest, config hash): `<dir>/<model>/<identity>-<config>.json`."""

    folder: Path

    def path(self, model: str, identity: str, config_hash: str) -> Path:
        safe = model.strip("/").replace("/", "--").replace("\\", "--").replace(":", "_")
        return self.folder / safe / f"{identity}-{config_hash}.json"

    def get(self, model: str, identity: str, config_hash: str) -> Report | None:
        path = self.path(model, identity, config_hash)
        if not path.is_file():
            return None
        try:
            return Report.from_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError) as exc:  # a damaged cache entry is a miss, not a failure
            log.warning("ignoring unreadable cached result %s: %s", path, exc)
            return None

    def put(self, model: str, identity: str, config_hash: str, report: Report) -> None:
        if report.verdict is Verdict.ERROR:
            return  # failures are retried, never cached
        path = self.path(model, identity, config_hash)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(report.to_json(), encoding="utf-8")
        tmp.replace(path)


PROFILE_RANK = {"quick": 0, "standard": 1, "thorough": 2}


def server_scan_falls_short(report: Report, config: ScanConfig) -> str | None:
    """Why the service's report cannot stand in for a scan with `config` (None: it can). It must come from this
    engine version and the same corpus and seed, and be at least as thorough: a behavioural scan when one is asked
    for, with a profile of at least the same budget. (A static-only gate accepts a full scan: it holds the static
    one.)"""
    theirs = report.scan.config or {}
    ours = config.identity()
    if str(theirs.get("engine_version")) != str(ours["engine_version"]):
        return f"the server's scan is engine {theirs.get('engine_version')}, this gate's is {ours['engine_version']}"
    for key in ("corpus", "seed"):
        if theirs.get(key) != ours[key]:
            return f"the server's scan used {key} {theirs.get(key)!r}, this gate asks for {ours[key]!r}"
    if ours["behavioural"]:
        if not theirs.get("behavioural", False):
            return "the server's scan was static only; this gate asks for the behavioural search"
        their_rank = PROFILE_RANK.get(str(theirs.get("profile")), -1)
        if their_rank < PROFILE_RANK[config.profile]:
            return f"the server's scan used profile {theirs.get('profile')}, this gate asks for {config.profile}"
    return None


@dataclass
class ServerAnswer:
    report: Report | None
    detail: str  # what the service said (for the log and the gate's JSON)
    scan_id: int | None = None


def ask_server(url: str, model: str, sha: str | None, token: str | None = None, timeout: float = 15.0) -> ServerAnswer:
    """The service's finished scan of `model` at `sha`: GET /api/verdict, then the report from /api/scans/{id}.

    Never raises: an unreachable service, an unknown model or an unfinished scan is an answer without a report
    (the gate then scans locally).
    """
    import httpx

    base = url.rstrip("/")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    params = {"model": model, **({"sha": sha} if sha else {})}
    try:
        with httpx.Client(base_url=base, timeout=timeout, headers=headers) as client:
            answer = client.get("/api/verdict", params=params)
            if answer.status_code == 404:
                return ServerAnswer(None, "not on record at the server")
            if answer.status_code == 202:
                return ServerAnswer(None, f"the server's scan is {answer.json().get('status', 'running')}")
            answer.raise_for_status()
            data = answer.json()
            if data.get("status") != "succeeded" or not data.get("scan_id"):
                return ServerAnswer(None, f"the server has no finished scan (status {data.get('status')})")
            if sha and data.get("sha") != sha:
                return ServerAnswer(None, f"the server's scan is of {data.get('sha')}, not {sha}")
            scan = client.get(f"/api/scans/{data['scan_id']}")
            scan.raise_for_status()
            report_data = scan.json().get("report")
            if not report_data:
                return ServerAnswer(None, f"scan {data['scan_id']} has no stored report", data["scan_id"])
            return ServerAnswer(Report.from_dict(report_data), f"scan {data['scan_id']} at {base}", data["scan_id"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        return ServerAnswer(None, f"server {base} unavailable: {type(exc).__name__}: {exc}")
