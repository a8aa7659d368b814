"""Each service's migration history against its models, and the start-up check
(shared/migrations.py), on SQLite; tests/integration/test_migrations.py runs
a previous release's database through `migrate` on both databases."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from services.assessment.models import Base as AssessmentBase
from services.dispatch.models import Base as DispatchBase
from services.escalation.models import Base as EscalationBase
from services.intake.models import Base as IntakeBase
from shared import migrations
from shared.config import SERVICES
from shared.migrations import SchemaNotReady, check_schema, upgrade

METADATA = {
    "intake": IntakeBase.metadata,
    "dispatch": DispatchBase.metadata,
    "escalation": EscalationBase.metadata,
    "assessment": AssessmentBase.metadata,
}


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'service.db'}"


def refusal(service: str, url: str) -> str:
    engine = create_engine(url)
    try:
        with pytest.raises(SchemaNotReady) as refused:
            check_schema(service, engine)
    finally:
        engine.dispose()
    return str(refused.value)


@pytest.mark.parametrize("service", SERVICES)
def test_the_head_revision_is_exactly_the_models(service, url):
    """A model changed without its revision shows here: scripts/new-revision."""
    upgrade(service, url)
    engine = create_engine(url)
    with engine.connect() as connection:
        differences = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}),
            METADATA[service],
        )
    engine.dispose()
    assert differences == [], f"run scripts/new-revision {service} '...': {differences}"


@pytest.mark.parametrize("service", SERVICES)
def test_revisions_are_numbered_in_one_line_from_the_previous_release(service):
    script = migrations._script(service)
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert revisions[0] == migrations.BASELINE
    assert revisions == [f"{n:04d}" for n in range(1, len(revisions) + 1)]
    assert script.get_heads() == [migrations.head(service)]


def test_an_empty_database_is_refused_naming_the_command(url):
    head = migrations.head("intake")
    assert refusal("intake", url) == (
        f"intake database is empty, the code needs {head}: run python -m services.intake migrate"
    )


def test_a_database_behind_is_refused_with_both_revisions(url):
    upgrade("dispatch", url, migrations.BASELINE)
    head = migrations.head("dispatch")
    message = refusal("dispatch", url)
    assert message == (
        f"dispatch database is at revision 0001, the code needs {head}: "
        "run python -m services.dispatch migrate"
    )
    assert "\n" not in message


def test_a_database_at_head_starts_and_one_ahead_starts_with_a_warning(url, caplog):
    upgrade("escalation", url)
    engine = create_engine(url)
    check_schema("escalation", engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    check_schema("escalation", engine)
    engine.dispose()
    assert "9999, newer than this code" in caplog.text


def test_a_previous_release_database_without_a_revision_is_adopted_then_upgraded(url):
    """The previous release made its tables with create_all and kept no revision."""
    upgrade("assessment", url, migrations.BASELINE)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))
    assert "has tables but no revision" in refusal("assessment", url)

    before, after = upgrade("assessment", url)

    assert (before, after) == (migrations.BASELINE, migrations.head("assessment"))
    assert "gauge_values" in inspect(engine).get_table_names()
    check_schema("assessment", engine)
    engine.dispose()


def test_migrate_again_changes_nothing(url):
    head = migrations.head("intake")
    assert upgrade("intake", url) == (None, head)
    assert upgrade("intake", url) == (head, head)
