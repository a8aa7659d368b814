"""The HTTP gateway over real HTTP, in front of the real services, RabbitMQ
and databases (SQLite and PostgreSQL): every route of the API, each error
status, Open311 GeoReport v2 from a citizen app's request to its closing,
and the metrics by route template."""

from __future__ import annotations

import time
import uuid
from xml.etree import ElementTree

import pytest
from kombu import Connection, Exchange, Queue
from prometheus_client import REGISTRY

from services.gateway.routes import ROUTES
from tests.conftest import BACKENDS, make_token, wait_for
from tests.support.gateway import gateway_platform
from tests.support.reports import DONGSHAN, report

pytestmark = pytest.mark.integration

COUNTY = "511123"
PLATFORM = {"kind": "platform", "sub": "app-gw", "source_systems": ["citizen-app"]}
CENTER = make_token("center", "duty-dongshan", center=DONGSHAN)


@pytest.fixture(scope="module", params=BACKENDS)
def http(request, tmp_path_factory):
    with gateway_platform(request.param, tmp_path_factory.mktemp("gw")) as started:
        yield started


def ok(response, status: int = 200):
    assert response.status_code == status, response.text
    return response.json() if "json" in response.headers.get("Content-Type", "") else response


def submitted(http, **changes) -> str:
    return ok(http.post("/api/v1/incidents", json=report(**changes)))["incident_id"]


def orders_of(http, incident_id: str, expected: int = 1, **filters) -> list[dict]:
    return wait_for(
        lambda: (
            len(
                found := ok(
                    http.get("/api/v1/orders", params={"incident_id": incident_id, **filters})
                )
            )
            >= expected
            and found
        ),
        message=f"{expected} order(s) of {incident_id}",
    )


def department(order: dict) -> str:
    return make_token("department", center=order["center"], department=order["department"])


