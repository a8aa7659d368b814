"""Assessment's own database: order records, incidents, command moves, ratings,
the counts of each department per day, the dashboards' last gauge values,
and the information reports the centers owed (report_duties).

Every column but the keys is nullable where an event may not have arrived yet:
a row is started by whichever event comes first (records.py explains why).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, Float, Index, Integer, String
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
    town: Mapped[str | None] = mapped_column(String(32), nullable=True)


class OrderRecordRow(Base):
    """考核记录: one work order's facts (see records.OrderRecord)."""

    __tablename__ = "order_records"
    # the window's aggregates read a range of dispatch times: of one center
    # (scores, report) or of all (the gauges)
    __table_args__ = (
        Index("ix_order_records_center_dispatched", "center", "dispatched_at"),
        Index("ix_order_records_dispatched", "dispatched_at"),
    )

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
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    urges: Mapped[int] = mapped_column(Integer, server_default="0")  # 催办, counted


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


class GaugeRefresh(Base):
    """When the dashboards' gauges were last computed: instances take turns,
    and one that finds a recent refresh reads its values instead."""

    __tablename__ = "gauge_refresh"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    refreshed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class GaugeValue(Base):
    """The gauges of the last refresh, one row per department with data."""

    __tablename__ = "gauge_values"

    center: Mapped[str] = mapped_column(String(32), primary_key=True)
    department: Mapped[str] = mapped_column(String(64), primary_key=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    satisfaction: Mapped[float | None] = mapped_column(Float, nullable=True)


class DayCounts(Base):
    """The counts (scoring.Counts) of one department's orders, or of a whole
    center's (department ""), dispatched on one day of the network's calendar:
    kept in the same transaction as every record, rating and move
    (store.py), so a window of whole days reads these rows, not the records."""

    __tablename__ = "day_counts"
    # the gauges read one range of days for every center
    __table_args__ = (Index("ix_day_counts_day", "day"),)

    center: Mapped[str] = mapped_column(String(32), primary_key=True)
    department: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    orders: Mapped[int] = mapped_column(Integer)
    incidents: Mapped[int] = mapped_column(Integer)
    accept_judged: Mapped[int] = mapped_column(Integer)
    accepted_on_time: Mapped[int] = mapped_column(Integer)
    arrive_judged: Mapped[int] = mapped_column(Integer)
    arrived_on_time: Mapped[int] = mapped_column(Integer)
    completed: Mapped[int] = mapped_column(Integer)
    returns: Mapped[int] = mapped_column(Integer)
    overdue: Mapped[int] = mapped_column(Integer)
    escalated: Mapped[int] = mapped_column(Integer)
    urges: Mapped[int] = mapped_column(Integer)
    rated_satisfied: Mapped[int] = mapped_column(Integer)
    rated_basically_satisfied: Mapped[int] = mapped_column(Integer)
    rated_dissatisfied: Mapped[int] = mapped_column(Integer)
    accept_timed: Mapped[int] = mapped_column(Integer)
    accept_time_us: Mapped[int] = mapped_column(BigInteger)
    arrive_timed: Mapped[int] = mapped_column(Integer)
    arrive_time_us: Mapped[int] = mapped_column(BigInteger)
    complete_timed: Mapped[int] = mapped_column(Integer)
    complete_time_us: Mapped[int] = mapped_column(BigInteger)


class CountedIncident(Base):
    """An incident whose records are in the day counts. Its row is locked
    while the incident's share of them changes, so two instances applying
    events of one incident at once add their changes one after the other."""

    __tablename__ = "counted_incidents"

    incident_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class ReportDutyRow(Base):
    """信息报送: a first or final report a town's center owed, and whether it
    was late (reporting.ReportDuty; merged by reporting.merge_duty)."""

    __tablename__ = "report_duties"
    # a window's duties of some centers: rank_centers and the notice
    __table_args__ = (Index("ix_report_duties_center_due", "center", "due_at"),)

    incident_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    center: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    late: Mapped[bool] = mapped_column(Boolean)


outbox, processed_events = plumbing_tables(Base.metadata)
