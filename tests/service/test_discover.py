"""Discovery against the loopback hub stand-in: newest first, pagination, filters, cursor, budget, lineage."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, func, select

from db.models import DiscoveryCursor, Lineage, Model, Scan
from tasks.context import TaskContext
from tasks.discover import covered_by, discover, merge
from tests.hub_stub import HubStub

pytestmark = pytest.mark.service

CONFIG = {"config.json": b'{"model_type": "bert"}'}


def stamp(minute: int) -> str:
    return f"2025-03-01T10:{minute:02d}:00Z"


def add(
    stub: HubStub, repo_id: str, minute: int, family: str = "bert", task: str | None = "fill-mask", **kwargs
) -> str:
    return stub.add_repo(
        repo_id,
        CONFIG,
        created_at=stamp(minute),
        pipeline_tag=task,
        tags=["transformers", family] + ([task] if task else []),
        **kwargs,
    )


@pytest.fixture
def stub():
    with HubStub(page_size=2) as hub:  # tiny pages: every run crosses several Link-header pages
        yield hub


@pytest.fixture
def ctx_for(make_settings, sessions, stub):
    def build(**overrides) -> TaskContext:
        values = dict(
            hf_endpoint=stub.url,
            discovery_families=["bert", "roberta"],
            discovery_since=datetime(2025, 3, 1, 9, 0, tzinfo=UTC),
        )
        values.update(overrides)
        sent: list[int] = []
        ctx = TaskContext(
            settings=make_settings(**values),
            sessions=sessions,
            enqueue_scan=lambda scan_id, task_id: sent.append(scan_id),
        )
        ctx.sent = sent  # type: ignore[attr-defined]
        return ctx

    return build


def queued_models(ctx: TaskContext, ids: list[int]) -> list[str]:
    with ctx.sessions() as s:
        return [s.get(Scan, i).model.name for i in ids]


def test_newest_first_paginated_and_filtered(ctx_for, stub):
    for minute in range(1, 6):
        add(stub, f"org/bert-{minute}", minute)
    add(stub, "org/generator", 6, task="text-generation")  # task not supported
    add(stub, "org/gpt", 7, family="gpt2")  # family not supported
    add(stub, "org/old", 0, family="bert")  # 10:00, after the first run's floor (09:00): listed
    add(stub, "org/rob", 8, family="roberta")
    ctx = ctx_for()
    result = discover(ctx)
    assert queued_models(ctx, ctx.sent) == [f"org/bert-{m}" for m in range(5, 0, -1)] + ["org/old", "org/rob"]
    assert result.families["bert"].listed == 7 and result.families["bert"].enqueued == 6
    assert result.families["roberta"].enqueued == 1 and result.enqueued == 7
    pages = stub.requests("list_models")
    assert len(pages) == 4 + 1 and any("cursor" in r.query for r in pages)  # 7 bert on pages of 2, 1 roberta
    assert all(r.query.get("sort") == ["createdAt"] for r in pages)
    with ctx.sessions() as s:
        scans = s.scalars(select(Scan).order_by(Scan.id)).all()
        assert {sc.origin for sc in scans} == {"discovery"} and all(sc.enqueued_at for sc in scans)
        assert all(len(sc.requested_revision) == 40 for sc in scans)  # pinned to the listed commit
        assert s.scalar(select(Model).where(Model.name == "org/rob")).family == "roberta"


def test_cursor_reads_only_new_uploads(ctx_for, stub):
    for minute in range(1, 4):
        add(stub, f"org/m{minute}", minute)
    ctx = ctx_for(discovery_families=["bert"])
    assert discover(ctx).enqueued == 3
    stub.clear_log()
    again = discover(ctx)
    assert again.enqueued == 0 and again.families["bert"].fresh == 0
    assert len(stub.requests("list_models")) == 1  # stopped on the first, already read, listing
    add(stub, "org/m10", 10)
    add(stub, "org/m11", 11)
    third = discover(ctx)
    assert third.enqueued == 2 and queued_models(ctx, ctx.sent[-2:]) == ["org/m11", "org/m10"]


def test_budget_leaves_a_backlog_that_the_next_run_finishes(ctx_for, stub):
    for minute in range(1, 8):
        add(stub, f"org/b{minute}", minute)
    ctx = ctx_for(discovery_families=["bert"], discovery_max_models=3)
    first = discover(ctx)
    assert first.enqueued == 3 and not first.families["bert"].complete
    add(stub, "org/b20", 20)  # a new upload arrives between runs
    second = discover(ctx)
    assert second.enqueued == 3 and not second.families["bert"].complete
    third = discover(ctx)
    assert third.enqueued == 2 and third.families["bert"].complete
    assert sorted(queued_models(ctx, ctx.sent)) == sorted([f"org/b{m}" for m in range(1, 8)] + ["org/b20"])
    assert discover(ctx).enqueued == 0


def test_first_run_floor_and_no_duplicate_scans(ctx_for, stub):
    stub.add_repo(
        "org/ancient",
        CONFIG,
        created_at="2020-01-01T00:00:00Z",
        pipeline_tag="fill-mask",
        tags=["transformers", "bert"],
    )
    add(stub, "org/new", 5)
    ctx = ctx_for(discovery_families=["bert"])
    assert discover(ctx).enqueued == 1 and queued_models(ctx, ctx.sent) == ["org/new"]
    with ctx.sessions() as s, s.begin():
        s.execute(delete(DiscoveryCursor))  # forget the cursor: the database still knows the commit
    rerun = discover(ctx)
    assert rerun.enqueued == 0 and rerun.families["bert"].existing == 1
    with ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Scan)) == 1


def test_card_base_model_is_recorded_as_lineage(ctx_for, stub):
    add(stub, "org/derived", 3, card_data={"base_model": ["org/base", "org/base"], "license": "mit"})
    ctx = ctx_for(discovery_families=["bert"])
    discover(ctx)
    with ctx.sessions() as s:
        links = s.scalars(select(Lineage)).all()
        assert [(link.model.name, link.base_name) for link in links] == [("org/derived", "org/base")]


def test_interval_bookkeeping():
    t = [datetime(2025, 1, 1, h, tzinfo=UTC) for h in range(6)]
    merged = merge([(t[0], t[1]), (t[3], t[4]), (t[1], t[2])])
    assert merged == [(t[3], t[4]), (t[0], t[2])]
    assert covered_by(merged, t[1]) and not covered_by(merged, t[5])
