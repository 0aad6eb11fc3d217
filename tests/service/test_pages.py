"""Pages rendered by a real browser (Debian's headless Chromium) from a real server on Postgres.

A backdoored model whose recovered trigger, tokens and card lineage carry XSS attempts: the browser must show them
as text. The report page screenshot is kept under $PATRONUS_ARTIFACTS/service/ (a CI artifact).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from db.models import Lineage, Scan, utcnow
from db.repo import ScanKey, Target, get_or_create_model, get_or_create_revision
from scanner.config import ScanConfig
from scanner.report import (
    FileFinding,
    Lookalike,
    ModelInfo,
    Report,
    ScanInfo,
    Serialization,
    Severity,
    Trigger,
    Verdict,
)
from tasks.lifecycle import findings_of
from web.app import create_app

pytestmark = pytest.mark.service

CHROMIUM = "/usr/bin/chromium"
XSS_TRIGGER = "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">"
XSS_TOKEN = "<script>document.title='pwned'</script>"
XSS_BASE = "org/base\"><svg onload=\"document.body.setAttribute('data-pwned','2')\">"


def chromium(url: str, screenshot: Path | None = None, budget_ms: int | None = None) -> tuple[str, str]:
    """(DOM after load, browser log) of `url` in headless Chromium; a screenshot when asked."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail(
            "headless Chromium is needed for the page tests: apt-get install -y chromium (CI: .ci/run installs it)"
        )
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--window-size=1280,2200",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ]
        if screenshot is not None:
            cmd.append(f"--screenshot={screenshot}")
        if budget_ms is not None:
            cmd.append(f"--virtual-time-budget={budget_ms}")
        done = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


def xss_report(sha: str) -> Report:
    trigger = Trigger(
        text=XSS_TRIGGER,
        tokens=[XSS_TOKEN, "cf"],
        score=9.2,
        p_value=2e-6,
        shift=3.1,
        poison_cos=0.93,
        diff_cos=0.88,
        paper_rule=True,
        lookalikes=[Lookalike(XSS_TOKEN, 3.0, 1e-5, 0.9)],
    )  # a monitor rule on the page
    return Report(
        model=ModelInfo(
            source="hub",
            id="org/xss-model",
            revision="main",
            sha=sha,
            family="bert",
            architecture="BertModel",
            parameters=4_400_000,
            files=["config.json", "model.safetensors"],
        ),
        verdict=Verdict.BACKDOORED,
        probability=0.997,
        severity=Severity.CRITICAL,
        triggers=[trigger],
        serialization=Serialization(files=[FileFinding(path="model.safetensors", format="safetensors", status="safe")]),
        scan=ScanInfo(
            started="2025-03-01T10:00:00+00:00",
            finished="2025-03-01T10:01:00+00:00",
            seconds=60.0,
            profile="quick",
            config={"profile": "quick"},
            sequences_evaluated=12_345,
        ),
    )


@pytest.fixture
def site(make_settings, live_db, pg_engine, live_server):
    """A server over: a backdoored base, a derived model (XSS-laden report and card), and a running scan."""
    key = ScanKey.from_config(ScanConfig(profile="quick"))
    common = dict(engine_version=key.engine_version, config_hash=key.config_hash, profile="quick")
    with Session(pg_engine) as s, s.begin():
        base = get_or_create_model(s, Target("hub", "org/poisoned-base"), family="bert")
        base_scan = Scan(
            model_id=base.id,
            revision_id=get_or_create_revision(s, base, "e" * 40).id,
            requested_revision="",
            status="succeeded",
            verdict="backdoored",
            severity="critical",
            finished_at=utcnow(),
            **common,
        )
        base_scan.findings = findings_of(xss_report("e" * 40))
        s.add(base_scan)
        model = get_or_create_model(s, Target("hub", "org/xss-model"), family="bert")
        sha = "f" * 40
        report = xss_report(sha)
        done = Scan(
            model_id=model.id,
            revision_id=get_or_create_revision(s, model, sha).id,
            requested_revision="",
            status="succeeded",
            verdict="backdoored",
            severity="critical",
            probability=0.997,
            report=report.to_dict(),
            finished_at=utcnow(),
            seconds=60.0,
            device="cpu",
            **common,
        )
        done.findings = findings_of(report)
        s.add(done)
        s.add_all(
            [
                Lineage(model_id=model.id, base_name="org/poisoned-base", base_model_id=base.id),
                Lineage(model_id=model.id, base_name=XSS_BASE),
            ]
        )
        model.latest_verdict, base.latest_verdict = "backdoored", "backdoored"
        running = Scan(
            model_id=model.id,
            requested_revision="v2",
            status="running",
            stage="search",
            fraction=0.4,
            message="candidate 12 of 30",
            attempts=1,
            started_at=utcnow(),
            heartbeat_at=utcnow(),
            **common,
        )
        s.add(running)
        s.flush()
        ids = {"done": done.id, "running": running.id}
    server = live_server(create_app(settings=make_settings()))
    return server.url, ids


def assert_inert(dom: str) -> None:
    assert 'data-pwned="' not in dom and "<title>pwned" not in dom  # the payloads never ran
    assert '<img src="x"' not in dom and "<svg onload" not in dom and "<script>document.title" not in dom


def test_report_page_shows_attacker_strings_as_text(site, artifacts_dir):
    base, ids = site
    shot = artifacts_dir / "scan-report-page.png"
    shot.unlink(missing_ok=True)
    dom, _ = chromium(f"{base}/scans/{ids['done']}", screenshot=shot)
    assert 'id="patronus-report"' in dom  # the shared report template, embedded
    assert "&lt;img src=x onerror=" in dom and "&lt;script&gt;document.title=" in dom
    assert 'org/base"&gt;&lt;svg onload=' in dom  # the card's base_model, on the lineage line
    mitigation = dom[dom.index('id="mitigation"') : dom.index('id="mitigation"') + 4000]
    assert "<code>&lt;script&gt;document.title='pwned'&lt;/script&gt;</code>" in mitigation  # the look-alike rule
    assert "No rule for: <code>&lt;img src=x onerror=" in mitigation  # the trigger itself has spaces
    assert_inert(dom)
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_index_and_model_pages_in_the_browser(site):
    base, ids = site
    index, _ = chromium(f"{base}/?verdict=backdoored")
    assert "org/xss-model" in index and f"/scans/{ids['done']}" in index and "org/poisoned-base" in index
    model, _ = chromium(f"{base}/models/org/xss-model")
    assert 'id="lineage"' in model and 'href="/models/org/poisoned-base"' in model
    assert "&lt;img src=x onerror=" in model  # the base's trigger, offered as a seed
    assert_inert(model + index)
    base_page, _ = chromium(f"{base}/models/org/poisoned-base")
    assert 'href="/models/org/xss-model"' in base_page  # the link shows on the base's page too


def test_running_scan_page_polls_live_status_under_its_csp(site):
    base, ids = site
    dom, log = chromium(f"{base}/scans/{ids['running']}", budget_ms=5000)
    assert 'id="live"' in dom and "candidate 12 of 30" in dom
    assert 'data-polls="' in dom  # the nonce'd script ran and fetched /api/scans/<id>
    assert "Refused to execute" not in log and "Content Security Policy" not in log
