"""Event contracts: what is sent is what every receiver can load."""

from datetime import UTC, datetime

import pytest

from shared.events import InvalidEvent, load_event, make_event

AT = datetime(2026, 11, 27, 1, 15, tzinfo=UTC)


def test_a_made_event_loads_back_with_its_envelope():
    payload = make_event(
        "dispatch",
        "order_overdue",
        order_id="o1",
        incident_id="i1",
        center="511123101",
        department="dongshan-water",
        role="lead",
        operator=None,
        at=AT,
        deadline="accept",
        due_at=AT,
    )
    assert {"event_id", "schema_version", "occurred_at"} <= set(payload)
    loaded = load_event("dispatch", "order_overdue", payload)
    assert loaded["due_at"] == AT and loaded["deadline"] == "accept"


def test_two_events_never_share_an_id():
    fields = dict(incident_id="i", rating="satisfied", operator="op", at=AT)
    first = make_event("assessment", "satisfaction_recorded", **fields)
    second = make_event("assessment", "satisfaction_recorded", **fields)
    assert first["event_id"] != second["event_id"]


@pytest.mark.parametrize(
    "payload",
    [
        "not an object",
        {},
        {"event_id": "e", "schema_version": 1, "occurred_at": "yesterday"},
        {"event_id": "e", "schema_version": 99, "occurred_at": AT.isoformat()},
    ],
)
def test_a_payload_off_its_contract_is_poison(payload):
    with pytest.raises(InvalidEvent):
        load_event("assessment", "satisfaction_recorded", payload)


def test_a_sender_cannot_emit_what_the_contract_refuses():
    with pytest.raises(InvalidEvent):
        make_event(
            "assessment",
            "satisfaction_recorded",
            incident_id="i",
            rating="meh",
            operator="o",
            at=AT,
        )
