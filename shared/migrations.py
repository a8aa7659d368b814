"""Schema migrations: one Alembic history per service database.

A service's history lives in `services/<name>/migrations/` (`env.py`, which
calls `run_environment`, and `versions/`); this module drives it, so no
`alembic.ini` is needed. Revisions are numbered `0001`, `0002`, ...; `0001` is
the schema of the release before migrations existed, whose databases were
made by `create_all` and carry no revision: `upgrade` recognises them by their
tables and stamps them `0001` before upgrading.

- `python -m services.<name> migrate` (or `python -m services migrate`)
  upgrades databases to the code's head (`subcommand`, `upgrade`);
- a service refuses to start against a database behind its code
  (`check_schema`, called by `shared.db.Database.setup`): the runner prints
  the one line of `SchemaNotReady` and exits 2;
- `scripts/new-revision <service> "message"` autogenerates the next revision
  from the service's models against a scratch database at head
  (`new_revision`).
"""

from __future__ import annotations

import functools
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

from shared import config

log = logging.getLogger(__name__)
# Alembic names the dialect at INFO on every look at a database: noise in a
# service's log at each start (`migrate` prints what it did itself).
logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)

SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"
BASELINE = "0001"  # the previous release's schema, as its `create_all` made it
SCHEMA_LOCK = 0x6C696E6B  # "link": one migration of a schema at a time (PostgreSQL)
VERSION_TABLE = "alembic_version"


class SchemaNotReady(RuntimeError):
    """The database is behind the code (or empty); the message is one line
    naming the command that brings it up to date."""


# -- where a service's history is ------------------------------------------------


def alembic_config(service: str, connection: Connection | None = None) -> Config:
    """The Alembic configuration of `service`'s history, without an ini file."""
    location = SERVICES_DIR / service / "migrations"
    if not (location / "env.py").is_file():
        raise ValueError(f"{service}: no migration history at {location}")
    alembic = Config()
    alembic.set_main_option("script_location", str(location))
    alembic.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    alembic.attributes["service"] = service
    alembic.attributes["connection"] = connection
    return alembic


@functools.cache
def _script(service: str) -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(service))


def head(service: str) -> str:
    """The revision the code of `service` needs."""
    return _script(service).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _has_tables(connection: Connection) -> bool:
    return any(name != VERSION_TABLE for name in inspect(connection).get_table_names())


# -- engines ---------------------------------------------------------------------


def migration_engine(url: str) -> Engine:
    """An engine for migrating: no pool; on SQLite a real transaction around
    DDL (pysqlite would otherwise commit each statement on its own)."""
    if not url.startswith("sqlite"):
        return create_engine(url, poolclass=NullPool)
    engine = create_engine(
        url, poolclass=NullPool, connect_args={"timeout": 30, "isolation_level": None}
    )

    @event.listens_for(engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def wait_until_reachable(engine: Engine, timeout_s: float = 120) -> None:
    """Return once the database answers; raise when it has not within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    delay = 0.5
    while True:
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return
        except OperationalError as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("database not reachable yet (%s); retrying", type(exc).__name__)
            time.sleep(delay)
            delay = min(delay * 2, 5)


# -- upgrading -------------------------------------------------------------------


def upgrade(service: str, url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade `service`'s database at `url` to `revision`, in one transaction
    (one migration at a time per PostgreSQL schema); (before, after).

    Not from two green threads of one process at once: Alembic's `op` and
    `context` are module globals."""
    engine = migration_engine(url)
    try:
        wait_until_reachable(engine)
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key, hashtext(current_schema()))"),
                    {"key": SCHEMA_LOCK},
                )
            alembic = alembic_config(service, connection)
            before = current_revision(connection)
            if before is None and _has_tables(connection):
                log.info("%s: tables without a revision: the previous release's", service)
                command.stamp(alembic, BASELINE)
                before = BASELINE
            command.upgrade(alembic, revision)
            return before, current_revision(connection)
    finally:
        engine.dispose()


def check_schema(service: str, engine: Engine) -> None:
    """Raise `SchemaNotReady` unless `service`'s database is at the code's head.

    A database at a revision this code does not know is newer than the code
    (a rolling upgrade whose migration ran first): a revision keeps the
    previous release working, so the service starts, with a warning.
    """
    script = _script(service)
    needed = script.get_current_head()
    with engine.connect() as connection:
        current = current_revision(connection)
        has_tables = current is None and _has_tables(connection)
    if current == needed:
        return
    run = f"run python -m services.{service} migrate"
    if current is None:
        state = "has tables but no revision (an older release)" if has_tables else "is empty"
        raise SchemaNotReady(f"{service} database {state}, the code needs {needed}: {run}")
    try:
        known = script.get_revision(current) is not None
    except CommandError:
        known = False
    if not known:
        log.warning(
            "%s database is at revision %s, newer than this code (%s); starting anyway",
            service,
            current,
            needed,
        )
        return
    raise SchemaNotReady(
        f"{service} database is at revision {current}, the code needs {needed}: {run}"
    )


