"""Queries and commands on the service tables, shared by the web app, the tasks and the CLI.

Concurrency is settled by the unique indexes in db.models: an insert that loses a race raises IntegrityError inside
a savepoint, and the caller reads the winner's row instead.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, overload

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, contains_eager, joinedload
from sqlalchemy.sql.elements import ColumnElement

from db.models import ACTIVE, Lineage, Model, Revision, Scan, ScanStatus, utcnow

FULL_SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class Target:
    source: str  # hub | local
    name: str  # repo id, or the absolute local path


@dataclass(frozen=True)
class ScanKey:
    """What makes two scans the same scan besides the revision: engine version and config hash."""

    engine_version: str
    config_hash: str
    profile: str
    config: dict[str, Any]

    @classmethod
    def from_config(cls, config) -> ScanKey:  # config: scanner.config.ScanConfig
        from scanner import ENGINE_VERSION

        identity = config.identity()
        return cls(ENGINE_VERSION, config.config_hash(), config.profile, identity)


@overload
def aware(stamp: datetime) -> datetime: ...
@overload
def aware(stamp: None) -> None: ...
def aware(stamp: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; every stamp the service writes is UTC."""
    if stamp is not None and stamp.tzinfo is None:
        return stamp.replace(tzinfo=UTC)
    return stamp


def insert_or_get(session: Session, row, lookup) -> Any:
    """Insert `row` in a savepoint; on a unique violation return `lookup()` (the concurrent winner)."""
    try:
        with session.begin_nested():
            session.add(row)
        return row
    except IntegrityError:
        found = lookup()
        if found is None:
            raise
        return found


def get_or_create_model(session: Session, target: Target, **attrs: Any) -> Model:
    """The models row of a target, created if missing; `attrs` fill columns that are still empty."""

    def lookup() -> Model | None:
        return session.scalar(select(Model).where(Model.source == target.source, Model.name == target.name))

    model = lookup() or insert_or_get(session, Model(source=target.source, name=target.name, **attrs), lookup)
    for key, value in attrs.items():
        if value is not None and getattr(model, key) is None:
            setattr(model, key, value)
    return model


def get_or_create_revision(session: Session, model: Model, sha: str) -> Revision:
    def lookup() -> Revision | None:
        return session.scalar(select(Revision).where(Revision.model_id == model.id, Revision.sha == sha))

    return lookup() or insert_or_get(session, Revision(model_id=model.id, sha=sha), lookup)


def executed_scan(session: Session, revision_id: int, key: ScanKey) -> Scan | None:
    """The succeeded, executed scan of this revision with this engine version and config, if any."""
    return session.scalar(
        select(Scan).where(
            Scan.revision_id == revision_id,
            Scan.engine_version == key.engine_version,
            Scan.config_hash == key.config_hash,
            Scan.status == ScanStatus.SUCCEEDED.value,
            Scan.reused_from_id.is_(None),
        )
    )


def active_scan(session: Session, model_id: int, requested_revision: str, key: ScanKey) -> Scan | None:
    return session.scalar(
        select(Scan).where(
            Scan.model_id == model_id,
            Scan.requested_revision == requested_revision,
            Scan.engine_version == key.engine_version,
            Scan.config_hash == key.config_hash,
            Scan.status.in_(ACTIVE),
        )
    )


@dataclass
class Submission:
    scan: Scan
    created: bool  # False: collapsed onto an active scan, or reused a finished one (nothing to enqueue)


def submit_scan(
    session: Session, model: Model, revision: str | None, key: ScanKey, origin: str = "api", attempts: int = 5
) -> Submission:
    """A queued scan row for (model, revision, key), or the existing one it collapses onto. Caller commits.

    A pinned full sha that already has an executed scan is answered with that scan. Otherwise an active scan of
    the same (model, requested revision, key) is returned; else a new queued row with a fresh Celery task id.
    """
    requested = (revision or "").strip()
    session.flush()
    if FULL_SHA.match(requested):
        rev = session.scalar(select(Revision).where(Revision.model_id == model.id, Revision.sha == requested))
        done = executed_scan(session, rev.id, key) if rev else None
        if done is not None:
            return Submission(done, False)
    for _ in range(attempts):
        existing = active_scan(session, model.id, requested, key)
        if existing is not None:
            return Submission(existing, False)
        scan = Scan(
            model_id=model.id,
            requested_revision=requested,
            status=ScanStatus.QUEUED.value,
            origin=origin,
            engine_version=key.engine_version,
            config_hash=key.config_hash,
            profile=key.profile,
            config=key.config,
            celery_task_id=str(uuid.uuid4()),
            queued_at=utcnow(),
            attempts=0,
        )
        try:
            with session.begin_nested():
                session.add(scan)
            return Submission(scan, True)
        except IntegrityError:
            continue  # a concurrent request inserted the active row first: read it on the next turn
    raise RuntimeError("could not submit the scan: the active row kept changing")


