"""The gateway's HTTP side: routes matched, bodies bounded, RPCs called, errors
mapped (errors.py), Open311 served (open311.py), documents described
(openapi.py). `call(service, rpc, kwargs, authorization)` is the one way out
to the services; the nameko service (service.py) provides it."""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qsl
from uuid import uuid4

from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from services.gateway import open311
from services.gateway.arguments import body_arguments, json_body, query_arguments
from services.gateway.errors import INTERNAL, GatewayError, from_remote
from services.gateway.metrics import UNMATCHED, observed, prepare
from services.gateway.openapi import document
from services.gateway.routes import ROUTES, Route
from shared.network import Network

log = logging.getLogger(__name__)
Call = Callable[[str, str, dict, str | None], object]
O311 = "/open311/v2"
FMT = "<any(json, xml):fmt>"
_PARAM = re.compile(r"<(?:[^>]*:)?(\w+)>")
FIXED = (
    ("GET", "/healthz", "healthz"),
    ("GET", "/readyz", "readyz"),
    ("GET", "/openapi.json", "openapi"),
    ("GET", "/docs", "docs"),
    ("GET", f"{O311}/discovery.{FMT}", "discovery"),
    ("GET", f"{O311}/services.{FMT}", "services"),
    ("GET", f"{O311}/services/<code>.{FMT}", "definition"),
    ("GET", f"{O311}/requests.{FMT}", "requests"),
    ("POST", f"{O311}/requests.{FMT}", "post_request"),
    ("GET", f"{O311}/requests/<request_id>.{FMT}", "request"),
)


def json_response(status: int, data, headers: dict | None = None) -> Response:
    text = json.dumps(data, ensure_ascii=False)
    return Response(text, status, headers, content_type="application/json; charset=utf-8")


def template_of(rule: Rule) -> str:
    """A rule as the metrics and OpenAPI name it: `/api/v1/orders/{order_id}`."""
    if isinstance(rule.endpoint, Route):
        return rule.endpoint.template
    return _PARAM.sub(r"{\1}", rule.rule)


def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) beyond `limit` bytes, whether its length is
    declared or not."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise GatewayError("PayloadTooLarge", f"the body is over {limit} bytes")
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise GatewayError("PayloadTooLarge", f"the body is over {limit} bytes")
    return raw


