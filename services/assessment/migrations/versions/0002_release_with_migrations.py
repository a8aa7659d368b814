"""The dashboards' gauges computed once for all instances (`gauge_refresh`,
`gauge_values`) over an index of dispatch times; stored answers of mutating
calls (`rpc_requests`); processed events indexed by time for retention; the
incident's town (callers' rights); the counts of each department per day
(`day_counts`, with `counted_incidents` to lock an incident while its share
changes), counted from the records already kept; an order's cancellation and
its urges (`order_records.cancelled_at`, `urges`).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 06:09:51.045928
"""

import os

import sqlalchemy as sa
from alembic import op

from shared.db import UtcDateTime
from shared.network import load_network

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gauge_refresh",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("refreshed_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "gauge_values",
        sa.Column("center", sa.String(length=32), nullable=False),
        sa.Column("department", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("satisfaction", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("center", "department"),
    )
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

    with op.batch_alter_table("order_records", schema=None) as batch_op:
        batch_op.create_index("ix_order_records_dispatched", ["dispatched_at"], unique=False)
        # cancellations and urges (催办), from dispatch's new events
        batch_op.add_column(sa.Column("cancelled_at", UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column("urges", sa.Integer(), server_default="0", nullable=False))

    # the incident's town, for callers' rights; unknown for incidents before it
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("town", sa.String(length=32), nullable=True))

    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_processed_events_processed_at"), ["processed_at"], unique=False
        )

    op.create_table(
        "day_counts",
        sa.Column("center", sa.String(length=32), nullable=False),
        sa.Column("department", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("incidents", sa.Integer(), nullable=False),
        sa.Column("accept_judged", sa.Integer(), nullable=False),
        sa.Column("accepted_on_time", sa.Integer(), nullable=False),
        sa.Column("arrive_judged", sa.Integer(), nullable=False),
        sa.Column("arrived_on_time", sa.Integer(), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.Column("returns", sa.Integer(), nullable=False),
        sa.Column("overdue", sa.Integer(), nullable=False),
        sa.Column("escalated", sa.Integer(), nullable=False),
        sa.Column("urges", sa.Integer(), nullable=False),
        sa.Column("rated_satisfied", sa.Integer(), nullable=False),
        sa.Column("rated_basically_satisfied", sa.Integer(), nullable=False),
        sa.Column("rated_dissatisfied", sa.Integer(), nullable=False),
        sa.Column("accept_timed", sa.Integer(), nullable=False),
        sa.Column("accept_time_us", sa.BigInteger(), nullable=False),
        sa.Column("arrive_timed", sa.Integer(), nullable=False),
        sa.Column("arrive_time_us", sa.BigInteger(), nullable=False),
        sa.Column("complete_timed", sa.Integer(), nullable=False),
        sa.Column("complete_time_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("center", "department", "day"),
    )
    with op.batch_alter_table("day_counts", schema=None) as batch_op:
        batch_op.create_index("ix_day_counts_day", ["day"], unique=False)
    op.create_table(
        "counted_incidents",
        sa.Column("incident_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("incident_id"),
    )
    _count_the_records_kept()


def _count_the_records_kept() -> None:
    """The one-off backfill: day_counts from the records, ratings and moves
    of the previous release, by the network's calendar (`LINKAGE_NETWORK`,
    as the service reads it). It runs this release's store code, which reads
    the order_records columns of this revision: a later revision that changes
    them must give this one a copy of the function as it is now."""
    from services.assessment.store import rebuild_day_counts

    connection = op.get_bind()
    if connection.execute(sa.text("SELECT 1 FROM order_records LIMIT 1")).first() is None:
        return  # nothing kept yet
    rebuild_day_counts(connection, load_network(os.environ.get("LINKAGE_NETWORK")).timezone)


def downgrade() -> None:
    op.drop_table("counted_incidents")
    with op.batch_alter_table("day_counts", schema=None) as batch_op:
        batch_op.drop_index("ix_day_counts_day")
    op.drop_table("day_counts")

    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("town")

    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_processed_events_processed_at"))

    with op.batch_alter_table("order_records", schema=None) as batch_op:
        batch_op.drop_column("urges")
        batch_op.drop_column("cancelled_at")
        batch_op.drop_index("ix_order_records_dispatched")

    with op.batch_alter_table("rpc_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rpc_requests_created_at"))

    op.drop_table("rpc_requests")
    op.drop_table("gauge_values")
    op.drop_table("gauge_refresh")
