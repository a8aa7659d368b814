"""Database plumbing every service shares: engines, transactions, outbox, idempotency.

Each service owns its database. A worker changes it inside `transaction()`,
which commits before nameko acks the message or answers the call. Events are
never published from a worker: `Transaction.emit` writes them to the outbox
table in the same transaction, and the relay (shared/outbox.py) publishes them
afterwards. A handler records every `event_id` it applies in the same
transaction as its effect (`Transaction.first_time`), so a redelivered event
changes nothing.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime

import eventlet
import eventlet.event
import eventlet.semaphore
from amqp.exceptions import RecoverableConnectionError
from nameko.extensions import DependencyProvider
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    insert,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

from shared import config
from shared.errors import RetryLater, Unavailable
from shared.events import make_event

log = logging.getLogger(__name__)

Id = BigInteger().with_variant(Integer, "sqlite")


class UtcDateTime(TypeDecorator):
    """Timestamps stored as UTC and always read back timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: every timestamp carries an offset")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def plumbing_tables(metadata: MetaData) -> tuple[Table, Table]:
    """The outbox and processed-event tables, added to a service's own metadata."""
    outbox = Table(
        "outbox",
        metadata,
        Column("id", Id, primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("source", String(32), nullable=False),
        Column("event_type", String(64), nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("published_at", UtcDateTime, nullable=True, index=True),
        Column("attempts", Integer, nullable=False, default=0),
    )
    processed = Table(
        "processed_events",
        metadata,
        Column("event_id", String(64), primary_key=True),
        Column("handler", String(128), primary_key=True),
        Column("processed_at", UtcDateTime, nullable=False),
    )
    return outbox, processed


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying: the database or broker is away, not the input bad."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, (OperationalError, ConnectionError, TimeoutError, OSError)):
        return True
    return isinstance(exc, (Unavailable, RetryLater, RecoverableConnectionError))


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "isolation_level": None, "check_same_thread": False},
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        # BEGIN IMMEDIATE takes the write lock up front: two processes sharing
        # the file serialise their transactions instead of failing to upgrade.
        @event.listens_for(engine, "begin")
        def _begin(connection):
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=int(os.environ.get("LINKAGE_DB_POOL_SIZE", "11")),  # max_workers + the relay
        max_overflow=int(os.environ.get("LINKAGE_DB_POOL_OVERFLOW", "5")),
        pool_recycle=1800,
    )


def insert_ignoring_conflicts(engine_or_session, table: Table):
    """`INSERT ... ON CONFLICT DO NOTHING` for the dialect in use."""
    name = engine_or_session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    return insert(table)  # pragma: no cover


_sqlite_locks: dict[str, eventlet.semaphore.Semaphore] = {}


def _sqlite_lock(path: str | None) -> eventlet.semaphore.Semaphore:
    return _sqlite_locks.setdefault(path or ":memory:", eventlet.semaphore.Semaphore(1))


class Transaction:
    """One unit of work: the ORM session, the outbox and the processed-event log."""

    def __init__(self, session: Session, source: str, outbox: Table, processed: Table):
        self.session = session
        self.source = source
        self._outbox = outbox
        self._processed = processed
        self.emitted: list[dict] = []

    def emit(self, event_type: str, **data) -> dict:
        """Queue an event for publication once this transaction commits."""
        payload = make_event(self.source, event_type, **data)
        self.session.execute(
            self._outbox.insert().values(
                event_id=payload["event_id"],
                source=self.source,
                event_type=event_type,
                payload=json.dumps(payload, ensure_ascii=False),
                created_at=datetime.now(UTC),
                attempts=0,
            )
        )
        self.emitted.append({"event_type": event_type, **payload})
        return payload

    def first_time(self, event_id: str, handler: str) -> bool:
        """Record that `handler` applies `event_id`; False if it already has."""
        statement = insert_ignoring_conflicts(self.session, self._processed).values(
            event_id=event_id, handler=handler, processed_at=datetime.now(UTC)
        )
        return self.session.execute(statement).rowcount == 1


class Store:
    """What a worker sees of the database provider."""

    def __init__(self, provider: Database):
        self._provider = provider

    @property
    def engine(self) -> Engine:
        return self._provider.engine

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._provider.transaction() as tx:
            yield tx

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._provider.session() as session:
            yield session


class Database(DependencyProvider):
    """A service's database: schema created at start, one transaction per unit of work.

    `on_commit` callbacks run after a commit that emitted events; the outbox
    relay uses one to publish without waiting for its next poll.
    """

    def __init__(self, metadata: MetaData, outbox: Table, processed: Table):
        self.metadata = metadata
        self.outbox = outbox
        self.processed = processed
        self.engine: Engine | None = None
        self.url: str | None = None
        self.on_commit: list[Callable[[], None]] = []
        self.ready = eventlet.event.Event()

    def setup(self) -> None:
        self.url = self.container.config.get("DATABASE_URLS", {}).get(
            self.container.service_name
        ) or config.database_url(self.container.service_name)
        self.engine = make_engine(self.url)
        # sqlite3 waits for a lock inside C, blocking every green thread of the
        # process; one green lock per file and process keeps its sessions
        # from meeting there. PostgreSQL (psycogreen) needs none.
        self._serial = (
            _sqlite_lock(self.engine.url.database)
            if self.engine.dialect.name == "sqlite"
            else nullcontext()
        )

    def start(self) -> None:
        wait_for_schema(self.engine, self.metadata)
        self.ready.send(True)

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.dispose()

    def get_dependency(self, worker_ctx) -> Store:
        return Store(self)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session holding the process's turn on SQLite (see `setup`)."""
        with self._serial, Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self.session() as session:
            tx = Transaction(session, self.container.service_name, self.outbox, self.processed)
            with session.begin():
                yield tx
        if tx.emitted:
            for callback in self.on_commit:
                callback()


SCHEMA_LOCK = 0x6C696E6B  # "link": one schema creation at a time


def wait_for_schema(engine: Engine, metadata: MetaData, timeout_s: float = 120) -> None:
    """Create the tables, waiting for a database that is still coming up."""
    deadline = time.monotonic() + timeout_s
    delay = 0.5
    while True:
        try:
            with engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    # instances starting together would race on CREATE TABLE
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK}
                    )
                metadata.create_all(connection)
            return
        except OperationalError as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("database not reachable yet (%s); retrying", type(exc).__name__)
            eventlet.sleep(delay)
            delay = min(delay * 2, 5)


def retrying(action: Callable, attempts: int = 4, first_delay: float = 0.2):
    """Run `action`, retrying transient database errors; `Unavailable` when they persist."""
    delay = first_delay
    for attempt in range(attempts):
        try:
            return action()
        except Exception as exc:
            if not is_transient(exc) or isinstance(exc, Unavailable):
                raise
            if attempt == attempts - 1:
                raise Unavailable(
                    "the database is unavailable; nothing was stored, try again"
                ) from exc
            log.warning("transient database error (%s); retrying", type(exc).__name__)
            eventlet.sleep(delay)
            delay *= 2
