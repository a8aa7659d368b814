"""Assessment's own database: order records, incidents, command moves, ratings.

Every column but the keys is nullable where an event may not have arrived yet:
a row is started by whichever event comes first (records.py explains why).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import UtcDateTime, plumbing_tables


class Base(DeclarativeBase):
    pass


class AssessedIncident(Base):
    """An incident as intake announced it; a rating needs one."""

    __tablename__ = "incidents"

    incident_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    center: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)


class OrderRecordRow(Base):
    """考核记录: one work order's facts (see records.OrderRecord)."""

    __tablename__ = "order_records"
    __table_args__ = (Index("ix_order_records_center_dispatched", "center", "dispatched_at"),)

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    incident_id: Mapped[str] = mapped_column(String(64), index=True)
    center: Mapped[str] = mapped_column(String(32))
    department: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(8))
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tier: Mapped[int | None] = mapped_column(Integer, nullable=True)
    recipient: Mapped[str | None] = mapped_column(String(16), nullable=True)
    replaces: Mapped[str | None] = mapped_column(String(64), nullable=True)
    dispatched_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    accept_by: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    arrive_by: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    accepted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    arrived_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    reported_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    returned_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    accept_overdue_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    arrive_overdue_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class CommandMoveRow(Base):
    """One `incident_escalated` or `incident_assigned_down`, keyed by its event."""

    __tablename__ = "command_moves"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    incident_id: Mapped[str] = mapped_column(String(64), index=True)
    from_center: Mapped[str] = mapped_column(String(32))
    to_center: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class RatingRow(Base):
    """群众满意度回访: the current rating of an incident (the latest recorded)."""

    __tablename__ = "ratings"

    incident_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    rating: Mapped[str] = mapped_column(String(32))
    operator: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    event_id: Mapped[str] = mapped_column(String(64))


outbox, processed_events = plumbing_tables(Base.metadata)
