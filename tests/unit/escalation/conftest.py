"""The escalation service on a real SQLite database, no broker: the worker
(nameko's `worker_factory`) acting as an administrator unless a test says
otherwise."""

from types import SimpleNamespace

import pytest

from services.escalation.models import Base, outbox, processed_events
from services.escalation.service import EscalationService
from shared.auth import Caller
from shared.db import Database, Store
from shared.network import load_network
from tests.support.databases import migrated_sqlite

ADMIN = Caller(sub="admin-1", kind="admin")


@pytest.fixture(scope="module")
def network():
    return load_network()


@pytest.fixture
def database(tmp_path):
    db = Database(Base.metadata, outbox, processed_events)
    db.container = SimpleNamespace(
        service_name="escalation",
        config={"DATABASE_URLS": {"escalation": migrated_sqlite(tmp_path / "db", "escalation")}},
    )
    db.setup()
    db.start()
    yield db
    db.stop()


@pytest.fixture
def service(database, network):
    from nameko.testing.services import worker_factory

    worker = worker_factory(EscalationService, db=Store(database), network=network)
    worker.auth.return_value = ADMIN
    return worker
