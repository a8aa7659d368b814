"""marshmallow fields that refuse what a lenient parser would let through."""

from __future__ import annotations

from marshmallow import ValidationError, fields


class Text(fields.String):
    """A string without NUL or other C0 control characters (tab and newlines allowed)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in text):
            raise ValidationError("contains control characters")
        if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
            raise ValidationError("contains unpaired surrogates")
        return text


class StrictInteger(fields.Integer):
    """An integer given as an integer: not a float, a string or a boolean."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _validated(self, value):
        if isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)
