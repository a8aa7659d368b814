"""The HTTP routes of the API (CONTRACT.md section 10): one line per RPC.

Each route names the RPC it calls and the arguments it takes besides those
in its path: from the query string for GET, from the JSON body otherwise. An
argument that is a structured payload names the marshmallow schema the
service itself validates it with, so the OpenAPI document (openapi.py)
describes exactly what the service accepts. tests/unit/gateway checks this
table against the services' RPCs: every `@api` RPC has a route, and every
route's arguments are its RPC's parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from marshmallow import Schema

from services.intake.schemas import ChangesSchema, ReportSchema, SummarySchema

PREFIX = "/api/v1"
_PATH_PARAM = re.compile(r"<(?:\w+:)?(\w+)>")


@dataclass(frozen=True)
class Arg:
    """One argument besides the path's. `kind`: str, int, bool, object,
    array, or a marshmallow schema (the service's own)."""

    name: str
    kind: type | str = str
    required: bool = True
    description: str = ""


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # werkzeug rule syntax, under PREFIX
    service: str
    rpc: str
    args: tuple[Arg, ...] = ()
    mutating: bool = False  # takes `request_id` (Idempotency-Key)
    returns: str = "object"  # or "array"; "document" for a file (notice)
    body: str | None = None  # the JSON body is this one argument, whole
    summary: str = ""

    @property
    def rule(self) -> str:
        return PREFIX + self.path

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(_PATH_PARAM.findall(self.path))

    @property
    def endpoint(self) -> str:
        return f"{self.service}.{self.rpc}"

    @property
    def template(self) -> str:
        """The path as OpenAPI and the metrics name it: `/api/v1/orders/{order_id}`."""
        return _PATH_PARAM.sub(r"{\1}", self.rule)

    @property
    def in_query(self) -> bool:
        return self.method == "GET"


def _get(path, service, rpc, *args, returns="object", summary=""):
    return Route("GET", path, service, rpc, tuple(args), returns=returns, summary=summary)


def _post(path, service, rpc, *args, method="POST", body=None, summary=""):
    return Route(method, path, service, rpc, tuple(args), True, body=body, summary=summary)


def _optional(name: str, kind=str, description: str = "") -> Arg:
    return Arg(name, kind, False, description)


SINCE_UNTIL = (Arg("since", description="ISO 8601 with offset"), Arg("until"))
REASON = Arg("reason")

ROUTES: tuple[Route, ...] = (
    # intake (CONTRACT.md sections 2, 6, 7)
    _post(
        "/incidents",
        "intake",
        "submit_report",
        Arg("report", ReportSchema),
        body="report",
        summary="Submit a report; the same source_system and external_id twice is one incident",
    ),
    _get(
        "/incidents",
        "intake",
        "list_incidents",
        _optional("category"),
        _optional("since"),
        _optional("until"),
        _optional("limit", int),
        returns="array",
        summary="Incidents the caller may read, newest first (reporter masked)",
    ),
    _get("/incidents/<incident_id>", "intake", "get_incident", summary="One incident"),
    _post(
        "/incidents/<incident_id>/update",
        "intake",
        "update_incident",
        Arg("changes", ChangesSchema),
        REASON,
    ),
    _post(
        "/incidents/<incident_id>/close",
        "intake",
        "close_incident",
        Arg("summary", SummarySchema),
        summary="结案: once every order is completed, cancelled or returned",
    ),
    _post("/incidents/<incident_id>/reopen", "intake", "reopen_incident", REASON),
    _get(
        "/personal-data-access",
        "intake",
        "personal_data_access",
        *SINCE_UNTIL,
        _optional("limit", int),
        returns="array",
        summary="Who saw a reporter's name and phone in full (admins)",
    ),
    # dispatch: orders (sections 2, 7)
    _get(
        "/orders",
        "dispatch",
        "list_orders",
        _optional("incident_id"),
        _optional("center"),
        _optional("department"),
        _optional("status"),
        _optional("limit", int),
        _optional("recipient"),
        _optional("overdue", bool),
        _optional("open", bool, "not completed, cancelled or returned"),
        returns="array",
    ),
    _get("/orders/<order_id>", "dispatch", "get_order", summary="One order with its history"),
    _get(
        "/incidents/<incident_id>/holders",
        "dispatch",
        "holders",
        returns="array",
        summary="[center, department] of every order on the incident",
    ),
    _post("/orders/<order_id>/accept", "dispatch", "accept"),
    _post("/orders/<order_id>/arrive", "dispatch", "arrive"),
    _post("/orders/<order_id>/report", "dispatch", "report", Arg("note")),
    _post("/orders/<order_id>/complete", "dispatch", "complete", Arg("result")),
    _post(
        "/orders/<order_id>/reinforcement",
        "dispatch",
        "request_reinforcement",
        REASON,
        _optional("crowd_size", int),
    ),
    _post("/orders/<order_id>/return", "dispatch", "return_order", REASON),
    _post("/incidents/<incident_id>/orders", "dispatch", "add_order", Arg("department"), REASON),
    _post("/orders/<order_id>/cancel", "dispatch", "cancel_order", REASON),
    _post("/orders/<order_id>/reassign", "dispatch", "reassign", Arg("department"), REASON),
    _post("/orders/<order_id>/urge", "dispatch", "urge", Arg("note")),
    # dispatch: the duty room
    _post(
        "/centers/<center>/duty/<date>",
        "dispatch",
        "set_duty",
        Arg("leader", "object", description='{"name", "phone"}'),
        Arg("officers", "array", description='[{"name", "phone"}, ...]'),
        method="PUT",
    ),
    _get("/centers/<center>/duty/<date>", "dispatch", "duty"),
    _get("/centers/<center>/board", "dispatch", "board"),
    # escalation (sections 2, 8)
    _post("/incidents/<incident_id>/escalate", "escalation", "escalate", REASON),
    _post("/incidents/<incident_id>/assign-down", "escalation", "assign_down", Arg("to_center")),
    _get("/incidents/<incident_id>/chain", "escalation", "chain", returns="array"),
    _get("/incidents/<incident_id>/command", "escalation", "command"),
    _post(
        "/incidents/<incident_id>/information-reports",
        "escalation",
        "file_report",
        Arg("kind", description="first | progress | final"),
        Arg("text"),
        summary="信息报送: file a first, progress or final report",
    ),
    _get(
        "/incidents/<incident_id>/information-reports",
        "escalation",
        "reports",
        returns="array",
    ),
    _get(
        "/centers/<center>/inbox",
        "escalation",
        "inbox",
        _optional("unacknowledged", bool),
        returns="array",
    ),
    _post("/information-reports/<report_id>/acknowledge", "escalation", "acknowledge"),
    # assessment (sections 2, 9)
    _post(
        "/incidents/<incident_id>/satisfaction",
        "assessment",
        "record_satisfaction",
        Arg("rating", description="satisfied | basically_satisfied | dissatisfied"),
    ),
    _get("/centers/<center>/scores", "assessment", "scores", *SINCE_UNTIL, returns="array"),
    _get("/centers/<center>/report", "assessment", "report", *SINCE_UNTIL),
    _get("/centers/<parent>/ranking", "assessment", "rank_centers", *SINCE_UNTIL, returns="array"),
    _get(
        "/centers/<center>/notice",
        "assessment",
        "notice",
        *SINCE_UNTIL,
        _optional("format", description="pdf (the default) | html"),
        returns="document",
        summary="通报: the notice as a file, served with its content type",
    ),
)


def schema_args(route: Route) -> list[tuple[str, type[Schema]]]:
    return [
        (a.name, a.kind)
        for a in route.args
        if isinstance(a.kind, type) and issubclass(a.kind, Schema)
    ]
