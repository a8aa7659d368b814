"""The OpenAPI document against the live gateway, property-based (schemathesis):
for every operation, generated requests, valid and invalid, get no 5xx, only documented statuses
and content types, and answers that match their schemas; a call that
succeeded does not succeed without the token, or with a bad one. PostgreSQL only,
bounded in examples and time: the services behind are the real ones."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from services.gateway.routes import ROUTES
from tests.conftest import make_token
from tests.support.gateway import gateway_platform

pytestmark = pytest.mark.integration

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    ignored_auth,  # a 2xx answer is asked again without and with a bad token: 401 both
]
EXAMPLES = 10


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    with gateway_platform("postgresql", tmp_path_factory.mktemp("openapi")) as http:
        yield http


@pytest.fixture(scope="module")
def api_schema(live):
    return schemathesis.openapi.from_url(f"{live.url}/openapi.json")


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.template}")
def test_the_live_gateway_answers_as_its_openapi_document_says(route, api_schema, live):
    operation = api_schema[route.template][route.method]
    headers = {"Authorization": f"Bearer {make_token()}"}

    @given(
        case=operation.as_strategy(GenerationMode.POSITIVE)
        | operation.as_strategy(GenerationMode.NEGATIVE)
    )
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        phases=[Phase.explicit, Phase.generate],
    )
    def answers_as_documented(case):
        response = case.call(base_url=live.url, headers=headers, timeout=30)
        case.validate_response(response, checks=CHECKS, headers=headers)

    answers_as_documented()
