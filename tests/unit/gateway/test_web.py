"""The gateway's HTTP side with a fake `call` in place of the services: what
reaches an RPC (arguments, the caller's token), and what the caller gets back."""

from __future__ import annotations

import base64
import json

import pytest
from nameko.exceptions import RemoteError
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.gateway.web import Gateway
from shared.network import load_network

NETWORK = load_network()


class FakeServices:
    def __init__(self, answer=None, error=None):
        self.answer, self.error = answer, error
        self.calls: list[tuple] = []

    def __call__(self, service, rpc, kwargs, authorization):
        self.calls.append((service, rpc, kwargs, authorization))
        if self.error is not None:
            raise self.error
        return self.answer


def answer(services, method="GET", path="/", max_body=1024, **kwargs):
    gateway = Gateway(NETWORK, max_body, ready=lambda: False)
    request = Request(EnvironBuilder(method=method, path=path, **kwargs).get_environ())
    return gateway.handle(request, services)


def test_a_get_calls_its_rpc_with_the_path_and_query_and_the_callers_token():
    services = FakeServices(answer=[])
    response = answer(
        services,
        path="/api/v1/orders",
        query_string={"incident_id": "i1", "overdue": "false"},
        headers={"Authorization": "Bearer t0ken"},
    )
    assert response.status_code == 200 and response.json == []
    assert services.calls == [
        ("dispatch", "list_orders", {"incident_id": "i1", "overdue": False}, "Bearer t0ken")
    ]


def test_a_post_takes_its_body_and_idempotency_key():
    services = FakeServices(answer={"order_id": "o1"})
    response = answer(
        services,
        method="POST",
        path="/api/v1/orders/o1/complete",
        json={"result": "done"},
        headers={"Authorization": "Bearer t", "Idempotency-Key": "k1"},
    )
    assert response.status_code == 200
    [(_, rpc, kwargs, _)] = services.calls
    assert (rpc, kwargs) == ("complete", {"result": "done", "request_id": "k1", "order_id": "o1"})


def test_no_token_no_call():
    services = FakeServices()
    response = answer(services, path="/api/v1/orders")
    assert response.status_code == 401 and services.calls == []


def test_a_body_over_the_limit_is_413_and_calls_nothing():
    services = FakeServices()
    response = answer(
        services,
        method="POST",
        path="/api/v1/orders/o1/report",
        data=json.dumps({"note": "x" * 2000}),
        headers={"Authorization": "Bearer t"},
    )
    assert response.status_code == 413 and services.calls == []
    assert response.json["error"] == "PayloadTooLarge"


def test_the_notice_is_served_as_the_document_it_is():
    pdf = b"%PDF-1.7 ..."
    services = FakeServices(
        answer={
            "filename": "notice-511123.pdf",
            "content_type": "application/pdf",
            "content_base64": base64.b64encode(pdf).decode(),
        }
    )
    response = answer(
        services,
        path="/api/v1/centers/511123/notice",
        query_string={"since": "a", "until": "b", "format": "pdf"},
        headers={"Authorization": "Bearer t"},
    )
    assert (response.status_code, response.mimetype, response.data) == (200, "application/pdf", pdf)
    assert 'filename="notice-511123.pdf"' in response.headers["Content-Disposition"]


@pytest.mark.parametrize("exc_type,status", [("NotFound", 404), ("MethodNotFound", 501)])
def test_a_services_error_keeps_its_name(exc_type, status):
    services = FakeServices(error=RemoteError(exc_type, "why"))
    response = answer(services, path="/api/v1/orders/x", headers={"Authorization": "Bearer t"})
    assert (response.status_code, response.json["error"]) == (status, exc_type)


def test_readyz_says_503_when_the_broker_is_away():
    response = answer(FakeServices(), path="/readyz")
    assert response.status_code == 503 and response.json["error"] == "Unavailable"


def test_an_open311_error_from_a_service_is_in_open311s_format():
    services = FakeServices(error=RemoteError("NotFound", "no incident x"))
    response = answer(services, path="/open311/v2/requests/x.json", query_string={"api_key": "k"})
    assert response.status_code == 404
    assert response.json == [{"code": 404, "description": "no incident x"}]
    assert services.calls[0][3] == "Bearer k"
