"""Domain errors, raised by rules and translated to the RPC contract at the edge.

nameko sends a raised exception to the caller as a `RemoteError` whose
`exc_type` is the class name; the names below are the contract's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence


class LinkageError(Exception):
    """Base of the errors callers are meant to see."""


class ValidationError(LinkageError):
    """A bad argument. The message is JSON `{"field": ["reason", ...]}`."""

    def __init__(self, errors: Mapping[str, Sequence[str] | Mapping]):
        self.errors = dict(errors)
        super().__init__(json.dumps(self.errors, ensure_ascii=False, sort_keys=True))


class NotFound(LinkageError):
    pass


class InvalidTransition(LinkageError):
    pass


class Forbidden(LinkageError):
    """A valid caller outside its rights; nothing changed."""


class Unauthenticated(LinkageError):
    """No valid token (missing, malformed, badly signed or expired); nothing changed."""


class Unavailable(LinkageError):
    """The call could not be completed (database or broker down); nothing was stored."""


class RetryLater(Exception):
    """A handler met an event before one it depends on (queues are not ordered
    with each other): the message is requeued, not dead-lettered."""


EXPECTED = (ValidationError, NotFound, InvalidTransition, Forbidden, Unauthenticated, Unavailable)


def flatten_marshmallow(messages: Mapping) -> dict[str, list[str]]:
    """Turn marshmallow's nested messages into `{"a.b": ["reason"]}`."""
    flat: dict[str, list[str]] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, (list, tuple)):
            for item in value:
                if isinstance(item, (Mapping, list, tuple)):
                    walk(prefix, item)
                else:
                    flat.setdefault(prefix or "_schema", []).append(str(item))
        else:
            flat.setdefault(prefix or "_schema", []).append(str(value))

    walk("", messages)
    return flat
