"""Who is calling (CONTRACT.md section 6): tokens, callers, and their place.

A caller's token is a JWT signed HS256 with the deployment's secret
(`LINKAGE_AUTH_SECRET`, or a file named by `LINKAGE_AUTH_SECRET_FILE`). It
travels in nameko's context data as `authorization: Bearer <token>`, so every
RPC carries it without an argument. Its `sub` is the actor recorded for every
change; `kind` and the place claims (`center`, `department`,
`source_systems`) decide what the caller may do. What a kind may do to which
incident is each service's rule; this module answers who the caller is and
where its area lies.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import jwt

from shared.errors import Forbidden, Unauthenticated
from shared.network import Network

KINDS = ("platform", "center", "department", "auditor", "admin")
ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32


class MissingSecret(RuntimeError):
    """A process may not start without a secret to check tokens with."""


def auth_secret(environ=os.environ) -> str:
    secret = environ.get("LINKAGE_AUTH_SECRET")
    path = environ.get("LINKAGE_AUTH_SECRET_FILE")
    if not secret and path:
        try:
            secret = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise MissingSecret(f"LINKAGE_AUTH_SECRET_FILE {path}: {exc.strerror}") from None
    if not secret:
        raise MissingSecret(
            "no LINKAGE_AUTH_SECRET (or LINKAGE_AUTH_SECRET_FILE): callers cannot be checked"
        )
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise MissingSecret(f"the auth secret must be at least {MIN_SECRET_BYTES} bytes")
    return secret


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: who (`sub`), what kind, and where."""

    sub: str
    kind: str
    name: str | None = None
    center: str | None = None
    department: str | None = None
    source_systems: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    def require(self, *kinds: str) -> Caller:
        """Go on only for these kinds (admins always may)."""
        if not self.is_admin and self.kind not in kinds:
            raise Forbidden(f"a {self.kind} caller may not do this")
        return self


def mint(secret: str, sub: str, kind: str, ttl_s: int = 3600, **claims) -> str:
    """A signed token, as the command-line client and the tests make them."""
    now = int(time.time())
    payload = {"sub": sub, "kind": kind, "iat": now, "exp": now + ttl_s}
    payload.update({k: v for k, v in claims.items() if v is not None})
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def bearer(token: str) -> dict:
    """nameko context data carrying `token`."""
    return {"authorization": f"Bearer {token}"}


def authenticate(context_data: dict | None, secret: str, network: Network) -> Caller:
    """The caller of a worker from its context data; `Unauthenticated` if there
    is no valid token, whatever is wrong with it."""
    header = (context_data or {}).get("authorization")
    if not isinstance(header, str) or not header.startswith("Bearer "):
        raise Unauthenticated("no bearer token in the call's context (authorization)")
    try:
        claims = jwt.decode(
            header[len("Bearer ") :].strip(),
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("the token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthenticated(f"invalid token: {type(exc).__name__}") from None
    return caller_of(claims, network)


def caller_of(claims: dict, network: Network) -> Caller:
    """Check a token's claims against the network; `Unauthenticated` if they
    do not describe a caller this deployment knows."""
    sub, kind = claims.get("sub"), claims.get("kind")
    if not isinstance(sub, str) or not sub.strip() or len(sub) > 64:
        raise Unauthenticated("the token's sub must be a non-empty string of at most 64")
    if kind not in KINDS:
        raise Unauthenticated(f"the token's kind must be one of {', '.join(KINDS)}")
    center, department = claims.get("center"), claims.get("department")
    systems = claims.get("source_systems") or []
    if kind in ("center", "department", "auditor") and center not in network.centers:
        raise Unauthenticated(f"a {kind} token needs a center of this network")
    if kind == "department":
        unit = network.departments.get(department)
        if unit is None or unit.center != center:
            raise Unauthenticated("a department token needs a department of its center")
    if kind == "platform" and (
        not isinstance(systems, list) or not systems or not all(isinstance(s, str) for s in systems)
    ):
        raise Unauthenticated("a platform token needs its source_systems (a list)")
    name = claims.get("name")
    return Caller(
        sub=sub,
        kind=kind,
        name=name if isinstance(name, str) else None,
        center=center if kind != "platform" else None,
        department=department if kind == "department" else None,
        source_systems=frozenset(systems) if kind == "platform" else frozenset(),
    )


def area(network: Network, center: str) -> frozenset[str]:
    """A center's area: itself and every center below it."""
    return frozenset(c for c in network.centers if c == center or network.is_below(c, center))


@dataclass(frozen=True)
class Case:
    """What the rights need to know of an incident (CONTRACT.md section 6)."""

    town: str
    command: str  # the center in command
    source_system: str | None = None
    holders: frozenset[tuple[str, str]] = frozenset()  # (center, department) with an order


def in_scope(caller: Caller, network: Network, case: Case) -> bool:
    """For a center: its town is in the center's area, or the center commands
    it, or the center's units hold an order on it."""
    if caller.center is None:
        return False
    return (
        case.town in area(network, caller.center)
        or case.command == caller.center
        or any(center == caller.center for center, _ in case.holders)
    )


def may_read(caller: Caller, network: Network, case: Case) -> bool:
    """Whether `caller` may read the incident (and its orders and chain)."""
    if caller.is_admin:
        return True
    if caller.kind == "platform":
        return case.source_system in caller.source_systems
    if caller.kind == "center":
        return in_scope(caller, network, case)
    if caller.kind == "department":
        return (caller.center, caller.department) in case.holders
    if caller.kind == "auditor":
        centers = area(network, caller.center)
        return case.town in centers or case.command in centers
    return False


def may_watch_center(caller: Caller, network: Network, center: str) -> bool:
    """Whether `caller` may read what belongs to `center` itself (its duty
    roster, board, inbox): an admin, or a center or auditor whose area holds
    it."""
    if caller.is_admin:
        return True
    return caller.kind in ("center", "auditor") and center in area(network, caller.center)


def may_steer(caller: Caller, network: Network, case: Case) -> bool:
    """Whether `caller` may change the case (update, close, add or cancel
    orders, rate it, report on it): an admin, or a center it is in scope for."""
    return caller.is_admin or (caller.kind == "center" and in_scope(caller, network, case))


def may_act_on_order(caller: Caller, center: str, department: str) -> bool:
    """Accept, return, arrive, report, complete, ask for reinforcement: the
    department itself, its center's duty officer for it, or an admin."""
    if caller.is_admin:
        return True
    if caller.kind == "department":
        return (caller.center, caller.department) == (center, department)
    return caller.kind == "center" and caller.center == center


def require(allowed: bool, what: str) -> None:
    if not allowed:
        raise Forbidden(f"not within the caller's rights: {what}")
