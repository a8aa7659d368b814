"""The previous release's schema: incidents, order records, command moves,
ratings, outbox and processed events.

Databases made by that release's `create_all` carry no revision; `migrate`
stamps them 0001 (shared/migrations.py).

Revision ID: 0001
Revises:
Create Date: 2026-12-02 06:09:40.540356
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "command_moves",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("incident_id", sa.String(length=64), nullable=False),
        sa.Column("from_center", sa.String(length=32), nullable=False),
        sa.Column("to_center", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    with op.batch_alter_table("command_moves", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_command_moves_incident_id"), ["incident_id"], unique=False
        )

    op.create_table(
        "incidents",
        sa.Column("incident_id", sa.String(length=64), nullable=False),
        sa.Column("center", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("incident_id"),
    )
    op.create_table(
        "order_records",
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("incident_id", sa.String(length=64), nullable=False),
        sa.Column("center", sa.String(length=32), nullable=False),
        sa.Column("department", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("tier", sa.Integer(), nullable=True),
        sa.Column("recipient", sa.String(length=16), nullable=True),
        sa.Column("replaces", sa.String(length=64), nullable=True),
        sa.Column("dispatched_at", UtcDateTime(), nullable=True),
        sa.Column("accept_by", UtcDateTime(), nullable=True),
        sa.Column("arrive_by", UtcDateTime(), nullable=True),
        sa.Column("accepted_at", UtcDateTime(), nullable=True),
        sa.Column("arrived_at", UtcDateTime(), nullable=True),
        sa.Column("reported_at", UtcDateTime(), nullable=True),
        sa.Column("completed_at", UtcDateTime(), nullable=True),
        sa.Column("returned_at", UtcDateTime(), nullable=True),
        sa.Column("accept_overdue_at", UtcDateTime(), nullable=True),
        sa.Column("arrive_overdue_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("order_id"),
    )
    with op.batch_alter_table("order_records", schema=None) as batch_op:
        batch_op.create_index(
            "ix_order_records_center_dispatched", ["center", "dispatched_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_order_records_incident_id"), ["incident_id"], unique=False
        )

    op.create_table(
        "outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("published_at", UtcDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_published_at"), ["published_at"], unique=False)

    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("handler", sa.String(length=128), nullable=False),
        sa.Column("processed_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "handler"),
    )
    op.create_table(
        "ratings",
        sa.Column("incident_id", sa.String(length=64), nullable=False),
        sa.Column("rating", sa.String(length=32), nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("incident_id"),
    )


def downgrade() -> None:
    op.drop_table("ratings")
    op.drop_table("processed_events")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_published_at"))

    op.drop_table("outbox")
    with op.batch_alter_table("order_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_order_records_incident_id"))
        batch_op.drop_index("ix_order_records_center_dispatched")

    op.drop_table("order_records")
    op.drop_table("incidents")
    with op.batch_alter_table("command_moves", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_command_moves_incident_id"))

    op.drop_table("command_moves")
