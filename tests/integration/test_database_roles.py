"""deploy/postgres/init.sql on the local PostgreSQL: one role per service,
owning only its own database, which no other role may open.

The file runs through psql as the postgres image runs it, with every role and
database renamed to the test's own (roles are cluster-wide) and passwords in
the environment; all of it is dropped afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from shared.config import SERVICES

pytestmark = pytest.mark.integration

INIT_SQL = Path(__file__).resolve().parents[2] / "deploy" / "postgres" / "init.sql"
SERVER = "postgresql+psycopg2://{role}@127.0.0.1:5432/{database}"
_SERVICE_NAME = re.compile(rf"\b({'|'.join(SERVICES)})\b")


def psql(sql: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    command = shutil.which("psql")
    if command is None:
        pytest.fail("psql is not installed (apt-get install postgresql-client)")
    return subprocess.run(
        [command, "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "-h", "127.0.0.1", "-U", "postgres"],
        input=sql,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def run_sql(url: str, *statements: str) -> list:
    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            result = None
            for statement in statements:
                result = connection.execute(text(statement))
            return result.all() if result is not None and result.returns_rows else []
    finally:
        engine.dispose()


@pytest.fixture
def names():
    """`names[service]`: the test's own name for the service's role and database."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    renamed = {service: f"{prefix}_{service}" for service in SERVICES}
    yield renamed
    admin = SERVER.format(role="postgres", database="postgres")
    for name in renamed.values():
        run_sql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        run_sql(admin, f'DROP ROLE IF EXISTS "{name}"')


def init_sql(names: dict[str, str]) -> str:
    return _SERVICE_NAME.sub(lambda m: names[m.group(1)], INIT_SQL.read_text(encoding="utf-8"))


def passwords() -> dict[str, str]:
    return {f"LINKAGE_DB_PASSWORD_{service.upper()}": uuid.uuid4().hex for service in SERVICES}


def test_each_service_owns_its_database_and_dispatch_cannot_open_intakes(names):
    result = psql(init_sql(names), passwords())
    assert result.returncode == 0, result.stderr
    intake = SERVER.format(role=names["intake"], database=names["intake"])
    run_sql(
        intake,
        "CREATE TABLE reporters (phone text)",
        "INSERT INTO reporters VALUES ('13800001234')",
    )
    assert run_sql(intake, "SELECT phone FROM reporters") == [("13800001234",)]
    dispatch_own = SERVER.format(role=names["dispatch"], database=names["dispatch"])
    run_sql(dispatch_own, "CREATE TABLE work_orders (id text)")  # its own: it may
    for service in ("dispatch", "escalation", "assessment"):
        intruder = SERVER.format(role=names[service], database=names["intake"])
        with pytest.raises(OperationalError, match="permission denied for database"):
            run_sql(intruder, "SELECT phone FROM reporters")
    owners = run_sql(
        SERVER.format(role="postgres", database="postgres"),
        "SELECT datname, pg_get_userbyid(datdba) FROM pg_database "
        f"WHERE datname LIKE '{names['intake'].split('_')[0]}%'",
    )
    assert sorted(owners) == sorted((name, name) for name in names.values())


def test_without_a_password_in_the_environment_no_role_is_created(names):
    env = passwords()
    del env["LINKAGE_DB_PASSWORD_INTAKE"]
    sql = init_sql(names).replace("LINKAGE_DB_PASSWORD_INTAKE", f"LINKAGE_UNSET_{uuid.uuid4().hex}")
    result = psql(sql, env)
    assert result.returncode != 0 and "PASSWORD :" in result.stderr
    roles = run_sql(
        SERVER.format(role="postgres", database="postgres"),
        f"SELECT rolname FROM pg_roles WHERE rolname = '{names['intake']}'",
    )
    assert roles == []
