"""Dispatch keeps what it needs to route and follow command (request type,
the receiving center, source system, crowd, casualties, grade); stored answers
of mutating calls (`rpc_requests`); processed events indexed by time for
retention. Issue 11 (the case under the operators' control): the incident's
title and status (open or closed), reply deadlines for requests that need no
one on scene (no arrival deadline then), the duty officers an order reached,
urges, and the duty rosters.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 06:09:49.998707
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rpc_requests",
        sa.Column("caller", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("caller", "request_id"),
    )
    with op.batch_alter_table("rpc_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rpc_requests_created_at"), ["created_at"], unique=False
        )

    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_type", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("received_by", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("source_system", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("crowd_size", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("casualties", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("grade", sa.String(length=3), nullable=True))
    # The previous release kept neither: its incidents are taken as help
    # requests (求助), received by the center that commands them.
    op.execute("UPDATE incidents SET request_type = 'help' WHERE request_type IS NULL")
    op.execute("UPDATE incidents SET received_by = center WHERE received_by IS NULL")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.alter_column("request_type", existing_type=sa.String(length=16), nullable=False)
        batch_op.alter_column("received_by", existing_type=sa.String(length=32), nullable=False)

    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_processed_events_processed_at"), ["processed_at"], unique=False
        )
    _case_control_upgrade()


def _case_control_upgrade() -> None:
    op.create_table(
        "duty_rosters",
        sa.Column("center", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("leader", sa.JSON(), nullable=False),
        sa.Column("officers", sa.JSON(), nullable=False),
        sa.Column("set_by", sa.String(length=64), nullable=False),
        sa.Column("set_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("center", "day"),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("title", sa.String(length=200), nullable=True))
        # Every incident of the previous release is open: it had no closing.
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="open")
        )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.alter_column("status", existing_type=sa.String(length=16), server_default=None)

    with op.batch_alter_table("work_orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reply_by", UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column("reply_overdue_at", UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column("duty_officers", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("urges", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch_op.alter_column("arrive_by", existing_type=UtcDateTime(), nullable=True)
    with op.batch_alter_table("work_orders", schema=None) as batch_op:
        batch_op.alter_column("urges", existing_type=sa.Integer(), server_default=None)


def _case_control_downgrade() -> None:
    # Orders without an arrival deadline (replies) cannot go back: the
    # previous release needs one, so they get their reply deadline.
    op.execute("UPDATE work_orders SET arrive_by = reply_by WHERE arrive_by IS NULL")
    with op.batch_alter_table("work_orders", schema=None) as batch_op:
        batch_op.alter_column("arrive_by", existing_type=UtcDateTime(), nullable=False)
        batch_op.drop_column("urges")
        batch_op.drop_column("duty_officers")
        batch_op.drop_column("reply_overdue_at")
        batch_op.drop_column("reply_by")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("status")
        batch_op.drop_column("title")
    op.drop_table("duty_rosters")


def downgrade() -> None:
    _case_control_downgrade()
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_processed_events_processed_at"))

    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("grade")
        batch_op.drop_column("casualties")
        batch_op.drop_column("crowd_size")
        batch_op.drop_column("source_system")
        batch_op.drop_column("received_by")
        batch_op.drop_column("request_type")

    with op.batch_alter_table("rpc_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rpc_requests_created_at"))

    op.drop_table("rpc_requests")