def mark_enqueued(session: Session, scan_id: int) -> None:
    scan = session.get(Scan, scan_id)
    if scan is not None and scan.enqueued_at is None:
        scan.enqueued_at = utcnow()


def find_model(session: Session, name: str) -> Model | None:
    """A model by repo id or local path (hub first)."""
    rows = session.scalars(select(Model).where(Model.name == name).order_by(Model.source)).all()
    return rows[0] if rows else None


def report_of(scan: Scan) -> dict[str, Any] | None:
    """The canonical JSON report of a scan (a reused scan answers with its original's report)."""
    if scan.report is not None:
        return scan.report
    return scan.reused_from.report if scan.reused_from is not None else None


def verdict_for(session: Session, model: Model, sha: str | None, engine_version: str) -> Scan | None:
    """The newest succeeded scan of a model (at `sha` when given), current engine version first."""
    query = (
        select(Scan)
        .join(Revision, Scan.revision_id == Revision.id)
        .where(Scan.model_id == model.id, Scan.status == ScanStatus.SUCCEEDED.value)
    )
    if sha:
        query = query.where(Revision.sha == sha)
    query = query.order_by((Scan.engine_version == engine_version).desc(), Scan.finished_at.desc(), Scan.id.desc())
    return session.scalars(query.limit(1)).first()


def failed_for(session: Session, model: Model, sha: str | None) -> Scan | None:
    """The newest failed scan of a model (of commit `sha` when given)."""
    query = select(Scan).where(Scan.model_id == model.id, Scan.status == ScanStatus.FAILED.value)
    if sha:
        query = query.join(Revision, Scan.revision_id == Revision.id).where(Revision.sha == sha)
    return session.scalars(query.order_by(Scan.id.desc()).limit(1)).first()


def active_for(session: Session, model: Model, sha: str | None) -> Scan | None:
    """An active scan of a model that may answer `sha` (pinned to it, or not yet resolved)."""
    query = select(Scan).where(Scan.model_id == model.id, Scan.status.in_(ACTIVE))
    if sha:
        query = query.outerjoin(Revision, Scan.revision_id == Revision.id).where(
            or_(
                Revision.sha == sha,
                Scan.requested_revision == sha,
                and_(Scan.revision_id.is_(None), Scan.requested_revision == ""),
            )
        )
    return session.scalars(query.order_by(Scan.id.desc()).limit(1)).first()


@dataclass
class ScanFilter:
    verdict: str | None = None
    family: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    model: str | None = None
    public_only: bool = False  # the reader may see public hub models only
    unresolved_public: bool = True  # hub models not resolved yet count as public (the server holds no hub token)


def public_clause(unresolved_public: bool):
    """SQL: the model is a public hub model (see web.access for the access model)."""
    visible: ColumnElement[bool] = Model.private.is_(False)
    if unresolved_public:
        visible = or_(visible, Model.private.is_(None))
    return and_(Model.source == "hub", visible)


def list_scans(session: Session, flt: ScanFilter, page: int, per_page: int) -> tuple[list[Scan], int]:
    """One page of scans, newest first, and the total count under the filter."""
    query = select(Scan).join(Model, Scan.model_id == Model.id)
    if flt.verdict:
        query = query.where(Scan.verdict == flt.verdict)
    if flt.family:
        query = query.where(Model.family == flt.family)
    if flt.status:
        query = query.where(Scan.status == flt.status)
    if flt.since:
        query = query.where(Scan.queued_at >= flt.since)
    if flt.until:
        query = query.where(Scan.queued_at < flt.until)
    if flt.model:
        query = query.where(Model.name.contains(flt.model, autoescape=True))
    if flt.public_only:
        query = query.where(public_clause(flt.unresolved_public))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.options(contains_eager(Scan.model), joinedload(Scan.revision))
        .order_by(Scan.queued_at.desc(), Scan.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return list(rows), total


def lineage_of(
    session: Session, model: Model, limit: int = 200
) -> tuple[list[tuple[Lineage, Model | None]], list[Lineage]]:
    """(bases this model derives from with their rows if known, derived models that name this one as base), at
    most `limit` of each (pages stay fast whatever the cards say)."""
    bases = []
    for link in session.scalars(select(Lineage).where(Lineage.model_id == model.id).order_by(Lineage.id).limit(limit)):
        base = link.base_model or session.scalar(
            select(Model).where(Model.source == "hub", Model.name == link.base_name)
        )
        bases.append((link, base))
    names_me = Lineage.base_model_id == model.id
    if model.source == "hub":
        names_me = or_(names_me, Lineage.base_name == model.name)
    derived = session.scalars(select(Lineage).where(names_me).order_by(Lineage.id).limit(limit)).all()
    return bases, list(derived)
