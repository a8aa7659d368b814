"""Escalation's own database: who commands each incident, how command moved, and
the orders and missed deadlines it watches to decide the next move."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import Id, UtcDateTime, plumbing_tables


class Base(DeclarativeBase):
    pass


class CommandState(Base):
    """One row per incident: the center now in command (指挥中心) and what the
    rules need to know of the incident. Locked while a move is decided."""

    __tablename__ = "incidents"

    incident_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    category: Mapped[str] = mapped_column(String(64))
    town: Mapped[str] = mapped_column(String(32))
    received_by: Mapped[str] = mapped_column(String(32))
    center: Mapped[str] = mapped_column(String(32), index=True)
    # who submitted it: a platform caller reads only its own incidents
    source_system: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # help and emergency incidents' lead orders move command when overdue
    request_type: Mapped[str | None] = mapped_column(String(16), nullable=True)
    crowd_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    casualties: Mapped[int | None] = mapped_column(Integer, nullable=True)
    grade: Mapped[str | None] = mapped_column(String(3), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    moves: Mapped[int] = mapped_column(Integer, default=0)
    command_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class CommandMove(Base):
    """One step of the command chain, oldest first by `seq`.

    `once_key` (`reason@from_center`) makes an automatic rule move command at
    most once per incident and center, however many events or instances ask;
    operators' moves (`manual`, `assign_down`) carry none and may repeat once
    command has come back. `seq` orders the chain and refuses two moves decided
    from the same state.
    """

    __tablename__ = "command_chain"
    __table_args__ = (
        UniqueConstraint("incident_id", "seq", name="uq_chain_seq"),
        UniqueConstraint("incident_id", "once_key", name="uq_chain_once"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.incident_id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    once_key: Mapped[str | None] = mapped_column(String(80), nullable=True)
    reason: Mapped[str] = mapped_column(String(32))
    from_center: Mapped[str] = mapped_column(String(32))
    to_center: Mapped[str] = mapped_column(String(32))
    assist_centers: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of codes
    operator: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    event_id: Mapped[str] = mapped_column(String(64))


class WatchedOrder(Base):
    """What escalation knows of a work order: where it is and when it was met.

    Filled from whichever order event arrives first, since queues are not
    ordered with each other (an acceptance may overtake the overdue notice).
    """

    __tablename__ = "orders"

    order_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    incident_id: Mapped[str] = mapped_column(String(32), index=True)
    center: Mapped[str] = mapped_column(String(32))
    department: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(8))
    accepted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    arrived_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    returned_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class OverdueCheck(Base):
    """A missed deadline waiting out its grace (`overdue_grace`).

    status: `pending` until the timer claims it at `check_at`, then `met` (the
    unit caught up in time), `escalated`, `moot` (command is elsewhere, or the
    order was returned) or `refused` (the center has no parent).
    """

    __tablename__ = "overdue_checks"
    __table_args__ = (UniqueConstraint("order_id", "deadline", name="uq_check_order_deadline"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(32))
    incident_id: Mapped[str] = mapped_column(String(32), index=True)
    center: Mapped[str] = mapped_column(String(32))
    deadline: Mapped[str] = mapped_column(String(8))  # "accept" or "arrive"
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    check_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class ReportDuty(Base):
    """A report the town's center owes (信息报送): the first one (初报) from
    the moment the incident must be reported, the final one (终报) from its
    closing. `answered_at` when a report met it; `overdue_at` when the scan
    announced it missed (once: the update is conditional on both being
    empty). One duty of each kind per incident."""

    __tablename__ = "report_duties"
    __table_args__ = (UniqueConstraint("incident_id", "kind", name="uq_duty_incident_kind"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.incident_id"))
    kind: Mapped[str] = mapped_column(String(8))  # "first" or "final"
    center: Mapped[str] = mapped_column(String(32))  # who owes it: the town's center
    triggers: Mapped[str] = mapped_column(String(64))  # why, comma-separated
    since: Mapped[datetime] = mapped_column(UtcDateTime)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    answered_by: Mapped[str | None] = mapped_column(String(32), nullable=True)  # report id
    overdue_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class InfoReport(Base):
    """A filed report (初报, 续报, 终报): the record, never pruned."""

    __tablename__ = "info_reports"

    report_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.incident_id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    town: Mapped[str] = mapped_column(String(32))
    filed_by: Mapped[str] = mapped_column(String(32))
    operator: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    filed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    event_id: Mapped[str] = mapped_column(String(64))


class ReportReceipt(Base):
    """A report as one receiving center has it: `seq` 1 is the nearest
    ancestor; `acknowledged_at` once that center has signed for it (签收)."""

    __tablename__ = "report_receipts"
    __table_args__ = (UniqueConstraint("report_id", "center", name="uq_receipt_report_center"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    report_id: Mapped[str] = mapped_column(ForeignKey("info_reports.report_id"))
    center: Mapped[str] = mapped_column(String(32), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


outbox, processed_events = plumbing_tables(Base.metadata)
