"""Information reporting (信息报送): the duties to report, the reports filed
and their receipts by the centers above; incidents keep their casualty count
(a reporting trigger).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 09:33:11.549838
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
        "info_reports",
        sa.Column("report_id", sa.String(length=32), nullable=False),
        sa.Column("incident_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("town", sa.String(length=32), nullable=False),
        sa.Column("filed_by", sa.String(length=32), nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("filed_at", UtcDateTime(), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.incident_id"],
        ),
        sa.PrimaryKeyConstraint("report_id"),
    )
    with op.batch_alter_table("info_reports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_info_reports_incident_id"), ["incident_id"], unique=False
        )

    op.create_table(
        "report_duties",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("incident_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("center", sa.String(length=32), nullable=False),
        sa.Column("triggers", sa.String(length=64), nullable=False),
        sa.Column("since", UtcDateTime(), nullable=False),
        sa.Column("due_at", UtcDateTime(), nullable=False),
        sa.Column("answered_at", UtcDateTime(), nullable=True),
        sa.Column("answered_by", sa.String(length=32), nullable=True),
        sa.Column("overdue_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.incident_id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("incident_id", "kind", name="uq_duty_incident_kind"),
    )
    with op.batch_alter_table("report_duties", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_report_duties_due_at"), ["due_at"], unique=False)

    op.create_table(
        "report_receipts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("report_id", sa.String(length=32), nullable=False),
        sa.Column("center", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("acknowledged_at", UtcDateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["info_reports.report_id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("report_id", "center", name="uq_receipt_report_center"),
    )
    with op.batch_alter_table("report_receipts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_report_receipts_center"), ["center"], unique=False)

    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("casualties", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("casualties")

    with op.batch_alter_table("report_receipts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_receipts_center"))

    op.drop_table("report_receipts")
    with op.batch_alter_table("report_duties", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_duties_due_at"))

    op.drop_table("report_duties")
    with op.batch_alter_table("info_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_info_reports_incident_id"))

    op.drop_table("info_reports")
