"""The previous release's schema: command state and chain, watched orders,
overdue checks, outbox and processed events.

Databases made by that release's `create_all` carry no revision; `migrate`
stamps them 0001 (shared/migrations.py).

Revision ID: 0001
Revises:
Create Date: 2026-12-02 06:09:40.022835
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
        "incidents",
        sa.Column("incident_id", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("town", sa.String(length=32), nullable=False),
        sa.Column("received_by", sa.String(length=32), nullable=False),
        sa.Column("center", sa.String(length=32), nullable=False),
        sa.Column("crowd_size", sa.Integer(), nullable=True),
        sa.Column("grade", sa.String(length=3), nullable=True),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("moves", sa.Integer(), nullable=False),
        sa.Column("command_changed_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("incident_id"),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_incidents_center"), ["center"], unique=False)

    op.create_table(
        "orders",
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("incident_id", sa.String(length=32), nullable=False),
        sa.Column("center", sa.String(length=32), nullable=False),
        sa.Column("department", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("accepted_at", UtcDateTime(), nullable=True),
        sa.Column("arrived_at", UtcDateTime(), nullable=True),
        sa.Column("returned_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("order_id"),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_orders_incident_id"), ["incident_id"], unique=False)

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
        "overdue_checks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("incident_id", sa.String(length=32), nullable=False),
        sa.Column("center", sa.String(length=32), nullable=False),
        sa.Column("deadline", sa.String(length=8), nullable=False),
        sa.Column("due_at", UtcDateTime(), nullable=False),
        sa.Column("check_at", UtcDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("resolved_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id", "deadline", name="uq_check_order_deadline"),
    )
    with op.batch_alter_table("overdue_checks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_overdue_checks_check_at"), ["check_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_overdue_checks_incident_id"), ["incident_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_overdue_checks_status"), ["status"], unique=False)

    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("handler", sa.String(length=128), nullable=False),
        sa.Column("processed_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "handler"),
    )
    op.create_table(
        "command_chain",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("incident_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("once_key", sa.String(length=80), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("from_center", sa.String(length=32), nullable=False),
        sa.Column("to_center", sa.String(length=32), nullable=False),
        sa.Column("assist_centers", sa.Text(), nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.incident_id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("incident_id", "once_key", name="uq_chain_once"),
        sa.UniqueConstraint("incident_id", "seq", name="uq_chain_seq"),
    )
    with op.batch_alter_table("command_chain", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_command_chain_incident_id"), ["incident_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("command_chain", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_command_chain_incident_id"))

    op.drop_table("command_chain")
    op.drop_table("processed_events")
    with op.batch_alter_table("overdue_checks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_overdue_checks_status"))
        batch_op.drop_index(batch_op.f("ix_overdue_checks_incident_id"))
        batch_op.drop_index(batch_op.f("ix_overdue_checks_check_at"))

    op.drop_table("overdue_checks")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_published_at"))

    op.drop_table("outbox")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_incident_id"))

    op.drop_table("orders")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incidents_center"))

    op.drop_table("incidents")
