"""End-to-end tests run the services as processes on PostgreSQL, as in
production; SQLite is covered by the integration suite (every test there runs
on both) and by the README's own commands, which use it."""

import pytest


@pytest.fixture(params=["postgresql"])
def backend(request):
    return request.param
