"""Which database errors are worth retrying (shared/db.py `is_transient`): a
schema behind its code never is, or its messages would be retried forever."""

import sqlite3

import psycopg2.errors
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from shared.db import is_transient
from shared.errors import RetryLater


def sqlite_error(statement: str) -> OperationalError:
    engine = create_engine("sqlite://")
    try:
        with engine.connect() as connection:
            connection.execute(text("CREATE TABLE incidents (incident_id TEXT)"))
            with pytest.raises(OperationalError) as raised:
                connection.execute(text(statement))
    finally:
        engine.dispose()
    return raised.value


@pytest.mark.parametrize(
    "statement",
    ["SELECT * FROM work_orders", "SELECT request_type FROM incidents"],
    ids=["no such table", "no such column"],
)
def test_a_missing_table_or_column_on_sqlite_is_never_transient(statement):
    error = sqlite_error(statement)
    assert "no such" in str(error.orig)
    assert not is_transient(error)


@pytest.mark.parametrize(
    "orig",
    [
        psycopg2.errors.UndefinedTable('relation "work_orders" does not exist'),
        psycopg2.errors.UndefinedColumn('column "request_type" does not exist'),
    ],
    ids=["undefined table", "undefined column"],
)
def test_a_missing_table_or_column_on_postgresql_is_never_transient(orig):
    assert not is_transient(ProgrammingError("SELECT ...", {}, orig))


def test_a_database_away_or_locked_is_transient():
    locked = OperationalError("UPDATE ...", {}, sqlite3.OperationalError("database is locked"))
    assert is_transient(locked)
    assert is_transient(ConnectionRefusedError("connection refused"))
    assert is_transient(RetryLater("the incident is not known yet"))


def test_a_bug_is_not_transient():
    assert not is_transient(KeyError("center"))


def test_a_scan_skips_an_item_failing_for_good_and_stops_at_the_database_going_away():
    from shared.db import each_in_turn

    broken = sqlite_error("SELECT * FROM work_orders")  # never transient
    away = OperationalError("SELECT 1", {}, psycopg2.OperationalError("server closed"))
    assert not is_transient(broken) and is_transient(away)
    tried = []

    def step(item):
        tried.append(item)
        if item == 2:
            raise broken
        if item == 4:
            raise away
        return item * 10

    # 2 keeps failing but 3 still gets its turn; 4 finds the database away: 5 waits
    assert each_in_turn([1, 2, 3, 4, 5], step, "check") == [10, 30]
    assert tried == [1, 2, 3, 4]
