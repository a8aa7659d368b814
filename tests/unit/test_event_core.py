"""The event core: every handler has the one shape, and the topology is theirs.

A handler is `def on_<event>(self, event, tx)`: the entrypoint validates the
payload, opens the unit of work, records the event under a key derived from
the service and method, and calls the handler only the first time. These
tests enumerate every service's handlers, so a new one that skips the shape
fails here, and check the shape itself once with a recording handler.
"""

from __future__ import annotations

import ast
import inspect
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from marshmallow import fields as mm
from marshmallow import validate
from nameko.containers import ServiceContainer

from services import service_classes, topology
from shared.events import CONTRACTS, InvalidEvent, make_event
from shared.messaging import ReliableEventHandler, Subscription, handles

ROOT = Path(__file__).resolve().parents[2]


def event_handlers():
    for cls in service_classes():
        for name, method in inspect.getmembers(cls, inspect.isfunction):
            if any(
                isinstance(e, ReliableEventHandler)
                for e in getattr(method, "nameko_entrypoints", ())
            ):
                yield cls, name, method


HANDLERS = list(event_handlers())


def test_there_are_handlers_to_check():
    assert {cls.name for cls, _, _ in HANDLERS} == {
        "intake",
        "dispatch",
        "escalation",
        "assessment",
    }


@pytest.mark.parametrize(
    "cls,name,method",
    HANDLERS,
    ids=lambda v: getattr(v, "name", None) if isinstance(v, type) else None,
)
def test_every_handler_goes_through_the_one_shape(cls, name, method):
    source, event_type = method.handles  # set by `handles`, nowhere else
    assert (source, event_type) in CONTRACTS, f"{cls.name}.{name}: no contract"
    handler = method.__wrapped__
    assert list(inspect.signature(handler).parameters) == ["self", "event", "tx"], name
    body = inspect.getsource(handler)
    for ritual in ("load_event(", "first_time(", ".transaction("):
        assert ritual not in body, f"{cls.name}.{name} repeats the entrypoint's {ritual}"
    assert name.startswith("on_"), name


def test_the_topology_is_the_handlers_each_container_binds():
    bound = set()
    for cls in service_classes():
        container = ServiceContainer(cls, {"AMQP_URI": "memory://"})
        for entrypoint in container.entrypoints:
            if isinstance(entrypoint, ReliableEventHandler):
                bound.add(
                    Subscription(
                        entrypoint.source_service,
                        entrypoint.event_type,
                        cls.name,
                        entrypoint.method_name,
                    )
                )
    assert bound == set(topology())
    assert len(topology()) == len(set(topology()))


# -- the shape itself, with a recording handler ----------------------------------


def sample_payload(source: str, event_type: str) -> dict:
    """A valid payload of any contract, built from its schema's fields."""
    schema = CONTRACTS[(source, event_type)]()
    data = {}
    for name, field in schema.fields.items():
        if name in ("event_id", "schema_version", "occurred_at") or not field.required:
            continue
        data[name] = _sample_value(field)
    return make_event(source, event_type, **data)


def _sample_value(field):
    choices = [v for v in field.validators if isinstance(v, validate.OneOf)]
    if choices:
        return choices[0].choices[0]
    if isinstance(field, mm.AwareDateTime):
        return datetime(2026, 11, 27, 1, 2, 3, tzinfo=UTC)
    if isinstance(field, mm.Integer):
        return 1
    if isinstance(field, mm.Boolean):
        return False
    if isinstance(field, mm.List):
        return []
    if isinstance(field, mm.Dict):
        return {}
    return "x"


class FakeUnitOfWork:
    def __init__(self, applied: set):
        self.applied = applied
        self.keys = []

    def first_time(self, event_id: str, handler: str) -> bool:
        self.keys.append(handler)
        if (event_id, handler) in self.applied:
            return False
        self.applied.add((event_id, handler))
        return True


class FakeService:
    name = "svc"

    def __init__(self):
        self.applied: set = set()
        self.units: list[FakeUnitOfWork] = []
        self.calls: list = []
        self.db = self

    @contextmanager
    def transaction(self):
        unit = FakeUnitOfWork(self.applied)
        self.units.append(unit)
        yield unit

    @handles("dispatch", "order_accepted")
    def on_order_accepted(self, event, tx):
        self.calls.append((event, tx))


def test_the_shape_validates_derives_the_key_and_applies_once():
    service = FakeService()
    payload = sample_payload("dispatch", "order_accepted")
    FakeService.on_order_accepted(service, payload)
    FakeService.on_order_accepted(service, payload)  # redelivered
    assert len(service.calls) == 1
    event, tx = service.calls[0]
    assert isinstance(event["at"], datetime)  # validated and loaded, not the raw payload
    assert tx is service.units[0]
    assert [unit.keys for unit in service.units] == [["svc.on_order_accepted"]] * 2


def test_the_shape_refuses_a_payload_off_its_contract_before_any_unit_of_work():
    service = FakeService()
    payload = sample_payload("dispatch", "order_accepted")
    del payload["order_id"]
    with pytest.raises(InvalidEvent):
        FakeService.on_order_accepted(service, payload)
    assert service.units == [] and service.calls == []


@pytest.mark.parametrize("source,event_type", sorted(CONTRACTS))
def test_every_contract_has_a_sample_that_loads(source, event_type):
    from shared.events import load_event

    load_event(source, event_type, sample_payload(source, event_type))


def test_a_newer_schema_version_is_read_not_refused():
    from shared.events import load_event

    payload = sample_payload("dispatch", "order_accepted")
    payload.update(schema_version=7, a_field_from_the_future="kept out")
    event = load_event("dispatch", "order_accepted", payload)
    assert "a_field_from_the_future" not in event


# -- the code's shape ---------------------------------------------------------------


def python_files(*folders: str):
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_shared_imports_nothing_from_services():
    for path in python_files("shared"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n == "services" or n.startswith("services.") for n in names), path


def test_service_shells_stay_small():
    for path in (ROOT / "services").glob("*/service.py"):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= 250, f"{path.relative_to(ROOT)}: {lines} lines"


def test_no_function_above_sixty_lines():
    for path in python_files("services", "shared"):
        if "versions" in path.parts:  # a migration revision lists a whole schema, as data
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= 60, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length}"
