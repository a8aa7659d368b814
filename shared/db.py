"""Database plumbing every service shares: engines, transactions, outbox, idempotency.

Each service owns its database. A worker changes it inside `transaction()`,
which commits before nameko acks the message or answers the call. An event is
never published before its change is committed: `UnitOfWork.emit` writes it to
the outbox table in the same transaction, and the service's outbox publishes it
right after the commit (shared/outbox.py). A handler records every
`event_id` it applies in the same transaction as its effect
(`UnitOfWork.first_time`, called by the event entrypoint), so a redelivered
event changes nothing.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
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
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

from shared import config
from shared.errors import RetryLater, Unavailable
from shared.events import make_event
from shared.migrations import check_schema, wait_until_reachable

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
    """The outbox and processed-event tables, added to a service's own metadata,
    with `rpc_requests` (the answers of mutating calls, by caller and request
    id: a repeated call gets the first answer and no second effect)."""
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
        Column("processed_at", UtcDateTime, nullable=False, index=True),
    )
    Table(
        "rpc_requests",
        metadata,
        Column("caller", String(64), primary_key=True),
        Column("request_id", String(64), primary_key=True),
        Column("method", String(64), nullable=False),
        Column("answer", Text, nullable=False),
        Column("created_at", UtcDateTime, nullable=False, index=True),
    )
    return outbox, processed


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying: the database or broker is away, not the input bad.
    A missing table or column is a schema behind its code: never transient."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError) and _SCHEMA_MISSING in str(exc.orig).lower():
        return False
    if isinstance(exc, (OperationalError, ConnectionError, TimeoutError, OSError)):
        return True
    return isinstance(exc, (Unavailable, RetryLater, RecoverableConnectionError))


_SCHEMA_MISSING = "no such "  # SQLite's "no such table" / "no such column"


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
    # No pre-ping round trip per checkout: a connection broken by a database
    # restart fails its first statement, SQLAlchemy invalidates the pool, and
    # the unit of work is retried (RPC) or requeued (event).
    return create_engine(
        url,
        pool_size=int(os.environ.get("LINKAGE_DB_POOL_SIZE", "11")),  # max_workers + the relay
        max_overflow=int(os.environ.get("LINKAGE_DB_POOL_OVERFLOW", "5")),
        pool_recycle=1800,
    )


@functools.cache
def _insert_new(dialect: str, table: Table):
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    return insert(table)  # pragma: no cover


def insert_new(bind, table: Table):
    """`INSERT ... ON CONFLICT DO NOTHING` into `table`, built once per dialect.

    Execute it with the row as parameters (`session.execute(stmt, row)`): one
    statement object per table means SQLAlchemy compiles it once per process.
    """
    return _insert_new(bind.get_bind().dialect.name, table)


_sqlite_locks: dict[str, eventlet.semaphore.Semaphore] = {}


def _sqlite_lock(path: str | None) -> eventlet.semaphore.Semaphore:
    return _sqlite_locks.setdefault(path or ":memory:", eventlet.semaphore.Semaphore(1))


class UnitOfWork:
    """One unit of work: a session inside a transaction, the events it
    announces, and what must wait for its commit.

    `emit` writes an event to the outbox table in the same transaction as the
    change; once the transaction has committed, the service's outbox publishes
    it from this worker (shared/outbox.py). Metrics and log lines that must
    not claim what a rollback undid go to `after_commit`.
    """

    def __init__(self, session: Session, database: Database):
        self.session = session
        self._database = database
        self.emitted: list[dict] = []
        self._after_commit: list[Callable[[], None]] = []

    def emit(self, event_type: str, **data) -> dict:
        """Announce an event once this transaction commits; the payload sent."""
        source = self._database.container.service_name
        payload = make_event(source, event_type, **data)
        self.session.execute(
            insert(self._database.outbox),
            {
                "event_id": payload["event_id"],
                "source": source,
                "event_type": event_type,
                "payload": json.dumps(payload, ensure_ascii=False),
                "created_at": datetime.now(UTC),
                "attempts": 0,
            },
        )
        self.emitted.append({"source": source, "event_type": event_type, "payload": payload})
        return payload

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the transaction has committed (never after a rollback)."""
        self._after_commit.append(callback)

    def first_time(self, event_id: str, handler: str) -> bool:
        """Record that `handler` applies `event_id`; False if it already has."""
        statement = insert_new(self.session, self._database.processed)
        row = {"event_id": event_id, "handler": handler, "processed_at": datetime.now(UTC)}
        return self.session.execute(statement, row).rowcount == 1

    def committed(self) -> None:
        for callback in self._after_commit:
            try:
                callback()
            except Exception:  # the change is committed: a metric or a log line must not undo it
                log.exception("after-commit step failed")


class Store:
    """What a worker sees of the database provider."""

    def __init__(self, provider: Database):
        self._provider = provider
        self._claims: list[Callable[[UnitOfWork], None]] = []

    @property
    def engine(self) -> Engine:
        return self._provider.engine

    def claim_in_next_transaction(self, claim: Callable[[UnitOfWork], None]) -> None:
        """Run `claim` first in this worker's next unit of work, so it commits
        or rolls back with the effect (shared/requests.py)."""
        self._claims.append(claim)

    @contextmanager
    def transaction(self) -> Iterator[UnitOfWork]:
        with self._provider.transaction() as tx:
            while self._claims:
                self._claims.pop(0)(tx)
            yield tx

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._provider.session() as session:
            yield session


class Database(DependencyProvider):
    """A service's database: schema checked at start, one transaction per unit of work.

    `on_commit` callbacks get every unit of work that committed events; the
    service's outbox publishes them from there (shared/outbox.py).
    """

    def __init__(self, metadata: MetaData, outbox: Table, processed: Table):
        self.metadata = metadata
        self.outbox = outbox
        self.processed = processed
        self.engine: Engine | None = None
        self.url: str | None = None
        self.on_commit: list[Callable[[UnitOfWork], None]] = []
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
        # Here, not in start(): nameko sets up every extension before it
        # starts any, so no timer, consumer or RPC runs against a database
        # behind the code. `migrate` makes the schema (shared/migrations.py);
        # a database behind refuses the start with `SchemaNotReady`.
        wait_until_reachable(self.engine)
        check_schema(self.container.service_name, self.engine)
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
    def transaction(self) -> Iterator[UnitOfWork]:
        with self.session() as session:
            tx = UnitOfWork(session, self)
            with session.begin():
                yield tx
        # committed, and outside the SQLite turn: publishing waits for the broker
        if tx.emitted:
            for callback in self.on_commit:
                callback(tx)
        tx.committed()


def each_in_turn(items: Iterable, step: Callable, what: str) -> list:
    """One scan: `step(item)` for each item (each its own transaction); the
    answers of the steps that ran. A step failing for good is logged and
    skipped, so it cannot starve the items after it; a transient failure
    (the database away) ends the scan, the rest waiting for the next one."""
    answers = []
    for item in items:
        try:
            answers.append(step(item))
        except Exception as exc:
            if not is_transient(exc):
                log.exception("%s %s could not be handled", what, item)
                continue
            log.warning("%s: %s; retrying next scan", what, type(exc).__name__)
            break
    return answers


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
