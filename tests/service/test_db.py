"""The schema: Alembic on Postgres and SQLite, the reuse/collapse indexes, repository helpers."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from db.migrate import current_revision, downgrade, head_revision, upgrade
from db.models import Revision, Scan, ScanStatus, ScanVerdict
from db.repo import (
    ScanKey,
    Target,
    get_or_create_model,
    get_or_create_revision,
    submit_scan,
)
from scanner.config import ScanConfig
from tasks.settings import Settings
from tasks.targets import TargetError, classify_target

pytestmark = pytest.mark.service

KEY = ScanKey.from_config(ScanConfig(profile="quick"))


def test_postgres_is_migrated_to_head(pg_url):
    assert current_revision(pg_url) == head_revision() is not None


def test_sqlite_migrates_up_and_down(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    upgrade(url)
    assert current_revision(url) == head_revision()
    from db.session import make_engine

    engine = make_engine(url)
    names = {ix["name"] for ix in inspect(engine).get_indexes("scans")}
    assert {"uq_scans_active", "uq_scans_executed"} <= names
    engine.dispose()
    downgrade(url, "base")
    assert current_revision(url) is None


def test_concurrent_submissions_collapse_onto_the_active_scan(db):
    model = get_or_create_model(db, Target("hub", "org/a"))
    first = submit_scan(db, model, None, KEY)
    second = submit_scan(db, model, "", KEY)
    assert first.created and not second.created and first.scan.id == second.scan.id
    other_rev = submit_scan(db, model, "v1", KEY)
    assert other_rev.created and other_rev.scan.id != first.scan.id


def test_active_index_rejects_a_second_active_row(db):
    model = get_or_create_model(db, Target("hub", "org/b"))
    submit_scan(db, model, None, KEY)
    with pytest.raises(IntegrityError), db.begin_nested():
        db.add(
            Scan(
                model_id=model.id,
                requested_revision="",
                engine_version=KEY.engine_version,
                config_hash=KEY.config_hash,
                profile="quick",
                status="running",
            )
        )
        db.flush()


def test_executed_index_allows_one_succeeded_scan_per_commit(db):
    model = get_or_create_model(db, Target("hub", "org/c"))
    rev = get_or_create_revision(db, model, "a" * 40)
    common = dict(
        model_id=model.id,
        revision_id=rev.id,
        engine_version=KEY.engine_version,
        config_hash=KEY.config_hash,
        profile="quick",
        status="succeeded",
    )
    done = Scan(requested_revision="", **common)
    db.add(done)
    db.flush()
    db.add(Scan(requested_revision="main", reused_from_id=done.id, **common))  # a reuse is fine
    db.flush()
    with pytest.raises(IntegrityError), db.begin_nested():
        db.add(Scan(requested_revision="x", **common))
        db.flush()


def test_pinned_sha_with_a_finished_scan_is_answered_without_a_new_row(db):
    model = get_or_create_model(db, Target("hub", "org/d"))
    sha = "b" * 40
    rev = get_or_create_revision(db, model, sha)
    done = Scan(
        model_id=model.id,
        revision_id=rev.id,
        requested_revision="",
        engine_version=KEY.engine_version,
        config_hash=KEY.config_hash,
        profile="quick",
        status="succeeded",
    )
    db.add(done)
    db.flush()
    sub = submit_scan(db, model, sha, KEY)
    assert not sub.created and sub.scan.id == done.id
    assert db.scalar(select(Revision).where(Revision.sha == sha)).id == rev.id


def test_get_or_create_is_idempotent(db):
    a = get_or_create_model(db, Target("hub", "org/e"), family="bert")
    b = get_or_create_model(db, Target("hub", "org/e"), pipeline_tag="fill-mask")
    assert a.id == b.id and b.family == "bert" and b.pipeline_tag == "fill-mask"
    assert get_or_create_revision(db, a, "c" * 40).id == get_or_create_revision(db, a, "c" * 40).id


def test_classify_target(tmp_path):
    hub_only = Settings(database_url="sqlite://")
    assert classify_target("org/name", hub_only) == Target("hub", "org/name")
    assert classify_target("bert-base-uncased", hub_only).source == "hub"
    with pytest.raises(TargetError, match="PATRONUS_ALLOW_LOCAL_TARGETS"):
        classify_target(str(tmp_path), hub_only)
    local = Settings(database_url="sqlite://", allow_local_targets=True, local_roots=[str(tmp_path)])
    assert classify_target(str(tmp_path), local) == Target("local", str(tmp_path.resolve()))
    for bad in ("a/b/c", "<script>", "org/../x", "", "foo--bar", "org/name.git", "x" * 300, "org/na\x00me"):
        with pytest.raises(TargetError):
            classify_target(bad, hub_only)


def test_local_targets_only_under_the_configured_roots(tmp_path, monkeypatch):
    root, outside = tmp_path / "models", tmp_path / "elsewhere"
    (root / "m").mkdir(parents=True)
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    settings = Settings(database_url="sqlite://", allow_local_targets=True, local_roots=[str(root)], scan_max_size=10)
    assert classify_target(str(root / "m"), settings).source == "local"
    for bad in (str(outside), "/etc", "/proc/self/cwd", str(root / "escape"), str(root / "m" / ".." / "..")):
        with pytest.raises(TargetError) as err:
            classify_target(bad, settings)
        assert err.value.status == 403, bad
    (root / "m" / "big.bin").write_bytes(b"x" * 11)  # over the size bound: refused before anything is hashed
    with pytest.raises(TargetError) as err:
        classify_target(str(root / "m"), settings)
    assert err.value.status == 413
    monkeypatch.chdir(root)  # a folder in the working directory never shadows a hub id
    (root / "org").mkdir()
    (root / "org" / "name").mkdir()
    assert classify_target("org/name", settings) == Target("hub", "org/name")
    with pytest.raises(TargetError, match="PATRONUS_LOCAL_ROOTS"):
        classify_target("/tmp", Settings(database_url="sqlite://", allow_local_targets=True))


def test_status_and_verdict_are_enum_columns(db, pg_engine):
    columns = {c["name"]: c["type"] for c in inspect(pg_engine).get_columns("scans")}
    assert type(columns["status"]).__name__ == "ENUM" and set(columns["status"].enums) == {s.value for s in ScanStatus}
    assert set(columns["verdict"].enums) == {v.value for v in ScanVerdict}
    model_columns = {c["name"]: c["type"] for c in inspect(pg_engine).get_columns("models")}
    assert set(model_columns["latest_verdict"].enums) == {v.value for v in ScanVerdict}
