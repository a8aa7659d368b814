"""Dispatch's own database: incidents as dispatch knows them, work orders, history."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import Id, UtcDateTime, plumbing_tables


class Base(DeclarativeBase):
    pass


class DispatchIncident(Base):
    """What dispatch needs of an incident to route, re-route and follow command."""

    __tablename__ = "incidents"

    incident_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    category: Mapped[str] = mapped_column(String(64))
    request_type: Mapped[str] = mapped_column(String(16))
    town: Mapped[str] = mapped_column(String(32))
    received_by: Mapped[str] = mapped_column(String(32))  # the center that took it
    source_system: Mapped[str | None] = mapped_column(String(64), nullable=True)
    center: Mapped[str] = mapped_column(String(32))  # the center in command
    crowd_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    casualties: Mapped[int | None] = mapped_column(Integer, nullable=True)
    grade: Mapped[str | None] = mapped_column(String(3), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    title: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open or closed


class WorkOrder(Base):
    """工单: one department's order for one incident at one center."""

    __tablename__ = "work_orders"
    # Two orders are never sent for the same department, incident and center.
    __table_args__ = (
        UniqueConstraint("incident_id", "center", "department", name="uq_order_department"),
    )

    order_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.incident_id"), index=True)
    center: Mapped[str] = mapped_column(String(32), index=True)
    department: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(8))
    served_role: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(16))
    tier: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True)
    dispatched_at: Mapped[datetime] = mapped_column(UtcDateTime)
    accept_by: Mapped[datetime] = mapped_column(UtcDateTime)
    arrive_by: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    reply_by: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    accepted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    arrived_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    accept_overdue_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    arrive_overdue_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    reply_overdue_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    returns: Mapped[int] = mapped_column(Integer, default=0)
    replaces: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # why it was sent: initial, reroute, the reason command moved, added, reassigned...
    cause: Mapped[str] = mapped_column(String(32))
    # 值班: the duty officers' names when the order went to the duty officer
    duty_officers: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    urges: Mapped[int] = mapped_column(Integer, default=0)  # 催办, by operators or the scan


class OrderHistory(Base):
    """Append-only trail: who did what to an order, and when."""

    __tablename__ = "order_history"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("work_orders.order_id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    status_from: Mapped[str | None] = mapped_column(String(16), nullable=True)
    status_to: Mapped[str] = mapped_column(String(16))
    operator: Mapped[str | None] = mapped_column(String(64), nullable=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)


class DutyRoster(Base):
    """值班表: a center's leader on duty and duty officers for one duty day."""

    __tablename__ = "duty_rosters"

    center: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    leader: Mapped[dict] = mapped_column(JSON)  # {"name", "phone"}
    officers: Mapped[list[dict]] = mapped_column(JSON)  # [{"name", "phone"}, ...]
    set_by: Mapped[str] = mapped_column(String(64))
    set_at: Mapped[datetime] = mapped_column(UtcDateTime)


outbox, processed_events = plumbing_tables(Base.metadata)
