"""Escalation's SQL for information reporting (信息报送): duties, reports and
their receipts. The caller holds the incident's row lock when it changes a
duty or files a report, so a report and a duty's deadline are decided from
one state; the overdue mark is a conditional update, so with any number of
instances a missed duty is announced once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from services.escalation.models import InfoReport, ReportDuty, ReportReceipt
from shared.db import UnitOfWork, insert_new

# -- duties ------------------------------------------------------------------------


def add_duty(tx: UnitOfWork, row: dict) -> bool:
    """Record a duty unless the incident owes one of that kind already."""
    return tx.session.execute(insert_new(tx.session, ReportDuty.__table__), row).rowcount == 1


def duty(session: Session, incident_id: str, kind: str) -> ReportDuty | None:
    return session.scalars(
        select(ReportDuty).where(ReportDuty.incident_id == incident_id, ReportDuty.kind == kind)
    ).one_or_none()


def duties(session: Session, incident_id: str) -> list[ReportDuty]:
    return list(
        session.scalars(
            select(ReportDuty)
            .where(ReportDuty.incident_id == incident_id)
            .order_by(ReportDuty.due_at, ReportDuty.id)
        )
    )


def withdraw_open_final(tx: UnitOfWork, incident_id: str, before: datetime) -> None:
    """A reopened incident owes no final report until it closes again: the
    final duty of a closing before `before` goes; one of a later closing
    (whose event came first: the queues are not ordered with each other)
    stays, and so does one already answered or announced missed (the
    record)."""
    tx.session.execute(
        delete(ReportDuty).where(
            ReportDuty.incident_id == incident_id,
            ReportDuty.kind == "final",
            ReportDuty.since < before,
            ReportDuty.answered_at.is_(None),
            ReportDuty.overdue_at.is_(None),
        )
    )


def answer(found: ReportDuty, report_id: str, at: datetime) -> dict:
    """Mark `found` answered by a report filed at `at`; the `answers` entry of
    `report_filed`. Late when filed after the deadline (or announced missed)."""
    found.answered_at, found.answered_by = at, report_id
    late = at > found.due_at or found.overdue_at is not None
    return {"kind": found.kind, "due_at": found.due_at, "late": late}


def due_duties(session: Session, now: datetime, limit: int = 200) -> list[int]:
    """Unanswered duties past their deadline and not yet announced, oldest
    deadline first (a stable order: one scan's batch)."""
    return list(
        session.scalars(
            select(ReportDuty.id)
            .where(
                ReportDuty.answered_at.is_(None),
                ReportDuty.overdue_at.is_(None),
                ReportDuty.due_at < now,
            )
            .order_by(ReportDuty.due_at, ReportDuty.id)
            .limit(limit)
        )
    )


def mark_overdue(tx: UnitOfWork, duty_id: int, now: datetime) -> ReportDuty | None:
    """Announce-once: mark the duty missed unless it was answered or marked
    meanwhile (by a report, or by another instance); None then."""
    marked = tx.session.execute(
        update(ReportDuty)
        .where(
            ReportDuty.id == duty_id,
            ReportDuty.answered_at.is_(None),
            ReportDuty.overdue_at.is_(None),
            ReportDuty.due_at < now,
        )
        .values(overdue_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    return tx.session.get(ReportDuty, duty_id, populate_existing=True) if marked == 1 else None


# -- reports and receipts ---------------------------------------------------------------


def add_report(tx: UnitOfWork, report: dict, recipients: list[str]) -> None:
    tx.session.add(InfoReport(**report))
    tx.session.flush()
    tx.session.add_all(
        ReportReceipt(report_id=report["report_id"], center=center, seq=seq)
        for seq, center in enumerate(recipients, start=1)
    )
    tx.session.flush()


def earliest_report(
    session: Session, incident_id: str, kinds: tuple[str, ...], since: datetime
) -> InfoReport | None:
    """The first report of these kinds filed at or after `since` (a duty whose
    event came after the report that answers it)."""
    return session.scalars(
        select(InfoReport)
        .where(
            InfoReport.incident_id == incident_id,
            InfoReport.kind.in_(kinds),
            InfoReport.filed_at >= since,
        )
        .order_by(InfoReport.filed_at, InfoReport.report_id)
        .limit(1)
    ).one_or_none()


def report(session: Session, report_id: str) -> InfoReport | None:
    return session.get(InfoReport, report_id)


def reports(session: Session, incident_id: str) -> list[InfoReport]:
    return list(
        session.scalars(
            select(InfoReport)
            .where(InfoReport.incident_id == incident_id)
            .order_by(InfoReport.filed_at, InfoReport.report_id)
        )
    )


def receipts(session: Session, report_ids: list[str]) -> dict[str, list[ReportReceipt]]:
    """Each report's receipts, nearest center first."""
    found: dict[str, list[ReportReceipt]] = {report_id: [] for report_id in report_ids}
    if report_ids:
        rows = session.scalars(
            select(ReportReceipt)
            .where(ReportReceipt.report_id.in_(report_ids))
            .order_by(ReportReceipt.report_id, ReportReceipt.seq)
        )
        for row in rows:
            found[row.report_id].append(row)
    return found


def inbox(
    session: Session, center: str, unacknowledged: bool | None, limit: int
) -> list[tuple[ReportReceipt, InfoReport]]:
    """The reports `center` received, newest first; only the unacknowledged
    ones (True), only the acknowledged ones (False) or all (None)."""
    query = (
        select(ReportReceipt, InfoReport)
        .join(InfoReport, InfoReport.report_id == ReportReceipt.report_id)
        .where(ReportReceipt.center == center)
    )
    if unacknowledged is True:
        query = query.where(ReportReceipt.acknowledged_at.is_(None))
    elif unacknowledged is False:
        query = query.where(ReportReceipt.acknowledged_at.is_not(None))
    query = query.order_by(InfoReport.filed_at.desc(), InfoReport.report_id).limit(limit)
    return [(receipt, filed) for receipt, filed in session.execute(query).all()]


def acknowledge(
    tx: UnitOfWork, report_id: str, centers: list[str], operator: str, at: datetime
) -> list[str]:
    """Sign for the report at these centers; the centers that had not yet
    (a repeated acknowledgement changes nothing)."""
    signed = []
    for center in centers:
        done = tx.session.execute(
            update(ReportReceipt)
            .where(
                ReportReceipt.report_id == report_id,
                ReportReceipt.center == center,
                ReportReceipt.acknowledged_at.is_(None),
            )
            .values(acknowledged_at=at, acknowledged_by=operator)
            .execution_options(synchronize_session=False)
        ).rowcount
        if done == 1:
            signed.append(center)
    return signed
