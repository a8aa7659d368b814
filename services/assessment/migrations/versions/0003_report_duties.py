"""The information reports each town center owed (`report_duties`: first and
final, due when, late or not), for the centers' ranking and the notice; an
index on (center, due_at) so a window's duties are read without the rest.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 09:34:07.920814
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_duties",
        sa.Column("incident_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("center", sa.String(length=32), nullable=False),
        sa.Column("due_at", UtcDateTime(), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("incident_id", "kind"),
    )
    with op.batch_alter_table("report_duties", schema=None) as batch_op:
        batch_op.create_index("ix_report_duties_center_due", ["center", "due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("report_duties", schema=None) as batch_op:
        batch_op.drop_index("ix_report_duties_center_due")

    op.drop_table("report_duties")
