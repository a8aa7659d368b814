"""Alembic environment of the intake database: driven by shared/migrations.py."""

from alembic import context

from services.intake.models import Base
from shared.migrations import run_environment

run_environment(context, Base.metadata)
