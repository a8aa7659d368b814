"""Intake's SQL: every statement the service runs on its database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from services.intake.models import Incident, PersonalDataAccess
from shared.db import UnitOfWork, insert_new


def add_incident(tx: UnitOfWork, incident: dict) -> bool:
    """Store a new incident; False when its (source_system, external_id) is known."""
    return tx.session.execute(insert_new(tx.session, Incident.__table__), incident).rowcount == 1


def by_source(session: Session, source_system: str, external_id: str) -> dict:
    """The first incident of a (source_system, external_id) pair, as the submitter saw it."""
    row = session.execute(
        select(Incident.incident_id, Incident.center, Incident.received_at).where(
            Incident.source_system == source_system, Incident.external_id == external_id
        )
    ).one()
    return row._asdict()


def get(session: Session, incident_id: str) -> Incident | None:
    return session.get(Incident, incident_id)


def locked(tx: UnitOfWork, incident_id: str) -> Incident | None:
    return tx.session.get(Incident, incident_id, with_for_update=True)


def move_command(tx: UnitOfWork, incident_id: str, to_center: str, at: datetime) -> None:
    """Command moved at `at`; moves may arrive out of order, so only a later one wins."""
    tx.session.execute(
        update(Incident)
        .where(Incident.incident_id == incident_id)
        .where((Incident.command_changed_at.is_(None)) | (Incident.command_changed_at < at))
        .values(center=to_center, command_changed_at=at)
    )


def record_disclosure(tx: UnitOfWork, sub: str, kind: str, incident_id: str, at: datetime) -> None:
    """A reporter's name and phone were shown in full: who saw them, and when."""
    tx.session.execute(
        insert(PersonalDataAccess.__table__),
        {"sub": sub, "kind": kind, "incident_id": incident_id, "at": at},
    )


def disclosures(session: Session, since: datetime, until: datetime, limit: int) -> list[dict]:
    rows = session.execute(
        select(
            PersonalDataAccess.sub,
            PersonalDataAccess.kind,
            PersonalDataAccess.incident_id,
            PersonalDataAccess.at,
        )
        .where(PersonalDataAccess.at >= since, PersonalDataAccess.at < until)
        .order_by(PersonalDataAccess.at, PersonalDataAccess.id)
        .limit(limit)
    ).all()
    return [{**row._asdict(), "at": row.at.isoformat()} for row in rows]


def find(session: Session, filters: dict, scope: dict, limit: int) -> list[Incident]:
    """Incidents matching `filters` within `scope` (source systems, or the
    centers of an area by town or command; none given: all), newest first."""
    query = select(Incident)
    if filters["category"] is not None:
        query = query.where(Incident.category == filters["category"])
    if filters["since"] is not None:
        query = query.where(Incident.received_at >= filters["since"])
    if filters["until"] is not None:
        query = query.where(Incident.received_at < filters["until"])
    if "source_systems" in scope:
        query = query.where(Incident.source_system.in_(scope["source_systems"]))
    if "centers" in scope:
        centers = scope["centers"]
        query = query.where(Incident.town.in_(centers) | Incident.center.in_(centers))
    query = query.order_by(Incident.received_at.desc(), Incident.incident_id).limit(limit)
    return list(session.execute(query).scalars())
