"""The route table against the services' RPCs: every `@api` RPC has a route,
and every route's arguments are exactly its RPC's parameters."""

from __future__ import annotations

import inspect

import pytest
from marshmallow import Schema

from services import service_classes
from services.gateway.openapi import document
from services.gateway.routes import ROUTES, Route
from shared.dependencies import ResilientRpc

KIND_OF_ANNOTATION = {"str": str, "int": int, "bool": bool, "dict": "object", "list": "array"}


def rpcs() -> dict[str, object]:
    """`service.rpc` → method, for every RPC entrypoint of every service."""
    found = {}
    for cls in service_classes():
        for name, method in inspect.getmembers(cls, inspect.isfunction):
            entrypoints = getattr(method, "nameko_entrypoints", ())
            if any(isinstance(e, ResilientRpc) for e in entrypoints):
                found[f"{cls.name}.{name}"] = method
    return found


RPCS = rpcs()
ROUTED = {route.endpoint: route for route in ROUTES}


def test_every_rpc_of_every_service_has_a_route():
    assert RPCS, "no RPCs found: the test would pass on nothing"
    assert sorted(set(RPCS) - set(ROUTED)) == []


def test_every_route_calls_an_rpc():
    assert sorted(set(ROUTED) - set(RPCS)) == []


def test_a_route_table_entry_per_rpc_and_no_path_twice_per_method():
    assert len(ROUTED) == len(ROUTES)
    assert len({(r.method, r.template) for r in ROUTES}) == len(ROUTES)


def _base_kind(annotation: str):
    parts = [p.strip() for p in annotation.split("|") if p.strip() != "None"]
    return KIND_OF_ANNOTATION.get(parts[0].split("[")[0]) if len(parts) == 1 else None


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.endpoint)
def test_a_routes_arguments_are_its_rpcs_parameters(route: Route):
    signature = inspect.signature(RPCS[route.endpoint])
    params = {n: p for n, p in signature.parameters.items() if n not in ("self", "request_id")}
    given = {a.name: a for a in route.args}
    assert set(route.path_params) | set(given) == set(params)
    assert not set(route.path_params) & set(given)
    assert route.mutating == ("request_id" in signature.parameters)
    for name, arg in given.items():
        param = params[name]
        assert arg.required == (param.default is inspect.Parameter.empty), name
        kind = _base_kind(str(param.annotation))
        if isinstance(arg.kind, type) and issubclass(arg.kind, Schema):
            assert kind == "object", name
        else:
            assert kind == arg.kind, (name, param.annotation)


def test_the_openapi_document_describes_each_route_with_the_services_schemas():
    paths = document()["paths"]
    for route in ROUTES:
        operation = paths[route.template][route.method.lower()]
        assert operation["operationId"] == f"{route.service}_{route.rpc}"
        assert {"200", "400", "401", "403", "404", "409", "503"} <= set(operation["responses"])
    schemas = document()["components"]["schemas"]
    report = schemas["Report"]
    assert report["additionalProperties"] is False
    assert report["properties"]["channel"]["enum"][0] == "12345"
    assert report["properties"]["title"]["maxLength"] == 200
    assert {"Changes", "Summary", "Location", "Reporter"} <= set(schemas)
