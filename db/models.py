"""SQLAlchemy 2 typed models: models, revisions, scans, findings, lineage, discovery cursors.

Reuse and collapse are enforced by the database, not by code paths:
- `uq_scans_active`: at most one queued/running scan per (model, requested revision, engine version, config hash),
  so concurrent submissions collapse onto one row;
- `uq_scans_executed`: at most one executed (not reused) succeeded scan per (revision sha, engine version,
  config hash), so a finished scan is reused, never redone.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSONType, list[Any]: JSONType}


class ScanStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ScanVerdict(enum.StrEnum):
    """The verdict of a scan (the report's `verdict`)."""

    BACKDOORED = "backdoored"
    CLEAN = "clean"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"


def _enum_type(cls: type[enum.StrEnum], name: str) -> Enum:
    """A native Postgres enum (VARCHAR + CHECK on SQLite) storing the members' values."""
    return Enum(
        cls,
        name=name,
        values_callable=lambda members: [m.value for m in members],
        create_constraint=False,
        validate_strings=True,
        length=16,
    )


STATUS_TYPE = _enum_type(ScanStatus, "scan_status")
VERDICT_TYPE = _enum_type(ScanVerdict, "scan_verdict")

ACTIVE = (ScanStatus.QUEUED.value, ScanStatus.RUNNING.value)
_ACTIVE_SQL = "status IN ('queued', 'running')"
_EXECUTED_SQL = "status = 'succeeded' AND reused_from_id IS NULL"


class Model(Base):
    """A model repository on the hub (`source='hub'`, name = repo id) or a local directory (name = path)."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("source", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(8), default="hub")
    name: Mapped[str] = mapped_column(String(512))
    family: Mapped[str | None] = mapped_column(String(32))
    pipeline_tag: Mapped[str | None] = mapped_column(String(64))
    hub_created_at: Mapped[datetime | None]
    # access model: True = private or gated on the hub (fetched with the server's token), or a local folder;
    # False = public on the hub; None = not resolved yet (public only when the server holds no hub token)
    private: Mapped[bool | None] = mapped_column(Boolean)
    latest_verdict: Mapped[ScanVerdict | None] = mapped_column(VERDICT_TYPE, index=True)
    latest_severity: Mapped[str | None] = mapped_column(String(16))
    latest_scan_id: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    revisions: Mapped[list[Revision]] = relationship(back_populates="model", order_by="Revision.id.desc()")
    scans: Mapped[list[Scan]] = relationship(back_populates="model", order_by="Scan.id.desc()")


class Revision(Base):
    """One commit of a model: the hub commit sha, or the content hash of a local directory."""

    __tablename__ = "revisions"
    __table_args__ = (UniqueConstraint("model_id", "sha"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    sha: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    model: Mapped[Model] = relationship(back_populates="revisions")


class Scan(Base):
    """One requested scan: its lifecycle, live progress, and (when done) the canonical JSON report."""

    __tablename__ = "scans"
    __table_args__ = (
        Index(
            "uq_scans_active",
            "model_id",
            "requested_revision",
            "engine_version",
            "config_hash",
            unique=True,
            postgresql_where=text(_ACTIVE_SQL),
            sqlite_where=text(_ACTIVE_SQL),
        ),
        Index(
            "uq_scans_executed",
            "revision_id",
            "engine_version",
            "config_hash",
            unique=True,
            postgresql_where=text(_EXECUTED_SQL),
            sqlite_where=text(_EXECUTED_SQL),
        ),
        Index("ix_scans_status_heartbeat_at", "status", "heartbeat_at"),
        Index("ix_scans_finished_at", "finished_at"),
        Index("ix_scans_queued_at", "queued_at"),
        Index("ix_scans_submitted_by_queued_at", "submitted_by", "queued_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    revision_id: Mapped[int | None] = mapped_column(ForeignKey("revisions.id", ondelete="SET NULL"), index=True)
    requested_revision: Mapped[str] = mapped_column(String(255), default="")  # "" = default branch
    status: Mapped[ScanStatus] = mapped_column(STATUS_TYPE, default=ScanStatus.QUEUED)
    origin: Mapped[str] = mapped_column(String(16), default="api")  # api | discovery | lineage | cli
    engine_version: Mapped[str] = mapped_column(String(16))
    config_hash: Mapped[str] = mapped_column(String(32))
    profile: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any] | None]
    seed_triggers: Mapped[list[Any] | None]  # lineage: the base's recovered triggers, tried first

    queued_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    seconds: Mapped[float | None] = mapped_column(Float)

    verdict: Mapped[ScanVerdict | None] = mapped_column(VERDICT_TYPE, index=True)
    probability: Mapped[float | None] = mapped_column(Float)
    severity: Mapped[str | None] = mapped_column(String(16))
    device: Mapped[str | None] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)

    stage: Mapped[str | None] = mapped_column(String(32))
    fraction: Mapped[float | None] = mapped_column(Float)
    message: Mapped[str | None] = mapped_column(Text)
    heartbeat_at: Mapped[datetime | None]
    claim_token: Mapped[str | None] = mapped_column(String(36))
    celery_task_id: Mapped[str | None] = mapped_column(String(64))
    enqueued_at: Mapped[datetime | None]  # when the newest message is due (sent, or its retry countdown ends)
    claimed_at: Mapped[datetime | None]  # the newest claim by a worker (the reaper's evidence that the queue moved)
    submitted_by: Mapped[str | None] = mapped_column(String(16))  # fingerprint of the API token (quotas)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    reused_from_id: Mapped[int | None] = mapped_column(ForeignKey("scans.id", ondelete="SET NULL"))

    report: Mapped[dict[str, Any] | None] = mapped_column(deferred=True)  # loaded only when read

    model: Mapped[Model] = relationship(back_populates="scans")
    revision: Mapped[Revision | None] = relationship()
    reused_from: Mapped[Scan | None] = relationship(remote_side=[id])
    findings: Mapped[list[Finding]] = relationship(
        back_populates="scan", cascade="all, delete-orphan", order_by="Finding.id"
    )

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


class Finding(Base):
    """One finding of an executed scan: a recovered trigger, or a weight file that is not safe."""

    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(primary_key=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # trigger | serialization
    text: Mapped[str] = mapped_column(Text)  # trigger text, or the file path
    severity: Mapped[str | None] = mapped_column(String(16))
    score: Mapped[float | None] = mapped_column(Float)
    p_value: Mapped[float | None] = mapped_column(Float)
    detail: Mapped[dict[str, Any] | None]

    scan: Mapped[Scan] = relationship(back_populates="findings")


class Lineage(Base):
    """A derived model's card names `base_name` as its base model (base_model_id once the base is known)."""

    __tablename__ = "lineage"
    __table_args__ = (UniqueConstraint("model_id", "base_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    base_name: Mapped[str] = mapped_column(String(512), index=True)
    base_model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"), index=True)
    source: Mapped[str] = mapped_column(String(16), default="card")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    model: Mapped[Model] = relationship(foreign_keys=[model_id])
    base_model: Mapped[Model | None] = relationship(foreign_keys=[base_model_id])


class DiscoveryCursor(Base):
    """How far discovery has read one listing: the created_at ranges already covered, newest first."""

    __tablename__ = "discovery_cursor"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)  # e.g. "hub:bert"
    covered: Mapped[list[Any]] = mapped_column(default=list)  # [[low_iso, high_iso], ...] merged, descending
    last_run_at: Mapped[datetime | None]
    last_run_listed: Mapped[int] = mapped_column(Integer, default=0)
    last_run_enqueued: Mapped[int] = mapped_column(Integer, default=0)
