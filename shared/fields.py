"""Checks of what callers send: marshmallow fields, and the same rules for
plain RPC arguments, so every service refuses the same things the same way."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import ValidationError, fields

from shared.errors import ValidationError as ArgumentError

# Instants outside this range are typing errors or attacks, and some would not
# even convert to UTC.
EARLIEST_YEAR, LATEST_YEAR = 1900, 2200


def text_problem(value: Any, max_length: int) -> str | None:
    """Why a caller's string is refused, or None when it is fine."""
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty string"
    if len(value) > max_length:
        return f"must be at most {max_length} characters"
    return characters_problem(value)


def characters_problem(text: str) -> str | None:
    if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in text):
        return "contains control characters"
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        return "contains unpaired surrogates"
    return None


def text_arg(
    errors: dict, name: str, value: Any, max_length: int = 64, required: bool = True
) -> str | None:
    """Check one string argument, collecting the reason in `errors`."""
    if value is None and not required:
        return None
    problem = text_problem(value, max_length)
    if problem:
        errors[name] = [problem]
        return None
    return value


def require_text(name: str, value: Any, max_length: int = 64, required: bool = True) -> str | None:
    """`text_arg` for a single argument: raises the contract's `ValidationError`."""
    errors: dict = {}
    checked = text_arg(errors, name, value, max_length, required)
    if errors:
        raise ArgumentError(errors)
    return checked


def require_count(name: str, value: Any, required: bool = False) -> int | None:
    """A non-negative integer argument (a crowd size, a casualty count)."""
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise ArgumentError({name: ["must be a non-negative integer"]})
    return value


def instant_problem(value: datetime) -> str | None:
    if value.tzinfo is None or value.utcoffset() is None:
        return "must carry an offset"
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        return f"must be between {EARLIEST_YEAR} and {LATEST_YEAR}"
    if not EARLIEST_YEAR <= utc.year <= LATEST_YEAR:
        return f"must be between {EARLIEST_YEAR} and {LATEST_YEAR}"
    return None


def instant_arg(errors: dict, name: str, value: Any) -> datetime | None:
    """An ISO 8601 instant with an offset, within a sane range."""
    parsed = None
    if isinstance(value, str) and len(value) <= 64:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
    if parsed is None:
        errors[name] = ["must be an ISO 8601 date-time with an offset"]
        return None
    problem = instant_problem(parsed)
    if problem:
        errors[name] = [problem]
        return None
    return parsed


class Text(fields.String):
    """A string without NUL or other C0 control characters (tab and newlines allowed)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        problem = characters_problem(text)
        if problem:
            raise ValidationError(problem)
        return text


class Instant(fields.AwareDateTime):
    """An ISO 8601 date-time with an offset, between 1900 and 2200 in UTC."""

    def _deserialize(self, value, attr, data, **kwargs):
        instant = super()._deserialize(value, attr, data, **kwargs)
        problem = instant_problem(instant)
        if problem:
            raise ValidationError(problem)
        return instant


class StrictInteger(fields.Integer):
    """An integer given as an integer: not a float, a string or a boolean."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _validated(self, value):
        if isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)
