"""An HTTP request's arguments as the keyword arguments of its route's RPC.

GET routes take theirs from the query string, converted by the type the
route table gives; the others from a JSON object body whose keys are the
RPC's parameter names (or which is one argument, whole: a report). A
mutating call's `request_id` comes from the `Idempotency-Key` header or the
body. Anything else is refused with a field map, before any service is
called.
"""

from __future__ import annotations

import json

from services.gateway.errors import GatewayError
from services.gateway.routes import Route

TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")


def _converted(kind, text: str):
    if kind is int:
        try:
            return int(text, 10)
        except ValueError:
            raise ValueError("must be an integer") from None
    if kind is bool:
        if text.lower() in TRUE:
            return True
        if text.lower() in FALSE:
            return False
        raise ValueError("must be true or false")
    return text


def query_arguments(route: Route, query) -> dict:
    """`query`: a MultiDict of the query string (one value per name)."""
    known = {arg.name: arg for arg in route.args}
    errors: dict[str, list[str]] = {}
    kwargs = {}
    for name in query:
        values = query.getlist(name)
        if name not in known:
            errors[name] = ["is not a parameter of this call"]
        elif len(values) > 1:
            errors[name] = ["given more than once"]
        else:
            try:
                kwargs[name] = _converted(known[name].kind, values[0])
            except ValueError as exc:
                errors[name] = [str(exc)]
    for arg in route.args:
        if arg.required and arg.name not in query and arg.name not in errors:
            errors[arg.name] = ["is required"]
    if errors:
        raise GatewayError.invalid(errors)
    return kwargs


def json_body(raw: bytes) -> object:
    if not raw.strip():
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise GatewayError.invalid({"_body": ["is not JSON (UTF-8)"]}) from None


def body_arguments(route: Route, body: object, idempotency_key: str | None) -> dict:
    """The RPC's arguments from a decoded JSON body."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise GatewayError.invalid({"_body": ["must be a JSON object"]})
    if route.body is not None:
        kwargs = {route.body: body}
    else:
        known = {arg.name for arg in route.args} | ({"request_id"} if route.mutating else set())
        errors = {name: ["is not a parameter of this call"] for name in body if name not in known}
        for arg in route.args:
            if arg.required and arg.name not in body:
                errors[arg.name] = ["is required"]
        if errors:
            raise GatewayError.invalid(errors)
        kwargs = dict(body)
    if route.mutating and idempotency_key is not None:
        kwargs["request_id"] = idempotency_key
    return kwargs
