"""The gateway service: HTTP in front of the services' RPCs (CONTRACT.md
section 10). It holds no data; each request is one nameko worker that calls
the RPC its route names, the caller's token passed on in the call's context
(`authorization`), exactly as an AMQP platform sends it."""

from __future__ import annotations

import logging
import re

import eventlet
from kombu import Connection
from nameko.extensions import DependencyProvider
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer
from werkzeug.routing import Map, PathConverter

from services.gateway.errors import GatewayError
from services.gateway.web import Gateway
from shared.dependencies import RpcProxy, network_for
from shared.metrics import EntrypointMetrics

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 64 * 1024
DEFAULT_RPC_TIMEOUT_S = 30.0
READY_TIMEOUT_S = 3.0
# every method reaches the gateway's router, which answers 405 in JSON
METHODS = "GET,HEAD,POST,PUT,PATCH,DELETE,OPTIONS"


class EveryPath(PathConverter):
    """Any path, newlines and all: the gateway's own router answers each one
    (werkzeug's `path` stops at a newline, and nameko would answer in HTML)."""

    regex = r"[\s\S]*"
    part_isolating = False  # it spans segments (werkzeug guesses from a "/" in the regex)


class QueryStringsOut(logging.Filter):
    """The access log's request lines without their query strings: an
    Open311 client may send its api_key (a token) there."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _QUERY.sub("?[query]", record.msg)
        return True


_QUERY = re.compile(r"\?[^\s\"]*")


class GatewayWebServer(WebServer):
    def setup(self) -> None:
        super().setup()
        access_log = logging.getLogger("nameko.web.server")
        if not any(isinstance(f, QueryStringsOut) for f in access_log.filters):
            access_log.addFilter(QueryStringsOut())

    def make_url_map(self) -> Map:
        url_map = Map(converters={"every": EveryPath})
        for provider in self._providers:
            rule = provider.get_url_rule()
            rule.endpoint = provider
            url_map.add(rule)
        return url_map


class HttpEntrypoint(HttpRequestHandler):
    server = GatewayWebServer()


http = HttpEntrypoint.decorator


class WorkerContext(DependencyProvider):
    """The worker's context: what its RPC calls carry in their headers."""

    def get_dependency(self, worker_ctx):
        return worker_ctx


class Web(DependencyProvider):
    """The URL map and limits, built once from the configuration."""

    def setup(self) -> None:
        config = self.container.config
        self.rpc_timeout = float(config.get("GATEWAY_RPC_TIMEOUT_S") or DEFAULT_RPC_TIMEOUT_S)
        self.gateway = Gateway(
            network_for(config.get("LINKAGE_NETWORK")),
            int(config.get("GATEWAY_MAX_BODY_BYTES") or DEFAULT_MAX_BODY),
            self.broker_reachable,
        )

    def broker_reachable(self) -> bool:
        config = self.container.config
        try:
            with eventlet.Timeout(READY_TIMEOUT_S):
                with Connection(config["AMQP_URI"], ssl=config.get("AMQP_SSL")) as connection:
                    connection.ensure_connection(max_retries=1, timeout=READY_TIMEOUT_S)
            return True
        except (eventlet.Timeout, Exception) as exc:  # a Timeout is no Exception
            log.warning("readyz: broker not reachable (%s)", type(exc).__name__)
            return False

    def get_dependency(self, worker_ctx):
        return self


class GatewayService:
    name = "gateway"

    intake = RpcProxy("intake")
    dispatch = RpcProxy("dispatch")
    escalation = RpcProxy("escalation")
    assessment = RpcProxy("assessment")
    context = WorkerContext()
    web = Web()
    metrics = EntrypointMetrics()

    @http(METHODS, "/<every:path>")
    def serve(self, request, path: str):
        return self.web.gateway.handle(request, self.call)

    def call(self, service: str, rpc: str, kwargs: dict, authorization: str | None):
        """One RPC as the HTTP caller: its token in the call's context; no
        answer within the timeout is `Unavailable` to the caller (503)."""
        self.context.data["authorization"] = authorization
        reply = getattr(getattr(self, service), rpc).call_async(**kwargs)
        timeout = self.web.rpc_timeout
        with eventlet.Timeout(timeout, GatewayError("Unavailable", f"{service} did not answer")):
            return reply.result()
