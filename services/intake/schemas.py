"""The shape of a report (CONTRACT.md section 2, intake), checked field by field."""

from __future__ import annotations

import copy

from marshmallow import RAISE, Schema, ValidationError, fields, missing, validate, validates_schema

from shared.events import CHANGEABLE
from shared.fields import Instant, StrictInteger, Text

CHANNELS = ("12345", "110", "119", "120", "app", "platform", "center")
REQUEST_TYPES = (
    "consultation",
    "help",
    "suggestion",
    "supervision",
    "complaint",
    "report",
    "emergency",
)
GRADES = ("I", "II", "III", "IV")
PHONE = r"\A\+?[0-9][0-9 \-]{2,30}\Z"


def _not_blank(text: str) -> None:
    if not text.strip():
        raise ValidationError("must not be blank")


class LocationSchema(Schema):
    class Meta:
        unknown = RAISE

    town = Text(required=True, validate=validate.Length(min=1, max=32))
    address = Text(required=True, validate=validate.Length(min=1, max=500))
    lat = fields.Float(validate=validate.Range(min=-90, max=90), allow_nan=False)
    lon = fields.Float(validate=validate.Range(min=-180, max=180), allow_nan=False)


class ReporterSchema(Schema):
    class Meta:
        unknown = RAISE

    name = Text(validate=validate.Length(min=1, max=100))
    phone = Text(validate=validate.Regexp(PHONE, error="not a phone number"))


class ReportSchema(Schema):
    """A report as submitted. `self.context["network"]` checks codes against the network."""

    class Meta:
        unknown = RAISE

    source_system = Text(required=True, validate=validate.Length(min=1, max=64))
    external_id = Text(required=True, validate=validate.Length(min=1, max=128))
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    category = Text(required=True, validate=validate.Length(min=1, max=64))
    request_type = fields.String(required=True, validate=validate.OneOf(REQUEST_TYPES))
    title = Text(required=True, validate=[validate.Length(min=1, max=200), _not_blank])
    description = Text(load_default="", validate=validate.Length(max=4000))
    location = fields.Nested(LocationSchema, required=True)
    reported_at = Instant(required=True)
    occurred_at = Instant(allow_none=True, load_default=None)
    reporter = fields.Nested(ReporterSchema, allow_none=True, load_default=None)
    crowd_size = StrictInteger(
        allow_none=True, load_default=None, validate=validate.Range(0, 10_000_000)
    )
    casualties = StrictInteger(
        allow_none=True, load_default=None, validate=validate.Range(0, 1_000_000)
    )
    grade = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(GRADES))
    # Beyond the contract: the center that took the report, when it is not the
    # town itself (a county center's own intake, which may then assign down).
    center = Text(allow_none=True, load_default=None, validate=validate.Length(min=1, max=32))

    @validates_schema
    def _known_codes(self, data: dict, **_) -> None:
        network = self.context.get("network")
        if network is None:
            return
        errors: dict[str, list[str]] = {}
        if data.get("category") and data["category"] not in network.categories:
            errors["category"] = ["unknown category"]
        town = data.get("location", {}).get("town")
        center = network.centers.get(town) if town else None
        if town and (center is None or center.level != "town"):
            errors["location.town"] = ["not a town center of the network"]
        receiver = data.get("center")
        if receiver and center is not None:
            if receiver != town and not network.is_below(town, receiver):
                errors["center"] = ["must be the town or a center above it"]
        if errors:
            raise ValidationError(errors)


def _changeable_field(name: str) -> fields.Field:
    """A report's field as an update may set it: validated the same way, but
    absent unless given (no default fills in what an operator did not change)."""
    field = copy.copy(ReportSchema._declared_fields[name])
    field.required = False
    field.load_default = missing
    return field


class ChangesSchema(Schema.from_dict({name: _changeable_field(name) for name in CHANGEABLE})):
    """`update_incident`'s changes: any of the changeable fields, at least one."""

    class Meta:
        unknown = RAISE

    @validates_schema
    def _known_and_some(self, data: dict, **_) -> None:
        if not data:
            raise ValidationError({"_schema": ["name at least one field to change"]})
        network = self.context.get("network")
        if (
            network is not None
            and "category" in data
            and data["category"] not in network.categories
        ):
            raise ValidationError({"category": ["unknown category"]})


class SummarySchema(Schema):
    """结案 summary: the written record of a handled case."""

    class Meta:
        unknown = RAISE

    result = Text(required=True, validate=[validate.Length(min=1, max=4000), _not_blank])
    casualties = StrictInteger(validate=validate.Range(0, 1_000_000))
    losses = Text(validate=validate.Length(max=4000))
    measures = Text(validate=validate.Length(max=4000))
