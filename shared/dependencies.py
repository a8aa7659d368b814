"""nameko dependencies every service declares: the network, and the RPC edge."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable

from kombu.exceptions import OperationalError as BrokerError
from marshmallow import Schema
from marshmallow import ValidationError as SchemaError
from nameko.exceptions import IncorrectSignature
from nameko.extensions import DependencyProvider
from nameko.rpc import ReplyListener, Rpc, RpcConsumer
from nameko.rpc import RpcProxy as NamekoRpcProxy

from shared.auth import Caller, auth_secret, authenticate
from shared.db import retrying
from shared.errors import EXPECTED, ValidationError, flatten_marshmallow
from shared.fields import require_text
from shared.messaging import queue_arguments
from shared.network import Network, load_network
from shared.requests import once

log = logging.getLogger(__name__)

_networks: dict[str | None, Network] = {}


def network_for(path: str | None) -> Network:
    """The network of `path`, loaded once per process (services share it)."""
    if path not in _networks:
        _networks[path] = load_network(path)
    return _networks[path]


class Authentication(DependencyProvider):
    """Who calls each RPC, from the token in its context (shared/auth.py).

    The secret is read at set-up: a service does not start without one.
    `api` authenticates every call before its method runs.
    """

    def setup(self) -> None:
        config = self.container.config
        self.secret = config.get("LINKAGE_AUTH_SECRET") or auth_secret()
        self.network = network_for(config.get("LINKAGE_NETWORK"))

    def get_dependency(self, worker_ctx) -> Callable[[], Caller]:
        return functools.partial(authenticate, worker_ctx.data, self.secret, self.network)


class NetworkProvider(DependencyProvider):
    """The deployment's network (`LINKAGE_NETWORK`), validated at start-up."""

    def setup(self) -> None:
        self.network = network_for(self.container.config.get("LINKAGE_NETWORK"))

    def get_dependency(self, worker_ctx) -> Network:
        return self.network


def validated(schema: Schema, data, **context) -> dict:
    """Load `data` through `schema`, raising the contract's `ValidationError`."""
    if not isinstance(data, dict):
        raise ValidationError({"_schema": ["must be an object"]})
    schema.context = context
    try:
        return schema.load(data)
    except SchemaError as exc:
        raise ValidationError(flatten_marshmallow(exc.messages)) from None


class ResilientRpcConsumer(RpcConsumer):
    """nameko kills the whole service when a reply cannot be published (the
    broker restarted under a worker). The reply's queue belonged to the
    caller's connection, which the restart closed too, so nobody is waiting
    for it: log and carry on. The request was not acked, so the broker
    delivers it again and the caller, retrying, gets its answer (submissions
    are idempotent on source and external id).

    Its queue, `rpc-<service>`, is nameko's with the configured queue type:
    a quorum queue in a cluster, so that losing one node does not make the
    service unreachable (nameko's own is always classic, living on one node)."""

    def setup(self) -> None:
        super().setup()  # nameko's queue, registered with its queue consumer
        self.queue.queue_arguments = queue_arguments()  # read when it is declared

    def handle_result(self, message, result, exc_info):
        try:
            return super().handle_result(message, result, exc_info)
        except (BrokerError, OSError) as exc:
            log.warning("reply not sent, broker connection lost (%s)", type(exc).__name__)
            return result, exc_info


class ResilientRpc(Rpc):
    rpc_consumer = ResilientRpcConsumer()

    def check_signature(self, args, kwargs) -> None:
        """nameko's own check cannot see through `api`'s wrapper; this one does."""
        method = getattr(self.container.service_cls, self.method_name)
        try:
            inspect.signature(method).bind(None, *args, **kwargs)
        except TypeError as exc:
            raise IncorrectSignature(str(exc)) from None


class NodeLocalReplyListener(ReplyListener):
    """nameko's reply queue (`rpc.reply-<service>-<uuid>`), but not durable.

    nameko declares it durable, so on a cluster it stays bound to the node it
    was declared on: when that node dies, every redeclaration fails (`home node
    ... is down`) and, since the service's RPC consumer shares the connection,
    the service stops answering until the node returns. A transient queue is
    deleted with its node and declared again on the node the service fails
    over to. A reply queue only holds answers for live callers anyway."""

    def setup(self) -> None:
        super().setup()
        self.queue.durable = False  # read when it is declared


class RpcProxy(NamekoRpcProxy):
    """nameko's `RpcProxy`, failing over with its service (see above)."""

    rpc_reply_listener = NodeLocalReplyListener()


def api(method=None, *, mutating: bool = False):
    """An RPC of the external API. The caller is authenticated first (the
    service's `auth` dependency; `self.caller` then names it, `Unauthenticated`
    otherwise); domain errors reach the caller as the contract's
    `RemoteError`s (nameko checks the arguments' shape first, as
    `IncorrectSignature`), and transient database errors are retried, then
    reported as `Unavailable`: never a success for what was not stored.

    A `mutating` call also takes an optional `request_id`: repeated by the
    same caller it answers as the first time and changes nothing more
    (shared/requests.py).
    """
    if method is None:
        return functools.partial(api, mutating=mutating)

    @functools.wraps(method)
    def call(self, *args, request_id=None, **kwargs):
        self.caller = self.auth()
        if request_id is None:
            return retrying(lambda: method(self, *args, **kwargs))
        require_text("request_id", request_id, 64)
        return retrying(
            lambda: once(
                self.db,
                self.caller.sub,
                request_id,
                method.__name__,
                lambda: method(self, *args, **kwargs),
            )
        )

    if mutating:
        signature = inspect.signature(method)
        extra = inspect.Parameter("request_id", inspect.Parameter.KEYWORD_ONLY, default=None)
        params = [p for p in signature.parameters.values() if p.kind != p.VAR_KEYWORD]
        call.__signature__ = signature.replace(parameters=[*params, extra])
    else:
        call.__signature__ = inspect.signature(method)
    return ResilientRpc.decorator(expected_exceptions=EXPECTED)(call)
