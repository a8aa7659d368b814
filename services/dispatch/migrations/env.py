"""Alembic environment of the dispatch database: driven by shared/migrations.py."""

from alembic import context

from services.dispatch.models import Base
from shared.migrations import run_environment

run_environment(context, Base.metadata)
