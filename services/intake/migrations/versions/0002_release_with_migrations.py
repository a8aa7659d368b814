"""Who saw reporters' personal data (`personal_data_access`), stored answers
of mutating calls (`rpc_requests`), and processed events indexed by time for
retention; where a transferred incident went (`incidents.transferred_to`); when and
how a case was closed (`closed_at`, `summary`).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 06:09:49.483713
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
        "personal_data_access",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("sub", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("incident_id", sa.String(length=32), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("personal_data_access", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_personal_data_access_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_personal_data_access_incident_id"), ["incident_id"], unique=False
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

    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_processed_events_processed_at"), ["processed_at"], unique=False
        )

    # where a category's incidents are handed (110, 信访...) instead of dispatched
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("transferred_to", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("closed_at", UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column("summary", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("summary")
        batch_op.drop_column("closed_at")
        batch_op.drop_column("transferred_to")

    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_processed_events_processed_at"))

    with op.batch_alter_table("rpc_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rpc_requests_created_at"))

    op.drop_table("rpc_requests")
    with op.batch_alter_table("personal_data_access", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_personal_data_access_incident_id"))
        batch_op.drop_index(batch_op.f("ix_personal_data_access_at"))

    op.drop_table("personal_data_access")
