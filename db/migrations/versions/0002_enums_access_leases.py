"""Statuses and verdicts as enum columns (native enums on Postgres), the access model (models.private), the
queued-row lease evidence (scans.claimed_at) and per-token quotas (scans.submitted_by).

Revision ID: 0002
Revises: 0001

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = ("queued", "running", "succeeded", "failed")
VERDICTS = ("backdoored", "clean", "inconclusive", "error")
ACTIVE_SQL = "status IN ('queued', 'running')"
EXECUTED_SQL = "status = 'succeeded' AND reused_from_id IS NULL"


def _partial_indexes(create: bool) -> None:
    """The partial unique indexes compare `status` with literals: rebuilt around a change of its type."""
    if create:
        op.create_index(
            "uq_scans_active",
            "scans",
            ["model_id", "requested_revision", "engine_version", "config_hash"],
            unique=True,
            postgresql_where=sa.text(ACTIVE_SQL),
        )
        op.create_index(
            "uq_scans_executed",
            "scans",
            ["revision_id", "engine_version", "config_hash"],
            unique=True,
            postgresql_where=sa.text(EXECUTED_SQL),
        )
    else:
        op.drop_index("uq_scans_active", table_name="scans")
        op.drop_index("uq_scans_executed", table_name="scans")


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("private", sa.Boolean(), nullable=True))
    with op.batch_alter_table("scans") as batch:
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("submitted_by", sa.String(length=16), nullable=True))
        batch.create_index("ix_scans_submitted_by_queued_at", ["submitted_by", "queued_at"], unique=False)
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite: the values stay VARCHAR (0001's CHECK on status still holds)
    status = sa.Enum(*STATUSES, name="scan_status")
    verdict = sa.Enum(*VERDICTS, name="scan_verdict")
    status.create(op.get_bind())
    verdict.create(op.get_bind())
    _partial_indexes(create=False)
    op.drop_constraint(op.f("ck_scans_status"), "scans", type_="check")
    op.execute("ALTER TABLE scans ALTER COLUMN status TYPE scan_status USING status::scan_status")
    op.execute("ALTER TABLE scans ALTER COLUMN verdict TYPE scan_verdict USING verdict::scan_verdict")
    op.execute("ALTER TABLE models ALTER COLUMN latest_verdict TYPE scan_verdict USING latest_verdict::scan_verdict")
    _partial_indexes(create=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _partial_indexes(create=False)
        op.execute("ALTER TABLE models ALTER COLUMN latest_verdict TYPE VARCHAR(16) USING latest_verdict::text")
        op.execute("ALTER TABLE scans ALTER COLUMN verdict TYPE VARCHAR(16) USING verdict::text")
        op.execute("ALTER TABLE scans ALTER COLUMN status TYPE VARCHAR(16) USING status::text")
        op.create_check_constraint(
            op.f("ck_scans_status"), "scans", "status IN ('queued', 'running', 'succeeded', 'failed')"
        )
        _partial_indexes(create=True)
        sa.Enum(name="scan_verdict").drop(op.get_bind())
        sa.Enum(name="scan_status").drop(op.get_bind())
    with op.batch_alter_table("scans") as batch:
        batch.drop_index("ix_scans_submitted_by_queued_at")
        batch.drop_column("submitted_by")
        batch.drop_column("claimed_at")
    with op.batch_alter_table("models") as batch:
        batch.drop_column("private")
