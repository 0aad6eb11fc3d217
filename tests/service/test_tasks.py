"""The scan task as a plain function (no broker): idempotency, reuse, retries, failures, leases, lineage, reaper.

Real scans of a tiny real model served by the loopback hub, against the migrated Postgres (savepoint per test).
The behavioural search is off here (static checks only) to keep these fast; test_worker.py runs it end to end.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from db.models import Finding, Lineage, Model, Scan, utcnow
from db.repo import ScanKey, Target, get_or_create_model, get_or_create_revision, submit_scan
from tasks.context import TaskContext
from tasks.lifecycle import reap
from tasks.lineage import candidate_triggers_for
from tasks.scan import LeaseLost, ProgressWriter, backoff, run_scan
from tests.service.conftest import add_model_repo

pytestmark = pytest.mark.service


def submit(ctx: TaskContext, name: str, revision: str | None = None, source: str = "hub") -> Scan:
    with ctx.sessions() as s, s.begin():
        model = get_or_create_model(s, Target(source, name))
        sub = submit_scan(s, model, revision, ScanKey.from_config(ctx.settings.scan_config()))
        return sub.scan


def row(ctx: TaskContext, scan_id: int) -> Scan:
    with ctx.sessions() as s:
        scan = s.get(Scan, scan_id)
        _ = scan.model, scan.revision, scan.findings, scan.report
        return scan


def test_scan_succeeds_and_lands_as_rows(task_ctx, hub):
    scan = submit(task_ctx, "org/tiny-bert")
    outcome = run_scan(task_ctx, scan.id)
    assert outcome.status == "succeeded", outcome
    done = row(task_ctx, scan.id)
    assert done.status == "succeeded" and done.attempts == 1 and done.claim_token is None
    assert done.revision.sha == hub.repos["org/tiny-bert"].refs["main"]
    assert done.report["model"]["sha"] == done.revision.sha
    assert done.verdict == done.report["verdict"] and done.stage == "done" and done.seconds >= 0
    assert done.model.latest_verdict == done.verdict and done.model.latest_scan_id == done.id
    assert done.model.family == "bert"


def test_finished_scan_is_reused_and_redelivery_is_a_no_op(task_ctx, hub):
    first = submit(task_ctx, "org/tiny-bert")
    assert run_scan(task_ctx, first.id).status == "succeeded"
    assert run_scan(task_ctx, first.id).status == "skipped"  # duplicate delivery
    sha = hub.repos["org/tiny-bert"].refs["main"]
    pinned = submit(task_ctx, "org/tiny-bert", sha)
    assert pinned.id == first.id  # a pinned commit with a finished scan: answered at once
    again = submit(task_ctx, "org/tiny-bert")  # the default branch: resolved by the task, then reused
    assert again.id != first.id
    assert run_scan(task_ctx, again.id).status == "reused"
    reused = row(task_ctx, again.id)
    assert reused.status == "succeeded" and reused.reused_from_id == first.id and reused.report is None
    with task_ctx.sessions() as s:
        assert s.scalar(select(Scan).where(Scan.id == again.id)).verdict == row(task_ctx, first.id).verdict


def test_nothing_scannable_is_recorded_as_failed_without_retry(task_ctx):
    scan = submit(task_ctx, "org/empty")
    outcome = run_scan(task_ctx, scan.id)
    assert outcome.status == "failed" and outcome.retry_in is None
    failed = row(task_ctx, scan.id)
    assert failed.status == "failed" and failed.error_code == "nothing_scannable" and failed.attempts == 1
    assert "no supported weight files" in failed.error_message and failed.report["verdict"] == "error"


def test_missing_repository_fails_without_retry(task_ctx):
    scan = submit(task_ctx, "org/does-not-exist")
    assert run_scan(task_ctx, scan.id).status == "failed"
    assert row(task_ctx, scan.id).error_code == "fetch_failed"


def test_network_errors_retry_with_exponential_backoff_then_fail(make_settings, sessions):
    settings = make_settings(hf_endpoint="http://127.0.0.1:9", scan_max_retries=2, scan_retry_backoff_s=5)
    ctx = TaskContext(settings=settings, sessions=sessions)
    scan = submit(ctx, "org/tiny-bert")
    delays = []
    for _ in range(2):
        outcome = run_scan(ctx, scan.id)
        assert outcome.status == "retry"
        delays.append(outcome.retry_in)
        queued = row(ctx, scan.id)
        assert queued.status == "queued" and queued.error_code == "fetch_failed" and "retry in" in queued.message
    assert delays == [5, 10] and backoff(3, 5) == 20
    assert run_scan(ctx, scan.id).status == "failed"
    failed = row(ctx, scan.id)
    assert failed.attempts == 3 and failed.error_code == "fetch_failed" and "gave up" in failed.error_message


def test_gated_download_is_access_denied_and_not_retried(task_ctx, hub, tiny_model):
    add_model_repo(hub, "org/gated", tiny_model, gated=True)
    scan = submit(task_ctx, "org/gated")
    outcome = run_scan(task_ctx, scan.id)
    assert outcome.status == "failed" and outcome.retry_in is None
    assert row(task_ctx, scan.id).error_code == "access_denied" and row(task_ctx, scan.id).attempts == 1


def test_over_the_size_bound_fails_at_once_with_too_large(make_settings, sessions, hub):
    ctx = TaskContext(settings=make_settings(scan_max_size=1024), sessions=sessions)
    scan = submit(ctx, "org/tiny-bert")
    outcome = run_scan(ctx, scan.id)
    assert outcome.status == "failed" and outcome.retry_in is None
    failed = row(ctx, scan.id)
    assert failed.error_code == "too_large" and failed.attempts == 1 and "max-size" in failed.error_message


def test_running_scan_is_left_to_its_worker_until_its_heartbeat_goes_stale(task_ctx):
    scan = submit(task_ctx, "org/tiny-bert")
    with task_ctx.sessions() as s, s.begin():
        live = s.get(Scan, scan.id)
        live.status, live.heartbeat_at, live.claim_token, live.attempts = "running", utcnow(), "other", 1
    busy = run_scan(task_ctx, scan.id)
    assert busy.status == "skipped" and busy.retry_in is None  # a duplicate: the reaper covers a later death
    with task_ctx.sessions() as s, s.begin():
        s.get(Scan, scan.id).heartbeat_at = utcnow() - timedelta(seconds=task_ctx.settings.scan_lease_s + 1)
    assert run_scan(task_ctx, scan.id).status == "succeeded"
    assert row(task_ctx, scan.id).attempts == 2


def test_a_scan_that_keeps_killing_workers_is_given_up(task_ctx):
    scan = submit(task_ctx, "org/tiny-bert")
    with task_ctx.sessions() as s, s.begin():
        s.get(Scan, scan.id).attempts = task_ctx.settings.scan_max_retries + 1
    assert run_scan(task_ctx, scan.id).status == "failed"
    assert row(task_ctx, scan.id).error_code == "too_many_attempts"


def test_progress_writer_stops_a_scan_whose_lease_was_taken(task_ctx):
    scan = submit(task_ctx, "org/tiny-bert")
    with task_ctx.sessions() as s, s.begin():
        s.get(Scan, scan.id).status = "running"
        s.get(Scan, scan.id).claim_token = "mine"
    ProgressWriter(task_ctx, scan.id, "mine")("search", 0.5, "half way")
    assert row(task_ctx, scan.id).stage == "search" and row(task_ctx, scan.id).fraction == 0.5
    with pytest.raises(LeaseLost):
        ProgressWriter(task_ctx, scan.id, "not-mine")("search", 0.6)


def test_local_folder_scan_is_keyed_by_content(make_settings, sessions, tiny_model):
    ctx = TaskContext(settings=make_settings(allow_local_targets=True), sessions=sessions)
    first = submit(ctx, str(tiny_model), source="local")
    assert run_scan(ctx, first.id).status == "succeeded"
    sha = row(ctx, first.id).revision.sha
    assert len(sha) == 64
    second = submit(ctx, str(tiny_model), source="local")
    assert run_scan(ctx, second.id).status == "reused" and row(ctx, second.id).revision.sha == sha


def test_lineage_links_and_seeds_the_base_models_triggers(task_ctx, hub, tiny_model):
    with task_ctx.sessions() as s, s.begin():
        base = get_or_create_model(s, Target("hub", "org/poisoned-base"))
        rev = get_or_create_revision(s, base, "d" * 40)
        key = ScanKey.from_config(task_ctx.settings.scan_config())
        bad = Scan(
            model_id=base.id,
            revision_id=rev.id,
            requested_revision="",
            engine_version=key.engine_version,
            config_hash=key.config_hash,
            profile="quick",
            status="succeeded",
            verdict="backdoored",
            finished_at=utcnow(),
        )
        bad.findings = [
            Finding(kind="trigger", text="cf mn", p_value=1e-6, score=9.0),
            Finding(kind="trigger", text="tq", p_value=1e-3, score=4.0),
        ]
        s.add(bad)
    add_model_repo(hub, "org/derived", tiny_model, card_data={"base_model": "org/poisoned-base"})
    scan = submit(task_ctx, "org/derived")
    assert run_scan(task_ctx, scan.id).status == "succeeded"
    assert row(task_ctx, scan.id).seed_triggers == ["cf mn", "tq"]
    with task_ctx.sessions() as s:
        derived = s.scalar(select(Model).where(Model.name == "org/derived"))
        link = s.scalar(select(Lineage).where(Lineage.model_id == derived.id))
        assert link.base_name == "org/poisoned-base" and link.base_model_id == base.id
        assert candidate_triggers_for(s, derived) == ["cf mn", "tq"]


def test_reaper_resends_lost_and_unsent_scans_only(task_ctx):
    lost, unsent, fresh, recent = (submit(task_ctx, f"org/r{i}") for i in range(4))
    old = utcnow() - timedelta(hours=1)
    with task_ctx.sessions() as s, s.begin():
        s.get(Scan, lost.id).status, s.get(Scan, lost.id).heartbeat_at = "running", old
        s.get(Scan, unsent.id).queued_at = old
        s.get(Scan, fresh.id).status, s.get(Scan, fresh.id).heartbeat_at = "running", utcnow()
        s.get(Scan, recent.id).enqueued_at = None  # just created: the sender may still be on its way
    assert sorted(reap(task_ctx)) == sorted([lost.id, unsent.id])
    assert {scan_id for scan_id, _ in task_ctx.sent} == {lost.id, unsent.id}
    assert row(task_ctx, unsent.id).enqueued_at is not None
    assert reap(task_ctx) == []  # stamped when re-sent: the next sweep leaves them alone


def test_reaper_resends_a_queued_scan_whose_message_was_lost(task_ctx):
    """A queued row whose message vanished: re-sent once the queue moved past it, or the queue is empty."""
    waiting, lost, later = (submit(task_ctx, f"org/q{i}") for i in range(3))
    lease = timedelta(seconds=task_ctx.settings.queue_lease_s)
    now = utcnow()
    with task_ctx.sessions() as s, s.begin():
        s.get(Scan, waiting.id).enqueued_at = now - 2 * lease
        s.get(Scan, lost.id).enqueued_at = now - 2 * lease
        s.get(Scan, later.id).enqueued_at = now - 2 * lease + timedelta(seconds=1)
    assert reap(task_ctx, queue_size=lambda: 5) == []  # nothing says the messages are gone: a long queue waits
    with task_ctx.sessions() as s, s.begin():  # a scan sent after them has been claimed: the queue passed them
        s.get(Scan, later.id).claimed_at = now
        s.get(Scan, later.id).status = "succeeded"
    assert sorted(reap(task_ctx, queue_size=lambda: 5)) == sorted([waiting.id, lost.id])
    with task_ctx.sessions() as s, s.begin():
        s.get(Scan, lost.id).enqueued_at = now - 2 * lease
        s.get(Scan, waiting.id).enqueued_at = now
    assert reap(task_ctx, queue_size=lambda: 0) == [lost.id]  # an empty queue: it cannot be waiting in it


def test_a_twin_scanning_the_same_commit_is_waited_for_then_reused(task_ctx, hub):
    sha = hub.repos["org/tiny-bert"].refs["main"]
    first, second = submit(task_ctx, "org/tiny-bert"), submit(task_ctx, "org/tiny-bert", sha)
    assert first.id != second.id  # different requested revisions: no collapse at submission
    with task_ctx.sessions() as s, s.begin():
        rev = get_or_create_revision(s, s.get(Scan, first.id).model, sha)
        twin = s.get(Scan, first.id)
        twin.status, twin.revision_id, twin.heartbeat_at, twin.claim_token = "running", rev.id, utcnow(), "x"
    waiting = run_scan(task_ctx, second.id)
    assert waiting.status == "busy" and waiting.retry_in is not None
    assert row(task_ctx, second.id).status == "queued" and row(task_ctx, second.id).attempts == 0
    with task_ctx.sessions() as s, s.begin():
        s.get(Scan, first.id).status = "succeeded"
    assert run_scan(task_ctx, second.id).status == "reused"
    assert row(task_ctx, second.id).reused_from_id == first.id


def test_hub_supplied_values_are_cleaned_and_bounded_before_the_database():
    from tasks.lifecycle import bounded_base_models, clean, clean_word, describe, scrub

    assert clean_word("bert", 32) == "bert" and clean_word("x" * 33, 32) is None and clean_word("a b", 32) is None
    assert clean_word(None, 32) is None and clean_word({"model_type": 1}, 32) is None
    assert clean("a\x00b\x07c", 10) == "abc" and clean("y" * 5000, 100) == "y" * 100
    names = [f"org/b{i}" for i in range(3000)] + ["x" * 600, "foo--bar", "a\x00b", 5, None]
    assert bounded_base_models(names, 20) == [f"org/b{i}" for i in range(20)]
    assert bounded_base_models(["x" * 600, "foo--bar", "org/ok", "org/ok"], 20) == ["org/ok"]
    assert scrub({"k\x00": ["v\x00", 1]}) == {"k\ufffd": ["v\ufffd", 1]}
    message = describe(PermissionError(13, "Permission denied", "/var/cache/patronus/x"))
    assert message.startswith("PermissionError") and "/var/cache" not in message and "<path>" in message


def test_an_unexpected_error_after_the_claim_is_recorded_once_with_its_cause(task_ctx, monkeypatch):
    import tasks.scan

    def explode(*args, **kwargs):
        raise RuntimeError("value too long for type character varying(32)")

    monkeypatch.setattr(tasks.scan, "_execute", explode)
    scan = submit(task_ctx, "org/tiny-bert")
    outcome = run_scan(task_ctx, scan.id)
    assert outcome.status == "failed" and outcome.detail == "internal_error"
    failed = row(task_ctx, scan.id)
    assert failed.status == "failed" and failed.error_code == "internal_error" and failed.attempts == 1
    assert "RuntimeError: value too long" in failed.error_message and failed.verdict == "error"
    assert run_scan(task_ctx, scan.id).status == "skipped"  # redelivery: recorded once, never re-run
    assert reap(task_ctx) == []
