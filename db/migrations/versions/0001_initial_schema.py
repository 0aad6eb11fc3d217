"""Initial schema: models, revisions, scans (partial unique indexes for reuse and collapse), findings,
lineage, discovery cursors. Runs on Postgres and SQLite (batch mode).

Revision ID: 0001
Revises: (none)

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "discovery_cursor",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("covered", JSON_TYPE, nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_listed", sa.Integer(), nullable=False),
        sa.Column("last_run_enqueued", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_discovery_cursor")),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("family", sa.String(length=32), nullable=True),
        sa.Column("pipeline_tag", sa.String(length=64), nullable=True),
        sa.Column("hub_created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("latest_verdict", sa.String(length=16), nullable=True),
        sa.Column("latest_severity", sa.String(length=16), nullable=True),
        sa.Column("latest_scan_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("source", "name", name=op.f("uq_models_source_name")),
    )
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_models_latest_verdict"), ["latest_verdict"], unique=False)

    op.create_table(
        "lineage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("base_name", sa.String(length=512), nullable=False),
        sa.Column("base_model_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["base_model_id"], ["models.id"], name=op.f("fk_lineage_base_model_id_models"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_lineage_model_id_models"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lineage")),
        sa.UniqueConstraint("model_id", "base_name", name=op.f("uq_lineage_model_id_base_name")),
    )
    with op.batch_alter_table("lineage", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lineage_base_model_id"), ["base_model_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_lineage_base_name"), ["base_name"], unique=False)
        batch_op.create_index(batch_op.f("ix_lineage_model_id"), ["model_id"], unique=False)

    op.create_table(
        "revisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("sha", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_revisions_model_id_models"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revisions")),
        sa.UniqueConstraint("model_id", "sha", name=op.f("uq_revisions_model_id_sha")),
    )
    with op.batch_alter_table("revisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_revisions_model_id"), ["model_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_revisions_sha"), ["sha"], unique=False)

    op.create_table(
        "scans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("revision_id", sa.Integer(), nullable=True),
        sa.Column("requested_revision", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("engine_version", sa.String(length=16), nullable=False),
        sa.Column("config_hash", sa.String(length=32), nullable=False),
        sa.Column("profile", sa.String(length=16), nullable=False),
        sa.Column("config", JSON_TYPE, nullable=True),
        sa.Column("seed_triggers", JSON_TYPE, nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("verdict", sa.String(length=16), nullable=True),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("severity", sa.String(length=16), nullable=True),
        sa.Column("device", sa.String(length=32), nullable=True),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("stage", sa.String(length=32), nullable=True),
        sa.Column("fraction", sa.Float(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claim_token", sa.String(length=36), nullable=True),
        sa.Column("celery_task_id", sa.String(length=64), nullable=True),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("reused_from_id", sa.Integer(), nullable=True),
        sa.Column("report", JSON_TYPE, nullable=True),
        sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')", name=op.f("ck_scans_status")),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name=op.f("fk_scans_model_id_models"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["reused_from_id"], ["scans.id"], name=op.f("fk_scans_reused_from_id_scans"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["revision_id"], ["revisions.id"], name=op.f("fk_scans_revision_id_revisions"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scans")),
    )
    with op.batch_alter_table("scans", schema=None) as batch_op:
        batch_op.create_index("ix_scans_finished_at", ["finished_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_scans_model_id"), ["model_id"], unique=False)
        batch_op.create_index("ix_scans_queued_at", ["queued_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_scans_revision_id"), ["revision_id"], unique=False)
        batch_op.create_index("ix_scans_status_heartbeat_at", ["status", "heartbeat_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_scans_verdict"), ["verdict"], unique=False)
        batch_op.create_index(
            "uq_scans_active",
            ["model_id", "requested_revision", "engine_version", "config_hash"],
            unique=True,
            postgresql_where=sa.text("status IN ('queued', 'running')"),
            sqlite_where=sa.text("status IN ('queued', 'running')"),
        )
        batch_op.create_index(
            "uq_scans_executed",
            ["revision_id", "engine_version", "config_hash"],
            unique=True,
            postgresql_where=sa.text("status = 'succeeded' AND reused_from_id IS NULL"),
            sqlite_where=sa.text("status = 'succeeded' AND reused_from_id IS NULL"),
        )

    op.create_table(
        "findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scan_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("p_value", sa.Float(), nullable=True),
        sa.Column("detail", JSON_TYPE, nullable=True),
        sa.ForeignKeyConstraint(["scan_id"], ["scans.id"], name=op.f("fk_findings_scan_id_scans"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_findings")),
    )
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_findings_scan_id"), ["scan_id"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_findings_scan_id"))

    op.drop_table("findings")
    with op.batch_alter_table("scans", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_scans_executed",
            postgresql_where=sa.text("status = 'succeeded' AND reused_from_id IS NULL"),
            sqlite_where=sa.text("status = 'succeeded' AND reused_from_id IS NULL"),
        )
        batch_op.drop_index(
            "uq_scans_active",
            postgresql_where=sa.text("status IN ('queued', 'running')"),
            sqlite_where=sa.text("status IN ('queued', 'running')"),
        )
        batch_op.drop_index(batch_op.f("ix_scans_verdict"))
        batch_op.drop_index("ix_scans_status_heartbeat_at")
        batch_op.drop_index(batch_op.f("ix_scans_revision_id"))
        batch_op.drop_index("ix_scans_queued_at")
        batch_op.drop_index(batch_op.f("ix_scans_model_id"))
        batch_op.drop_index("ix_scans_finished_at")

    op.drop_table("scans")
    with op.batch_alter_table("revisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_revisions_sha"))
        batch_op.drop_index(batch_op.f("ix_revisions_model_id"))

    op.drop_table("revisions")
    with op.batch_alter_table("lineage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lineage_model_id"))
        batch_op.drop_index(batch_op.f("ix_lineage_base_name"))
        batch_op.drop_index(batch_op.f("ix_lineage_base_model_id"))

    op.drop_table("lineage")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_models_latest_verdict"))

    op.drop_table("models")
    op.drop_table("discovery_cursor")
