"""What callers get back: the contract's errors as statuses, and an HTTP
request's arguments as an RPC's, refused with a field map when wrong."""

from __future__ import annotations

import pytest
from nameko.exceptions import RemoteError
from werkzeug.datastructures import MultiDict

from services.gateway.arguments import body_arguments, json_body, query_arguments
from services.gateway.errors import GatewayError, from_remote
from services.gateway.routes import ROUTES

ROUTE = {route.endpoint: route for route in ROUTES}


@pytest.mark.parametrize(
    "exc_type,status",
    [
        ("Unauthenticated", 401),
        ("Forbidden", 403),
        ("NotFound", 404),
        ("InvalidTransition", 409),
        ("Unavailable", 503),
        ("MethodNotFound", 501),
    ],
)
def test_each_contract_error_has_its_status(exc_type, status):
    answer = from_remote(RemoteError(exc_type, "why"))
    assert answer == (status, {"error": exc_type, "message": "why"})


def test_a_validation_error_carries_its_field_map():
    error = RemoteError("ValidationError", '{"location.town": ["not a town"]}')
    status, body = from_remote(error)
    assert status == 400 and body["fields"] == {"location.town": ["not a town"]}


def test_an_unexpected_error_says_nothing_of_its_insides():
    status, body = from_remote(RemoteError("KeyError", "'reporter_phone' 13800001234"))
    assert status == 500 and "1380" not in str(body)
    assert from_remote(ZeroDivisionError("x"))[0] == 500


def test_a_timeout_and_a_missing_service_are_503():
    assert from_remote(GatewayError("Unavailable", "dispatch did not answer"))[0] == 503
    from nameko.exceptions import UnknownService

    assert from_remote(UnknownService("dispatch"))[0] == 503


def test_query_arguments_are_converted_by_the_route_table():
    route = ROUTE["dispatch.list_orders"]
    query = MultiDict({"limit": "5", "open": "true", "center": "511123101"})
    assert query_arguments(route, query) == {"limit": 5, "open": True, "center": "511123101"}


@pytest.mark.parametrize(
    "query,fields",
    [
        ({"limit": "x"}, {"limit": ["must be an integer"]}),
        ({"open": "maybe"}, {"open": ["must be true or false"]}),
        ({"colour": "red"}, {"colour": ["is not a parameter of this call"]}),
    ],
)
def test_bad_query_arguments_are_a_field_map(query, fields):
    with pytest.raises(GatewayError) as raised:
        query_arguments(ROUTE["dispatch.list_orders"], MultiDict(query))
    assert from_remote(raised.value)[1]["fields"] == fields


def test_a_required_query_argument_is_named():
    with pytest.raises(GatewayError) as raised:
        query_arguments(ROUTE["assessment.scores"], MultiDict({"since": "2026-01-01"}))
    assert from_remote(raised.value)[1]["fields"] == {"until": ["is required"]}


def test_body_arguments_take_the_idempotency_key_as_request_id():
    route = ROUTE["dispatch.report"]
    assert body_arguments(route, {"note": "n"}, "key-1") == {"note": "n", "request_id": "key-1"}
    assert body_arguments(route, {"note": "n", "request_id": "k"}, None)["request_id"] == "k"
    report = {"title": "t"}
    assert body_arguments(ROUTE["intake.submit_report"], report, None) == {"report": report}


def test_a_body_that_is_not_an_object_or_not_json_is_refused():
    with pytest.raises(GatewayError):
        body_arguments(ROUTE["dispatch.report"], [1, 2], None)
    with pytest.raises(GatewayError):
        json_body(b"{not json")
    assert json_body(b"  ") is None


def test_the_access_log_keeps_no_query_string():
    import logging

    from services.gateway.service import QueryStringsOut

    line = '127.0.0.1 - - [x] "GET /open311/v2/requests.json?api_key=eyJ.secret HTTP/1.1" 200'
    record = logging.LogRecord("nameko.web.server", logging.INFO, "", 0, line, None, None)
    assert QueryStringsOut().filter(record)
    assert "eyJ" not in record.getMessage() and "/open311/v2/requests.json?[query]" in record.msg
