"""The contract's errors as HTTP statuses (CONTRACT.md sections 2 and 10).

nameko hands the gateway a service's error as a `RemoteError` whose
`exc_type` names the contract's exception; its message is the exception's,
JSON `{"field": ["reason", ...]}` for a `ValidationError`. The body of every
error answer is `{"error": <type>, "message": str, "fields"?: {...}}`.
"""

from __future__ import annotations

import json

STATUS = {
    "ValidationError": 400,
    "IncorrectSignature": 400,  # arguments nameko could not bind to the RPC
    "Unauthenticated": 401,
    "Forbidden": 403,
    "NotFound": 404,
    "MethodNotAllowed": 405,  # the path exists, not for this method
    # a route whose RPC the answering service lacks: a gateway newer than its
    # services, in a rolling upgrade
    "MethodNotFound": 501,
    "InvalidTransition": 409,
    "PayloadTooLarge": 413,
    "Unavailable": 503,
    "UnknownService": 503,
    "Timeout": 503,
}
INTERNAL = 500
ERROR_TYPES = tuple(STATUS)


class GatewayError(Exception):
    """An error the gateway finds itself, before or instead of calling a service."""

    def __init__(self, exc_type: str, message: str):
        super().__init__(message)
        self.exc_type = exc_type
        self.value = message

    @classmethod
    def invalid(cls, fields: dict[str, list[str]]) -> GatewayError:
        return cls("ValidationError", json.dumps(fields, ensure_ascii=False, sort_keys=True))


def field_map(message: str) -> dict[str, list[str]]:
    """A `ValidationError`'s field map from its message; `_schema` if it is not one."""
    try:
        fields = json.loads(message)
    except (TypeError, ValueError):
        return {"_schema": [str(message)]}
    if isinstance(fields, dict):
        return fields
    return {"_schema": [str(message)]}


def error_answer(exc_type: str, message: str) -> tuple[int, dict]:
    """Status and body for a service's (or the gateway's) error. Anything the
    contract does not name is a 500 whose body says no more than that."""
    status = STATUS.get(exc_type)
    if status is None:
        return INTERNAL, {"error": "InternalError", "message": "the call failed unexpectedly"}
    body: dict = {"error": exc_type, "message": message}
    if exc_type == "ValidationError":
        body["fields"] = field_map(message)
        body["message"] = "invalid arguments"
    elif exc_type == "IncorrectSignature":
        body = {"error": "ValidationError", "message": message, "fields": {"_schema": [message]}}
    return status, body


def from_remote(error) -> tuple[int, dict]:
    """A nameko `RemoteError` (or the gateway's own error) as status and body."""
    exc_type = getattr(error, "exc_type", None) or type(error).__name__
    message = getattr(error, "value", None)
    if message is None:
        message = getattr(error, "message", None) or str(error)
    return error_answer(exc_type, message)