def require_schema(service: str, url: str) -> None:
    """Wait for `service`'s database, then `check_schema` it (the runner does,
    before any service of its process starts)."""
    engine = migration_engine(url)
    try:
        wait_until_reachable(engine)
        check_schema(service, engine)
    finally:
        engine.dispose()


def migrate(services: list[str]) -> int:
    """`python -m services[.<name>] migrate`: each service's database to head; an exit code."""
    for service in services:
        url = config.database_url(service)
        try:
            before, after = upgrade(service, url)
        except Exception as exc:
            print(f"linkage: {service} database: migration failed: {exc}", file=sys.stderr)
            return 1
        if before == after:
            print(f"linkage: {service} database is at {after}, the code's head")
        else:
            print(f"linkage: {service} database migrated from {before or 'empty'} to {after}")
    return 0


def subcommand(services: list[str], argv: list[str]) -> int:
    """What `python -m services[.<name>] <argv>` does besides running: an exit code."""
    if argv == ["migrate"]:
        return migrate(services)
    module = "services" if len(services) > 1 else f"services.{services[0]}"
    extra = "|declare-topology" if len(services) > 1 else ""
    print(f"usage: python -m {module} [migrate{extra}]", file=sys.stderr)
    return 2


# -- env.py and autogenerate -----------------------------------------------------


def render_item(type_: str, obj, autogen_context):
    """Render the project's own column types (`shared.db.UtcDateTime`) by their
    class name, imported at the top of the revision; Alembic renders the rest."""
    if type_ == "type" and isinstance(obj, TypeDecorator):
        cls = type(obj)
        if cls.__module__.startswith(("shared.", "services.")):
            autogen_context.imports.add(f"from {cls.__module__} import {cls.__name__}")
            return f"{cls.__name__}()"
    return False


def run_environment(context, metadata) -> None:
    """The body of every service's `env.py`: migrations on the connection
    `upgrade` (or `new_revision`) opened, compared against `metadata`."""
    if context.is_offline_mode():
        raise SystemExit("linkage: offline (SQL script) migrations are not supported")
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise SystemExit("linkage: run migrations with python -m services.<name> migrate")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite alters a table by copying it
        compare_type=True,
        render_item=render_item,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _next_revision_id(script: ScriptDirectory) -> str:
    numbers = [int(r.revision) for r in script.walk_revisions() if r.revision.isdigit()]
    return f"{max(numbers, default=0) + 1:04d}"


def new_revision(service: str, message: str) -> Path | None:
    """Autogenerate `service`'s next revision: the difference between its
    models and a scratch SQLite database at head. The new file, or None when
    the models match the head."""
    scratch = Path(tempfile.mkdtemp(prefix=f"linkage-{service}-"))
    try:
        url = f"sqlite:///{scratch / 'scratch.db'}"
        upgrade(service, url)
        engine = migration_engine(url)
        try:
            with engine.begin() as connection:
                alembic = alembic_config(service, connection)
                _format_with_ruff(alembic)
                empty: list[bool] = []

                def skip_empty(context, revision, directives):
                    if directives[0].upgrade_ops.is_empty():
                        directives[:] = []
                        empty.append(True)

                script = command.revision(
                    alembic,
                    message=message,
                    autogenerate=True,
                    rev_id=_next_revision_id(ScriptDirectory.from_config(alembic)),
                    process_revision_directives=skip_empty,
                )
        finally:
            engine.dispose()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if empty or script is None:
        return None
    return Path(script.path)


def _format_with_ruff(alembic: Config) -> None:
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        return
    alembic.set_section_option("post_write_hooks", "hooks", "ruff_format, ruff_fix")
    for hook, options in (
        ("ruff_format", "format --silent REVISION_SCRIPT_FILENAME"),
        ("ruff_fix", "check --fix --silent REVISION_SCRIPT_FILENAME"),
    ):
        alembic.set_section_option("post_write_hooks", f"{hook}.type", "exec")
        alembic.set_section_option("post_write_hooks", f"{hook}.executable", str(ruff))
        alembic.set_section_option("post_write_hooks", f"{hook}.options", options)


def main(argv: list[str]) -> int:
    """`python -m shared.migrations new-revision <service> "message"` (scripts/new-revision)."""
    if len(argv) != 3 or argv[0] != "new-revision" or argv[1] not in config.SERVICES:
        services = "|".join(config.SERVICES)
        print(f'usage: scripts/new-revision {{{services}}} "message"', file=sys.stderr)
        return 2
    path = new_revision(argv[1], argv[2])
    if path is None:
        print(f"linkage: {argv[1]}: the models match the head revision; nothing to add")
        return 1
    print(f"linkage: wrote {path.relative_to(SERVICES_DIR.parent)}")
    print("  review it: a NOT NULL column on an existing table needs a server_default or a")
    print("  backfill (op.execute) before it is made NOT NULL, or existing rows fail")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main(sys.argv[1:]))
