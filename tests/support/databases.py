"""Database URLs for a test: a fresh SQLite directory, or fresh PostgreSQL schemas."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from shared.config import SERVICES

POSTGRES_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/linkage_test"


@contextmanager
def database_urls(backend: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """One database per service, as in production: `{service: url}`."""
    if backend == "sqlite":
        yield {name: f"sqlite:///{tmp_path / (name + '.db')}" for name in SERVICES}
        return
    prefix = f"t_{uuid.uuid4().hex[:10]}"
    engine = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as connection:
            for name in SERVICES:
                connection.execute(text(f'CREATE SCHEMA "{prefix}_{name}"'))
        yield {
            name: f"{POSTGRES_ADMIN}?options=-csearch_path%3D{prefix}_{name}" for name in SERVICES
        }
    finally:
        with engine.connect() as connection:
            for name in SERVICES:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{prefix}_{name}" CASCADE'))
        engine.dispose()


def env_for(urls: dict[str, str]) -> dict[str, str]:
    return {f"{name.upper()}_DATABASE_URL": url for name, url in urls.items()}
