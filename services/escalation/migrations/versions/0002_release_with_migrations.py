"""Escalation keeps the incident's source system (a platform caller reads only
its own incidents); stored answers of mutating calls (`rpc_requests`);
processed events indexed by time for retention.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 06:09:50.522191
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
        batch_op.add_column(sa.Column("source_system", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("request_type", sa.String(length=16), nullable=True))
    # incidents of the previous release: every overdue order moved command then
    op.execute("UPDATE incidents SET request_type = 'help'")

    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_processed_events_processed_at"), ["processed_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_processed_events_processed_at"))

    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("request_type")
        batch_op.drop_column("source_system")

    with op.batch_alter_table("rpc_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rpc_requests_created_at"))

    op.drop_table("rpc_requests")
