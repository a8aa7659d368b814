"""Alembic environment of the escalation database: driven by shared/migrations.py."""

from alembic import context

from services.escalation.models import Base
from shared.migrations import run_environment

run_environment(context, Base.metadata)
