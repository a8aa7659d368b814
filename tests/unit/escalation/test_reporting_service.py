"""Escalation's reporting duty (信息报送) as its handlers keep it, on a real
SQLite database without a broker: started at receipt or at an update, the
final report owed from the last closing whatever order the case events come
in, a missed duty announced once."""

from __future__ import annotations

from datetime import timedelta

from shared.events import make_event, utcnow
from tests.unit.escalation.test_service import (
    DONGSHAN,
    TOWN_DUTY,
    acting_as,
    announced,
    received,
)


def case_event(event_type: str, at, **data) -> dict:
    fields = {"incident_id": "inc-1", "town": DONGSHAN, "operator": "值班员-张", "at": at}
    return make_event("intake", event_type, **fields, **data)


def updated(at, **facts) -> dict:
    base = {"category": "water.burst_main", "request_type": "help", "crowd_size": None}
    base.update(casualties=None, grade=None)
    base.update(facts)
    changes = {name: {"old": None, "new": value} for name, value in facts.items()}
    return case_event("incident_updated", at, changes=changes, reason="核实", **base)


def owed(service) -> list[tuple[str, bool, bool]]:
    """(kind, met, announced missed) of each duty, as the duty room sees it."""
    return [
        (d["kind"], d["answered_at"] is not None, d["overdue"])
        for d in service.command("inc-1")["reporting"]
    ]


def test_a_reportable_incident_owes_a_first_report_from_its_receipt(service):
    service.on_orders_dispatched(received(grade="II"))
    [duty] = service.command("inc-1")["reporting"]
    assert (duty["kind"], duty["center"], duty["triggers"]) == (
        "first",
        DONGSHAN,
        ["grade", "report_up"],
    )


def test_an_update_that_makes_it_reportable_starts_the_duty_then_and_only_once(service):
    service.on_orders_dispatched(received(category="water.burst_main"))
    assert owed(service) == []
    at = utcnow()
    service.on_incident_updated(updated(at, crowd_size=45))
    service.on_incident_updated(updated(at + timedelta(minutes=5), crowd_size=45, casualties=2))
    [duty] = service.command("inc-1")["reporting"]
    assert duty["triggers"] == ["crowd_size"]
    assert duty["due_at"] == (at + timedelta(seconds=1800)).isoformat()


def test_a_missed_duty_is_announced_once_and_a_late_report_still_meets_it(service, database):
    service.on_orders_dispatched(received())
    later = utcnow() + timedelta(hours=1)
    assert service.announce_missed_reports(later) == 1
    assert service.announce_missed_reports(later) == 0  # once, however often the scan runs
    acting_as(service, TOWN_DUTY).file_report("inc-1", "progress", "现场已控制")
    assert owed(service) == [("first", True, True)]
    [filed] = [e for e in announced(database) if e["event_type"] == "report_filed"]
    assert [(a["kind"], a["late"]) for a in filed["answers"]] == [("first", True)]
    assert [e["event_type"] for e in announced(database)].count("report_overdue") == 1


def test_the_final_report_is_owed_from_the_last_closing(service):
    service.on_orders_dispatched(received())
    first_close = utcnow()
    service.on_incident_closed(case_event("incident_closed", first_close, summary={"result": "x"}))
    assert owed(service) == [("first", False, False), ("final", False, False)]
    reopened = first_close + timedelta(minutes=10)
    service.on_incident_reopened(case_event("incident_reopened", reopened, reason="再次反映"))
    assert owed(service) == [("first", False, False)]
    second_close = reopened + timedelta(minutes=10)
    service.on_incident_closed(case_event("incident_closed", second_close, summary={"result": "y"}))
    final = service.command("inc-1")["reporting"][-1]
    assert final["due_at"] == (second_close + timedelta(seconds=86400)).isoformat()


def test_a_reopening_that_comes_after_the_next_closing_leaves_that_closings_duty(service):
    service.on_orders_dispatched(received())
    closed_at = utcnow()
    reopened_at = closed_at - timedelta(minutes=10)  # happened before, arrives after
    service.on_incident_closed(case_event("incident_closed", closed_at, summary={"result": "x"}))
    service.on_incident_reopened(case_event("incident_reopened", reopened_at, reason="再次反映"))
    assert owed(service) == [("first", False, False), ("final", False, False)]


def test_an_incident_that_never_had_to_be_reported_owes_no_final_report(service):
    service.on_orders_dispatched(received(category="water.burst_main"))
    service.on_incident_closed(case_event("incident_closed", utcnow(), summary={"result": "x"}))
    assert owed(service) == []


def test_only_a_final_report_after_the_closing_meets_the_final_duty(service):
    service.on_orders_dispatched(received())
    town = acting_as(service, TOWN_DUTY)
    town.file_report("inc-1", "final", "提前终报")  # before the closing: meets the first only
    service.on_incident_closed(case_event("incident_closed", utcnow(), summary={"result": "x"}))
    assert owed(service) == [("first", True, False), ("final", False, False)]
    town.file_report("inc-1", "final", "处置完毕")
    assert owed(service) == [("first", True, False), ("final", True, False)]
