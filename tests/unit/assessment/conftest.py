"""An assessment worker over a real database of either backend, without a broker."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import delete

from services.assessment.models import Base, outbox, processed_events
from services.assessment.service import AssessmentService
from shared.auth import Caller
from shared.db import Database, Store
from shared.network import load_network

NETWORK = load_network()


def handlers_by_event(service) -> dict[tuple[str, str], object]:
    """(source, event_type) → the worker's entrypoint, read off the decorators."""
    return {
        method.handles: getattr(service, name)
        for name, method in inspect.getmembers(AssessmentService, inspect.isfunction)
        if hasattr(method, "handles")
    }


def ADMIN() -> Caller:  # noqa: N802 - stands in for the `auth` dependency
    return Caller(sub="回访-张", kind="admin")


@pytest.fixture
def assessment(db_urls):
    """`.service` (a worker), `.database` (its provider), `.deliver(events)`
    (through the event entrypoints), `.clear()` (empty every table),
    `.another_worker()` (a second instance)."""
    database = Database(Base.metadata, outbox, processed_events)
    database.container = SimpleNamespace(
        service_name="assessment", config={"DATABASE_URLS": {"assessment": db_urls["assessment"]}}
    )
    database.setup()
    database.start()
    service = worker_factory(AssessmentService, db=Store(database), network=NETWORK, auth=ADMIN)
    handlers = handlers_by_event(service)

    def deliver(events) -> None:
        for source, event_type, payload in events:
            handlers[(source, event_type)](payload)

    def clear() -> None:
        with database.session() as session, session.begin():
            for table in reversed(Base.metadata.sorted_tables):
                session.execute(delete(table))

    def another_worker():
        """A second instance's worker on the same database."""
        return worker_factory(AssessmentService, db=Store(database), network=NETWORK, auth=ADMIN)

    yield SimpleNamespace(
        service=service,
        database=database,
        deliver=deliver,
        clear=clear,
        another_worker=another_worker,
    )
    database.stop()