class Gateway:
    """One per process: the URL map, the limits, the network."""

    def __init__(self, network: Network, max_body: int, ready: Callable[[], bool]):
        self.network = network
        self.max_body = max_body
        self.ready = ready
        rules = [Rule(r.rule, methods=[r.method], endpoint=r) for r in ROUTES]
        rules += [Rule(path, methods=[method], endpoint=name) for method, path, name in FIXED]
        # no redirects: a client gets an answer, or 404, for exactly the path it sent
        self.url_map = Map(
            rules, strict_slashes=False, merge_slashes=False, redirect_defaults=False
        )
        prepare(
            [
                (template_of(rule), method)
                for rule in self.url_map.iter_rules()
                for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
            ]
        )

    def handle(self, request: Request, call: Call) -> Response:
        """The answer to `request`, counted by its route's template."""
        started = time.perf_counter()
        adapter = self.url_map.bind_to_environ(request.environ)
        label = UNMATCHED
        try:
            rule, values = adapter.match(return_rule=True)
            label = template_of(rule)
            response = self._dispatch(rule.endpoint, values, request, call)
        except NotFound:
            response = json_response(404, {"error": "NotFound", "message": "no such route"})
        except MethodNotAllowed as exc:
            allowed = sorted(exc.valid_methods or ())
            if allowed:
                label = template_of(adapter.match(method=allowed[0], return_rule=True)[0])
            body = {"error": "MethodNotAllowed", "message": f"allowed: {', '.join(allowed)}"}
            response = json_response(405, body, {"Allow": ", ".join(allowed)})
        except HTTPException as exc:  # anything else werkzeug's router refuses
            response = json_response(404, {"error": "NotFound", "message": exc.description})
        observed(label, request.method, response.status_code, time.perf_counter() - started)
        return response

    def _dispatch(self, endpoint, values: dict, request: Request, call: Call) -> Response:
        if isinstance(endpoint, Route):
            try:
                return self.api(endpoint, values, request, call)
            except Exception as exc:  # a RemoteError, the gateway's own, a timeout
                status, body = from_remote(exc)
                if status == INTERNAL:  # its type only: a message may quote a caller's data
                    kind = getattr(exc, "exc_type", None) or type(exc).__name__
                    log.error(
                        "%s %s failed unexpectedly: %s", request.method, endpoint.template, kind
                    )
                return json_response(status, body)
        if endpoint in ("healthz", "readyz", "openapi", "docs"):
            return getattr(self, endpoint)()
        fmt = values.pop("fmt")
        try:
            status, kind, data = getattr(self, f"open311_{endpoint}")(request, call, **values)
        except open311.Open311Error as exc:
            status, kind, data = exc.status, "errors", exc.body()
        except Exception as exc:
            status, body = from_remote(exc)
            error = open311.Open311Error(status, body.get("message", ""))
            if body.get("fields"):
                error.description = f"{body['message']}: {json.dumps(body['fields'])}"
            status, kind, data = status, "errors", error.body()
        if fmt == "xml":
            return Response(open311.to_xml(kind, data), status, content_type="text/xml")
        return json_response(status, data)

    # -- /api/v1 --------------------------------------------------------------

    def api(self, route: Route, values: dict, request: Request, call: Call) -> Response:
        authorization = request.headers.get("Authorization")
        if not authorization:
            raise GatewayError("Unauthenticated", "no Authorization: Bearer <token> header")
        if route.in_query:
            kwargs = query_arguments(route, request.args)
        else:
            raw = read_body(request, self.max_body)
            key = request.headers.get("Idempotency-Key")
            kwargs = body_arguments(route, json_body(raw), key)
        kwargs.update(values)
        result = call(route.service, route.rpc, kwargs, authorization)
        if route.returns == "document":
            return self.document_response(result)
        return json_response(200, result)

    @staticmethod
    def document_response(result: dict) -> Response:
        """A file the RPC sent base64-encoded, served as itself."""
        content = base64.b64decode(result["content_base64"])
        filename = str(result["filename"]).replace('"', "")
        return Response(
            content,
            200,
            {"Content-Disposition": f'attachment; filename="{filename}"'},
            content_type=result["content_type"],
        )

    # -- the gateway itself ------------------------------------------------------

    def healthz(self) -> Response:
        return json_response(200, {"status": "ok"})

    def readyz(self) -> Response:
        if self.ready():
            return json_response(200, {"status": "ready"})
        return json_response(503, {"error": "Unavailable", "message": "broker not reachable"})

    def openapi(self) -> Response:
        return json_response(200, document())

    def docs(self) -> Response:
        rows = []
        for template, operations in document()["paths"].items():
            for method, op in operations.items():
                rows.append(
                    f"<tr><td>{method.upper()}</td><td><code>{html.escape(template)}</code></td>"
                    f"<td>{html.escape(op['summary'])}</td></tr>"
                )
        page = (
            "<!doctype html><meta charset=utf-8><title>Linkage API</title>"
            "<h1>Linkage API</h1><p>The full description: <a href=/openapi.json>"
            "/openapi.json</a> (OpenAPI 3.1). Open311 GeoReport v2 under "
            f"<code>{O311}/</code>.</p><table border=1 cellpadding=4>"
            "<tr><th>method</th><th>path</th><th>what</th></tr>" + "".join(rows) + "</table>"
        )
        return Response(page, 200, content_type="text/html; charset=utf-8")

    # -- Open311 GeoReport v2: (status, XML kind, data) ----------------------------

    def open311_discovery(self, request: Request, call: Call):
        base = request.host_url.rstrip("/")
        return 200, "discovery", open311.discovery(base)

    def open311_services(self, request: Request, call: Call):
        return 200, "services", open311.service_list(self.network)

    def open311_definition(self, request: Request, call: Call, code: str):
        return 200, "definition", open311.service_definition(self.network, code)

    def open311_post_request(self, request: Request, call: Call):
        raw = read_body(request, self.max_body).decode("utf-8", "replace")
        form = MultiDict(parse_qsl(raw, keep_blank_values=True))
        token = form.get("api_key") or ""
        if not token:
            raise open311.Open311Error(401, "api_key is required: a platform token")
        systems = self.source_systems_of(token)
        system = open311.source_system(systems, form.get("jurisdiction_id"))
        external_id = (
            form.get("external_id") or request.headers.get("Idempotency-Key") or uuid4().hex
        )
        report = open311.report_from_request(
            form, system, external_id, self.network, datetime.now(UTC)
        )
        answer = call("intake", "submit_report", {"report": report}, f"Bearer {token}")
        notice = "already received" if answer["status"] == "duplicate" else "received"
        return (
            200,
            "requests",
            [{"service_request_id": answer["incident_id"], "service_notice": notice}],
        )

    def open311_requests(self, request: Request, call: Call):
        authorization = self.open311_authorization(request)
        ids = open311.request_ids(request.args.get("service_request_id"))
        if ids:
            found = [self.incident_or_none(call, i, authorization) for i in ids]
            incidents = [i for i in found if i is not None]
        else:
            since, until = open311.window(
                request.args.get("start_date"), request.args.get("end_date"), datetime.now(UTC)
            )
            kwargs = {"since": since, "until": until, "limit": 1000}
            if request.args.get("service_code"):
                kwargs["category"] = request.args["service_code"]
            incidents = call("intake", "list_incidents", kwargs, authorization)
        views = [open311.request_view(i, self.network) for i in incidents]
        status = request.args.get("status")
        if status:
            views = [v for v in views if v["status"] == status]
        return 200, "requests", views

    def open311_request(self, request: Request, call: Call, request_id: str):
        authorization = self.open311_authorization(request)
        incident = call("intake", "get_incident", {"incident_id": request_id}, authorization)
        return 200, "requests", [open311.request_view(incident, self.network)]

    # -- helpers ---------------------------------------------------------------

    @staticmethod
    def open311_authorization(request: Request) -> str:
        token = request.args.get("api_key")
        if token:
            return f"Bearer {token}"
        header = request.headers.get("Authorization")
        if not header:
            raise open311.Open311Error(401, "api_key is required")
        return header

    @staticmethod
    def incident_or_none(call: Call, incident_id: str, authorization: str) -> dict | None:
        """An id the caller may not see, or that does not exist, is left out (the spec)."""
        try:
            return call("intake", "get_incident", {"incident_id": incident_id}, authorization)
        except Exception as exc:
            if getattr(exc, "exc_type", None) in ("NotFound", "Forbidden", "ValidationError"):
                return None
            raise

    @staticmethod
    def source_systems_of(token: str) -> list[str]:
        """The source systems a platform token names (read, not verified: intake
        verifies the token and refuses a system that is not the caller's)."""
        try:
            payload = token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            systems = claims.get("source_systems") or []
        except (IndexError, ValueError, AttributeError):
            raise open311.Open311Error(401, "api_key is not a token") from None
        if not isinstance(systems, list) or not all(isinstance(s, str) for s in systems):
            raise open311.Open311Error(401, "api_key is not a platform token")
        return systems
