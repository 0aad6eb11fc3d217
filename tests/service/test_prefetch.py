"""Download ahead: the next queued hub models' files are fetched while a scan runs, without touching their rows, and
the scan that later claims one starts on cached files (the loopback hub serves nothing twice)."""

from __future__ import annotations

import pytest

from db.models import Scan, ScanStatus
from tasks.context import TaskContext
from tasks.prefetch import Ahead, Prefetcher, queued_ahead
from tasks.scan import run_scan
from tests.service.conftest import add_model_repo
from tests.service.test_tasks import submit

pytestmark = pytest.mark.service


@pytest.fixture
def prefetch_ctx(make_settings, sessions, tmp_path):
    """A context with its own download cache (nothing prefetched by another test) and two models ahead."""
    return TaskContext(settings=make_settings(cache_dir=tmp_path / "cache", scan_prefetch=2), sessions=sessions)


def test_queued_models_are_fetched_ahead_and_their_scans_download_nothing(prefetch_ctx, hub, tiny_model, tmp_path):
    for name in ("org/ahead-a", "org/ahead-b", "org/ahead-c"):
        add_model_repo(hub, name, tiny_model)
    current = submit(prefetch_ctx, "org/tiny-bert")
    a, b, c = (submit(prefetch_ctx, name) for name in ("org/ahead-a", "org/ahead-b", "org/ahead-c"))
    local = submit(prefetch_ctx, str(tmp_path), source="local")  # never prefetched: not a download

    ahead = queued_ahead(prefetch_ctx, current.id, 5)
    assert [x.scan_id for x in ahead] == [a.id, b.id, c.id] and local.id not in {x.scan_id for x in ahead}
    assert queued_ahead(prefetch_ctx, current.id, 0) == []

    hub.clear_log()
    thread = Prefetcher().kick(prefetch_ctx, current.id)
    assert thread is not None
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert "model.safetensors" in hub.downloaded_files("org/ahead-a")
    assert "model.safetensors" in hub.downloaded_files("org/ahead-b")
    assert hub.downloaded_files("org/ahead-c") == []  # beyond scan_prefetch = 2
    assert hub.downloaded_files("org/tiny-bert") == []  # the scan in hand is not prefetched
    with prefetch_ctx.sessions() as s:
        for scan_id in (a.id, b.id):
            queued = s.get(Scan, scan_id)
            assert queued.status == ScanStatus.QUEUED and queued.attempts == 0 and queued.claim_token is None

    hub.clear_log()
    assert run_scan(prefetch_ctx, a.id).status == "succeeded"
    assert hub.downloaded_files("org/ahead-a") == []  # its files were already in the cache
    assert hub.requests("model_info", repo_id="org/ahead-a")  # the commit is still resolved at scan time


def test_prefetch_off_and_failures_are_quiet(make_settings, sessions, hub):
    off = TaskContext(settings=make_settings(scan_prefetch=0), sessions=sessions)
    assert Prefetcher().kick(off, 1) is None
    on = TaskContext(settings=make_settings(scan_prefetch=1), sessions=sessions)
    assert Prefetcher.fetch(on, Ahead(0, "org/does-not-exist", "")) is False  # logged, not raised
