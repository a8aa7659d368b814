"""`/openapi.json`: the API described from the route table and the services'
own marshmallow schemas (apispec), so the document follows the code."""

from __future__ import annotations

import functools

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from services.gateway.errors import STATUS
from services.gateway.routes import ROUTES, Arg, Route

TITLE = "Social emergency linkage platform (社会应急联动平台)"
VERSION = "1"
ERROR_STATUSES = sorted({status for status in STATUS.values()} | {500})
SCALARS = {str: {"type": "string"}, int: {"type": "integer"}, bool: {"type": "boolean"}}
BODY_KINDS = {"object": {"type": "object"}, "array": {"type": "array"}}
ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "the contract's error, e.g. NotFound"},
        "message": {"type": "string"},
        "fields": {
            "type": "object",
            "description": "ValidationError: reasons by field",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
}
IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "the call's request_id: repeated, it answers as the first time",
    "schema": {"type": "string", "minLength": 1, "maxLength": 64},
}


def _arg_schema(spec: APISpec, arg: Arg) -> dict:
    if arg.kind in SCALARS:
        schema = dict(SCALARS[arg.kind])
    elif arg.kind in BODY_KINDS:
        schema = dict(BODY_KINDS[arg.kind])
    else:
        name = arg.kind.__name__.removesuffix("Schema")
        if name not in spec.components.schemas:
            spec.components.schema(name, schema=arg.kind)
        schema = {"$ref": f"#/components/schemas/{name}"}
    if arg.description:
        schema["description"] = arg.description
    return schema


def _answer(route: Route) -> dict:
    if route.returns == "document":
        return {
            "description": "the document, served with its own content type",
            "content": {"*/*": {"schema": {"type": "string"}}},
        }
    kind = {"type": "array"} if route.returns == "array" else {"type": "object"}
    return {"description": "the RPC's answer", "content": {"application/json": {"schema": kind}}}


def _request_body(spec: APISpec, route: Route) -> dict | None:
    if route.body is not None:
        [arg] = [a for a in route.args if a.name == route.body]
        schema = _arg_schema(spec, arg)
    else:
        schema = {
            "type": "object",
            "additionalProperties": False,
            "properties": {a.name: _arg_schema(spec, a) for a in route.args},
            "required": [a.name for a in route.args if a.required],
        }
        if route.mutating:
            schema["properties"]["request_id"] = IDEMPOTENCY["schema"]
    required = route.body is not None or any(a.required for a in route.args)
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def operation(spec: APISpec, route: Route) -> dict:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in route.path_params
    ]
    if route.in_query:
        parameters += [
            {"name": a.name, "in": "query", "required": a.required, "schema": _arg_schema(spec, a)}
            for a in route.args
        ]
    if route.mutating:
        parameters.append(IDEMPOTENCY)
    responses = {"200": _answer(route)}
    for status in ERROR_STATUSES:
        responses[str(status)] = {"$ref": "#/components/responses/Error"}
    found = {
        "operationId": f"{route.service}_{route.rpc}",
        "summary": route.summary or f"{route.service}.{route.rpc}",
        "tags": [route.service],
        "parameters": parameters,
        "responses": responses,
    }
    if not route.in_query:
        found["requestBody"] = _request_body(spec, route)
    return found


@functools.cache
def document() -> dict:
    """The whole document (built once per process)."""
    spec = APISpec(
        title=TITLE,
        version=VERSION,
        openapi_version="3.1.0",
        plugins=[MarshmallowPlugin()],
        info={"description": "Every RPC of the contract over HTTP (CONTRACT.md section 10)."},
        security=[{"bearer": []}],
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Error", ERROR)
    spec.components.response(
        "Error",
        {
            "description": "an error of the contract",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        },
    )
    paths: dict[str, dict] = {}
    for route in ROUTES:
        paths.setdefault(route.template, {})[route.method.lower()] = operation(spec, route)
    for template, operations in paths.items():
        spec.path(path=template, operations=operations)
    return spec.to_dict()
