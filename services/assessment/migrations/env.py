"""Alembic environment of the assessment database: driven by shared/migrations.py."""

from alembic import context

from services.assessment.models import Base
from shared.migrations import run_environment

run_environment(context, Base.metadata)
