"""Intake's own database: incidents as received, and who is in command now."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import Id, UtcDateTime, plumbing_tables


class Base(DeclarativeBase):
    pass


class Incident(Base):
    __tablename__ = "incidents"
    __table_args__ = (UniqueConstraint("source_system", "external_id", name="uq_incident_source"),)

    incident_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    source_system: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(64), index=True)
    request_type: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    town: Mapped[str] = mapped_column(String(32), index=True)
    address: Mapped[str] = mapped_column(String(500))
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    reported_at: Mapped[datetime] = mapped_column(UtcDateTime)
    occurred_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    reporter_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    reporter_phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    crowd_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    casualties: Mapped[int | None] = mapped_column(Integer, nullable=True)
    grade: Mapped[str | None] = mapped_column(String(3), nullable=True)
    received_by: Mapped[str] = mapped_column(String(32))
    center: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    transferred_to: Mapped[str | None] = mapped_column(String(32), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON, 结案
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    command_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class PersonalDataAccess(Base):
    """Each time a reporter's name and phone were shown in full: who, which, when."""

    __tablename__ = "personal_data_access"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    sub: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    incident_id: Mapped[str] = mapped_column(String(32), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


outbox, processed_events = plumbing_tables(Base.metadata)
