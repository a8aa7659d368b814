"""Database URLs for a test: a fresh SQLite directory, or fresh PostgreSQL schemas.

Each database is migrated to the code's head before a service sees it, as
`python -m services migrate` does in production (shared/migrations.py): a
PostgreSQL schema by one `upgrade head`; a SQLite file as a copy of one
migrated by `upgrade head` once per test session.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from shared import migrations
from shared.config import SERVICES

POSTGRES_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/linkage_test"

_sqlite_templates: dict[str, Path] = {}


@contextmanager
def database_urls(backend: str, tmp_path: Path, migrated: bool = True) -> Iterator[dict[str, str]]:
    """One database per service, as in production: `{service: url}`; empty
    when not `migrated`."""
    if backend == "sqlite":
        urls = {}
        for name in SERVICES:
            path = tmp_path / f"{name}.db"
            if migrated:
                shutil.copyfile(_sqlite_template(name), path)
            urls[name] = f"sqlite:///{path}"
        yield urls
        return
    prefix = f"t_{uuid.uuid4().hex[:10]}"
    engine = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as connection:
            for name in SERVICES:
                connection.execute(text(f'CREATE SCHEMA "{prefix}_{name}"'))
        urls = {
            name: f"{POSTGRES_ADMIN}?options=-csearch_path%3D{prefix}_{name}" for name in SERVICES
        }
        if migrated:
            for name, url in urls.items():
                migrations.upgrade(name, url)
        yield urls
    finally:
        with engine.connect() as connection:
            for name in SERVICES:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{prefix}_{name}" CASCADE'))
        engine.dispose()


def migrated_sqlite(path: Path, service: str) -> str:
    """A SQLite database for `service` at `path`, at the code's head; its URL."""
    shutil.copyfile(_sqlite_template(service), path)
    return f"sqlite:///{path}"


def _sqlite_template(service: str) -> Path:
    if service not in _sqlite_templates:
        path = Path(tempfile.mkdtemp(prefix="linkage-template-")) / f"{service}.db"
        migrations.upgrade(service, f"sqlite:///{path}")
        _sqlite_templates[service] = path
    return _sqlite_templates[service]


def env_for(urls: dict[str, str]) -> dict[str, str]:
    return {f"{name.upper()}_DATABASE_URL": url for name, url in urls.items()}