def error_of(response, status: int, error: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    return body


# -- the gateway itself -------------------------------------------------------------


def test_health_readiness_and_the_described_api(http):
    assert ok(http.get("/healthz", token=None)) == {"status": "ok"}
    assert ok(http.get("/readyz", token=None)) == {"status": "ready"}
    document = ok(http.get("/openapi.json", token=None))
    assert document["openapi"].startswith("3.1")
    described = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    assert described == {(r.method, r.template) for r in ROUTES}
    assert "Report" in document["components"]["schemas"]  # intake's own ReportSchema
    page = http.get("/docs", token=None)
    assert page.status_code == 200 and "/api/v1/orders/{order_id}" in page.text


# -- every route ---------------------------------------------------------------------


def test_an_incident_from_report_to_closing_over_http(http):
    body = report()
    first = ok(http.post("/api/v1/incidents", json=body))
    again = ok(http.post("/api/v1/incidents", json=body))
    assert (first["status"], again["status"]) == ("accepted", "duplicate")
    incident = first["incident_id"]
    assert again["incident_id"] == incident
    seen = ok(http.get(f"/api/v1/incidents/{incident}", token=CENTER))
    assert seen["reporter"]["name"] == "王小明"  # in scope for the town's center
    listed = ok(http.get("/api/v1/incidents", params={"category": "water.burst_main"}))
    assert incident in {i["incident_id"] for i in listed}

    [lead] = orders_of(http, incident)
    order, unit = lead["order_id"], department(lead)
    assert ok(http.get(f"/api/v1/orders/{order}", token=unit))["order_id"] == order
    assert ok(http.get(f"/api/v1/incidents/{incident}/holders")) == [[DONGSHAN, "dongshan-water"]]
    key = {"Idempotency-Key": uuid.uuid4().hex}
    accepted = ok(http.post(f"/api/v1/orders/{order}/accept", token=unit, headers=key))
    assert ok(http.post(f"/api/v1/orders/{order}/accept", token=unit, headers=key)) == accepted
    ok(http.post(f"/api/v1/orders/{order}/arrive", token=unit))
    ok(http.post(f"/api/v1/orders/{order}/report", token=unit, json={"note": "已关阀"}))
    done = ok(http.post(f"/api/v1/orders/{order}/complete", token=unit, json={"result": "已修复"}))
    assert done["status"] == "completed"

    # one more unit, urged, handed to another, then withdrawn
    added = ok(
        http.post(
            f"/api/v1/incidents/{incident}/orders",
            token=CENTER,
            json={"department": "dongshan-road", "reason": "路面修复"},
        )
    )
    urged = ok(http.post(f"/api/v1/orders/{added['order_id']}/urge", json={"note": "尽快"}))
    assert urged["order_id"] == added["order_id"]
    moved = ok(
        http.post(
            f"/api/v1/orders/{added['order_id']}/reassign",
            token=CENTER,
            json={"department": "dongshan-urban", "reason": "城管负责"},
        )
    )
    ok(http.post(f"/api/v1/orders/{moved['order_id']}/cancel", json={"reason": "不再需要"}))

    changes = {"changes": {"title": "主街水管爆裂"}, "reason": "更正"}
    updated = ok(http.post(f"/api/v1/incidents/{incident}/update", token=CENTER, json=changes))
    assert updated["changes"]["title"]["new"] == "主街水管爆裂"
    rated = ok(
        wait_for(
            lambda: (
                r
                if (
                    r := http.post(
                        f"/api/v1/incidents/{incident}/satisfaction",
                        token=CENTER,
                        json={"rating": "satisfied"},
                    )
                ).status_code
                != 404
                else None
            ),
            message="assessment knows the incident",
        )
    )
    assert rated["rating"] == "satisfied"
    summary = {"summary": {"result": "已修复", "casualties": 0}}
    closed = ok(http.post(f"/api/v1/incidents/{incident}/close", token=CENTER, json=summary))
    assert closed["status"] == "closed"
    reopened = ok(http.post(f"/api/v1/incidents/{incident}/reopen", json={"reason": "复发"}))
    assert reopened["status"] == "open"
    access = ok(
        http.get(
            "/api/v1/personal-data-access",
            params={"since": "2026-01-01T00:00:00+00:00", "until": "2100-01-01T00:00:00+00:00"},
        )
    )
    assert {"duty-dongshan", incident} <= {v for row in access for v in row.values()}


def test_a_returned_order_and_command_moving_up_and_down_over_http(http):
    incident = submitted(http, category="dispute.neighbour")
    [lead] = orders_of(http, incident)
    returned = ok(
        http.post(
            f"/api/v1/orders/{lead['order_id']}/return",
            token=department(lead),
            json={"reason": "不属本单位职责"},
        )
    )
    assert returned["status"] == "returned"
    escalated = ok(
        http.post(f"/api/v1/incidents/{incident}/escalate", token=CENTER, json={"reason": "复杂"})
    )
    assert escalated["to_center"] == COUNTY
    county = make_token("center", "duty-qianwei", center=COUNTY)
    down = ok(
        http.post(
            f"/api/v1/incidents/{incident}/assign-down", token=county, json={"to_center": DONGSHAN}
        )
    )
    assert down["to_center"] == DONGSHAN
    chain = ok(http.get(f"/api/v1/incidents/{incident}/chain"))
    assert [step["reason"] for step in chain] == ["manual", "assign_down"]
    assert ok(http.get(f"/api/v1/incidents/{incident}/command"))["center"] == DONGSHAN
    [rerouted] = orders_of(http, incident, 1, open="true", department="dongshan-justice")
    unit = department(rerouted)
    ok(http.post(f"/api/v1/orders/{rerouted['order_id']}/accept", token=unit))
    asked = ok(
        http.post(
            f"/api/v1/orders/{rerouted['order_id']}/reinforcement",
            token=unit,
            json={"reason": "人手不足", "crowd_size": 20},
        )
    )
    assert asked["order_id"] == rerouted["order_id"]


def test_the_duty_room_and_the_scores_over_http(http):
    roster = {
        "leader": {"name": "李四", "phone": "13900001111"},
        "officers": [{"name": "张三", "phone": "13900002222"}],
    }
    path = f"/api/v1/centers/{DONGSHAN}/duty/2026-12-01"
    ok(http.call("PUT", path, token=CENTER, json=roster))
    assert ok(http.get(path, token=CENTER))["leader"]["name"] == "李四"
    assert ok(http.get(f"/api/v1/centers/{DONGSHAN}/board", token=CENTER))["center"] == DONGSHAN
    window = {"since": "2026-01-01T00:00:00+08:00", "until": "2100-01-01T00:00:00+08:00"}
    rows = ok(http.get(f"/api/v1/centers/{DONGSHAN}/scores", token=CENTER, params=window))
    assert {"dongshan-water"} <= {row["department"] for row in rows}
    notice = ok(http.get(f"/api/v1/centers/{DONGSHAN}/report", token=CENTER, params=window))
    assert notice["center"] == DONGSHAN and "totals" in notice


def test_information_reports_the_ranking_and_the_notice_over_http(http):
    incident = submitted(http, category="mass.gathering", crowd_size=40)  # must be reported
    orders_of(http, incident)
    first = {"kind": "first", "text": "东山镇政府门前约 40 人聚集"}
    filed = ok(
        wait_for(
            lambda: (
                r
                if (
                    r := http.post(
                        f"/api/v1/incidents/{incident}/information-reports",
                        token=CENTER,
                        json=first,
                    )
                ).status_code
                != 404
                else None
            ),
            message="escalation knows the incident",
        )
    )
    listed = ok(http.get(f"/api/v1/incidents/{incident}/information-reports", token=CENTER))
    assert [r["report_id"] for r in listed] == [filed["report_id"]]
    county = make_token("center", "duty-qianwei", center=COUNTY)
    inbox = ok(
        http.get(f"/api/v1/centers/{COUNTY}/inbox", token=county, params={"unacknowledged": "true"})
    )
    assert filed["report_id"] in {r["report_id"] for r in inbox}
    ok(http.post(f"/api/v1/information-reports/{filed['report_id']}/acknowledge", token=county))
    inbox = ok(
        http.get(f"/api/v1/centers/{COUNTY}/inbox", token=county, params={"unacknowledged": "true"})
    )
    assert filed["report_id"] not in {r["report_id"] for r in inbox}

    window = {"since": "2026-01-01T00:00:00+08:00", "until": "2100-01-01T00:00:00+08:00"}
    ranked = ok(http.get(f"/api/v1/centers/{COUNTY}/ranking", token=county, params=window))
    assert DONGSHAN in {row["center"] for row in ranked}
    notice = http.get(
        f"/api/v1/centers/{DONGSHAN}/notice", token=CENTER, params={**window, "format": "html"}
    )
    assert notice.status_code == 200 and notice.headers["Content-Type"].startswith("text/html")
    assert "attachment" in notice.headers["Content-Disposition"] and "<html" in notice.text


# -- errors --------------------------------------------------------------------------


def test_each_error_of_the_contract_has_its_status_and_changes_nothing(http):
    bad = error_of(
        http.post("/api/v1/incidents", json=report(channel="telegram")), 400, "ValidationError"
    )
    assert set(bad["fields"]) == {"channel"}
    bad = error_of(http.get("/api/v1/orders", params={"limit": "many"}), 400, "ValidationError")
    assert bad["fields"] == {"limit": ["must be an integer"]}
    bad = error_of(http.post("/api/v1/orders/x/report", json={"not": 1}), 400, "ValidationError")
    assert set(bad["fields"]) == {"not", "note"}
    error_of(http.post("/api/v1/incidents", data=b"{no json"), 400, "ValidationError")

    error_of(http.get("/api/v1/orders", token=None), 401, "Unauthenticated")
    error_of(http.get("/api/v1/orders", token="not-a-token"), 401, "Unauthenticated")
    expired = make_token(ttl_s=-10)
    error_of(http.get("/api/v1/orders", token=expired), 401, "Unauthenticated")

    incident = submitted(http)
    platform = make_token(**PLATFORM)  # another platform's incident
    error_of(http.get(f"/api/v1/incidents/{incident}", token=platform), 403, "Forbidden")
    error_of(http.get("/api/v1/incidents/no-such-incident"), 404, "NotFound")
    [lead] = orders_of(http, incident)
    error_of(http.post(f"/api/v1/orders/{lead['order_id']}/arrive"), 409, "InvalidTransition")
    assert ok(http.get(f"/api/v1/orders/{lead['order_id']}"))["status"] == "dispatched"

    huge = report(description="x" * (64 * 1024))
    error_of(http.post("/api/v1/incidents", json=huge), 413, "PayloadTooLarge")
    error_of(http.call("DELETE", "/api/v1/orders"), 405, "MethodNotAllowed")
    assert http.call("OPTIONS", "/api/v1/orders").headers["Allow"] == "GET, HEAD"
    error_of(http.get("/api/v1/nothing-here"), 404, "NotFound")


def test_a_service_that_is_not_there_or_does_not_answer_is_503_not_a_hang(tmp_path):
    """A gateway whose services are not running (a vhost of its own): no
    queue takes dispatch's calls; then one does, and nobody consumes it."""
    with gateway_platform("sqlite", tmp_path, services=(), GATEWAY_RPC_TIMEOUT_S=1) as alone:
        error_of(alone.get("/api/v1/orders"), 503, "UnknownService")
        with Connection(alone.amqp_uri) as connection:
            stuck = Queue(
                "rpc-dispatch",
                Exchange("nameko-rpc", type="topic", durable=True),
                routing_key="dispatch.*",
            )
            stuck(connection.channel()).declare()
        started = time.monotonic()
        body = error_of(alone.get("/api/v1/orders"), 503, "Unavailable")
        assert body["message"] == "dispatch did not answer" and time.monotonic() - started < 10
        assert ok(alone.get("/readyz", token=None)) == {"status": "ready"}


# -- Open311 GeoReport v2 ------------------------------------------------------------


def test_open311_from_a_citizen_apps_request_to_its_closing(http):
    assert ok(http.get("/open311/v2/discovery.json", token=None))["endpoints"]
    services = ok(http.get("/open311/v2/services.json", token=None))
    assert {"service_code": "water.burst_main", "service_name": "自来水管破裂"}.items() <= next(
        s for s in services if s["service_code"] == "water.burst_main"
    ).items()
    definition = ok(http.get("/open311/v2/services/water.burst_main.json", token=None))
    [town] = definition["attributes"]
    assert town["code"] == "town" and town["required"] is True
    assert DONGSHAN in {value["key"] for value in town["values"]}
    xml = http.get("/open311/v2/services.xml", token=None)
    assert ElementTree.fromstring(xml.content).tag == "services"

    key = make_token(**PLATFORM)
    form = {
        "api_key": key,
        "service_code": "water.burst_main",
        "lat": "29.21",
        "long": "103.95",
        "address_string": "东山镇主街 8 号",
        "attribute[town]": DONGSHAN,
        "description": "水管破裂，路面积水",
        "first_name": "小明",
        "last_name": "王",
        "phone": "13800001234",
        "device_id": "phone-1",
    }
    [posted] = ok(http.post("/open311/v2/requests.json", token=None, data=form))
    request_id = posted["service_request_id"]
    [found] = ok(
        http.get(f"/open311/v2/requests/{request_id}.json", token=None, params={"api_key": key})
    )
    assert (found["status"], found["service_code"], found["lat"]) == (
        "open",
        "water.burst_main",
        29.21,
    )
    listed = ok(
        http.get(
            "/open311/v2/requests.json",
            token=None,
            params={"api_key": key, "service_request_id": f"{request_id},unknown-id"},
        )
    )
    assert [r["service_request_id"] for r in listed] == [request_id]
    by_code = ok(
        http.get(
            "/open311/v2/requests.json",
            token=None,
            params={"api_key": key, "service_code": "water.burst_main", "status": "open"},
        )
    )
    assert request_id in {r["service_request_id"] for r in by_code}

    [order] = orders_of(http, request_id)
    ok(http.post(f"/api/v1/orders/{order['order_id']}/cancel", json={"reason": "已自行修复"}))
    summary = {"summary": {"result": "居民已自行关阀，供水恢复"}}
    ok(http.post(f"/api/v1/incidents/{request_id}/close", token=CENTER, json=summary))
    xml = http.get(f"/open311/v2/requests/{request_id}.xml", token=None, params={"api_key": key})
    request = ElementTree.fromstring(xml.content).find("request")
    assert request.findtext("status") == "closed"
    assert request.findtext("service_notice") == "居民已自行关阀，供水恢复"


def test_open311_errors_are_its_list_of_code_and_description(http, caplog):
    caplog.set_level("INFO", logger="nameko.web.server")
    key = make_token(**PLATFORM)
    form = {"api_key": key, "service_code": "water.burst_main", "address_string": "主街"}
    [error] = error_list(http.post("/open311/v2/requests.json", token=None, data=form), 400)
    assert "attribute[town]" in error["description"]
    error_list(
        http.post("/open311/v2/requests.json", token=None, data={**form, "api_key": "x"}), 401
    )
    error_list(http.get("/open311/v2/services/no.such.json", token=None), 404)
    error_list(http.get("/open311/v2/requests/abc.json", token=None), 401)
    bad_town = {**form, "attribute[town]": COUNTY}
    [error] = error_list(http.post("/open311/v2/requests.json", token=None, data=bad_town), 400)
    assert "location.town" in error["description"]
    xml = http.get("/open311/v2/services/no.such.xml", token=None)
    assert xml.status_code == 404
    assert ElementTree.fromstring(xml.content).find("error").findtext("code") == "404"
    ok(http.get("/open311/v2/requests.json", token=None, params={"api_key": key}))
    assert "/open311/v2/requests.json?[query]" in caplog.text  # the access log...
    assert key not in caplog.text  # ...without the api_key


def error_list(response, status: int) -> list[dict]:
    assert response.status_code == status, response.text
    errors = response.json()
    assert [set(e) for e in errors] == [{"code", "description"}] and errors[0]["code"] == status
    return errors


# -- metrics -------------------------------------------------------------------------


def test_requests_are_counted_by_route_template_never_by_raw_path(http):
    ok(http.get("/api/v1/incidents/no-such-incident"), 404)
    routes = {
        sample.labels["route"]
        for family in REGISTRY.collect()
        if family.name == "linkage_http_requests"
        for sample in family.samples
    }
    assert "/api/v1/incidents/{incident_id}" in routes
    assert not [r for r in routes if "no-such-incident" in r]
