"""Who is calling (shared/auth.py): tokens, callers checked against the
network, a center's area and scope, and each kind's rights (CONTRACT.md
section 6). No broker: the functions the `api` decorator calls."""

from __future__ import annotations

import time

import jwt
import pytest

from shared.auth import (
    Caller,
    Case,
    MissingSecret,
    area,
    auth_secret,
    authenticate,
    bearer,
    caller_of,
    in_scope,
    may_act_on_order,
    may_read,
    may_steer,
    mint,
    require,
)
from shared.errors import Forbidden, Unauthenticated
from shared.network import load_network

SECRET = "unit-test-secret-" + "0123456789abcdef" * 2
CITY = "511100"
QIANWEI = "511123"
DONGSHAN = "511123101"
YUJIN = "511123102"
MUCHUAN = "511129"
MUXI = "511129101"


@pytest.fixture(scope="module")
def network():
    return load_network()


def caller(context, network) -> Caller:
    return authenticate(context, SECRET, network)


def token(kind="admin", sub="值班员-张", ttl_s=3600, secret=SECRET, **claims) -> str:
    return mint(secret, sub, kind, ttl_s=ttl_s, **claims)


# -- minting and authenticating ----------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        (
            {"kind": "platform", "source_systems": ["12345-hotline", "110-alarm"]},
            Caller("s", "platform", source_systems=frozenset({"12345-hotline", "110-alarm"})),
        ),
        ({"kind": "center", "center": QIANWEI}, Caller("s", "center", center=QIANWEI)),
        (
            {"kind": "department", "center": DONGSHAN, "department": "dongshan-water"},
            Caller("s", "department", center=DONGSHAN, department="dongshan-water"),
        ),
        ({"kind": "auditor", "center": CITY}, Caller("s", "auditor", center=CITY)),
        ({"kind": "admin"}, Caller("s", "admin")),
    ],
    ids=lambda value: value["kind"] if isinstance(value, dict) else "",
)
def test_a_minted_token_authenticates_as_its_caller(network, claims, expected):
    assert caller(bearer(token(sub="s", **claims)), network) == expected


def test_claims_beyond_a_kind_are_dropped_and_the_name_kept(network):
    platform = caller(
        bearer(
            token("platform", center=QIANWEI, department="x", source_systems=["a"], name="平台")
        ),
        network,
    )
    assert platform.center is None and platform.department is None
    assert platform.name == "平台" and platform.source_systems == frozenset({"a"})
    center = caller(bearer(token("center", center=QIANWEI, source_systems=["a"])), network)
    assert center.source_systems == frozenset() and center.department is None


def test_a_token_is_a_signed_hs256_jwt_with_an_expiry(network):
    raw = token("center", center=QIANWEI, ttl_s=60)
    assert jwt.get_unverified_header(raw)["alg"] == "HS256"
    claims = jwt.decode(raw, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "值班员-张" and claims["kind"] == "center"
    assert 0 < claims["exp"] - time.time() <= 60


def bad_contexts() -> dict:
    good = token("center", sub="值班员-张", center=QIANWEI)
    return {
        "no context": None,
        "empty context": {},
        "header not a string": {"authorization": ["Bearer", good]},
        "no Bearer prefix": {"authorization": good},
        "another scheme": {"authorization": f"Basic {good}"},
        "lower-case bearer": {"authorization": f"bearer {good}"},
        "Bearer x": {"authorization": "Bearer x"},
        "Bearer nothing": {"authorization": "Bearer "},
        "expired": bearer(token("center", sub="值班员-张", center=QIANWEI, ttl_s=-10)),
        "another secret": bearer(token("center", sub="值班员-张", center=QIANWEI, secret="x" * 40)),
        "alg none": bearer(
            jwt.encode(
                {"sub": "值班员-张", "kind": "admin", "exp": int(time.time()) + 60},
                None,
                algorithm="none",
            )
        ),
        "no exp": bearer(jwt.encode({"sub": "值班员-张", "kind": "admin"}, SECRET)),
        "no sub": bearer(jwt.encode({"kind": "admin", "exp": int(time.time()) + 60}, SECRET)),
        "tampered payload": {"authorization": "Bearer " + _tampered(good)},
    }


def _tampered(raw: str) -> str:
    header, _, signature = raw.split(".")
    payload = jwt.utils.base64url_encode(b'{"sub":"x","kind":"admin","exp":9999999999}')
    return f"{header}.{payload.decode()}.{signature}"


@pytest.mark.parametrize("what", sorted(bad_contexts()))
def test_no_valid_token_is_unauthenticated_and_names_no_claim(network, what):
    with pytest.raises(Unauthenticated) as error:
        caller(bad_contexts()[what], network)
    message = str(error.value)
    assert "值班员" not in message and QIANWEI not in message and SECRET not in message


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"kind": "root"}, "kind"),
        ({"kind": None}, "kind"),
        ({"kind": "center"}, "center"),
        ({"kind": "center", "center": "999999"}, "center"),
        ({"kind": "auditor", "center": "nowhere"}, "center"),
        ({"kind": "department", "center": DONGSHAN}, "department"),
        ({"kind": "department", "center": DONGSHAN, "department": "no-such-unit"}, "department"),
        # a department of another center
        ({"kind": "department", "center": DONGSHAN, "department": "qianwei-water"}, "department"),
        ({"kind": "platform"}, "source_systems"),
        ({"kind": "platform", "source_systems": []}, "source_systems"),
        ({"kind": "platform", "source_systems": "12345-hotline"}, "source_systems"),
        ({"kind": "platform", "source_systems": [1, 2]}, "source_systems"),
        ({"kind": "admin", "sub": ""}, "sub"),
        ({"kind": "admin", "sub": "   "}, "sub"),
        ({"kind": "admin", "sub": "x" * 65}, "sub"),
        ({"kind": "admin", "sub": 42}, "sub"),
    ],
)
def test_claims_the_network_does_not_know_are_unauthenticated(network, claims, reason):
    claims = {"sub": "值班员-张", **claims}
    with pytest.raises(Unauthenticated) as error:
        caller_of(claims, network)
    assert reason in str(error.value)
    assert "值班员" not in str(error.value)
    assert "999999" not in str(error.value) and "qianwei-water" not in str(error.value)


def test_a_signed_token_with_unknown_claims_is_refused_too(network):
    with pytest.raises(Unauthenticated):
        caller(bearer(token("department", center=DONGSHAN, department="qianwei-water")), network)


# -- area and scope ------------------------------------------------------------------


def test_a_centers_area_is_itself_and_every_center_below(network):
    county = area(network, QIANWEI)
    assert {QIANWEI, DONGSHAN, YUJIN} <= county
    assert CITY not in county and MUCHUAN not in county and MUXI not in county
    assert area(network, DONGSHAN) == {DONGSHAN}
    assert area(network, CITY) == frozenset(network.centers)


def center(code: str) -> Caller:
    return Caller(sub="值班员", kind="center", center=code)


def test_an_incident_is_in_scope_by_its_town_by_command_or_by_an_order_held(network):
    plain = Case(town=DONGSHAN, command=DONGSHAN)
    assert in_scope(center(DONGSHAN), network, plain)
    assert in_scope(center(QIANWEI), network, plain)  # the town is in its area
    assert in_scope(center(CITY), network, plain)
    assert not in_scope(center(YUJIN), network, plain)
    assert not in_scope(center(MUCHUAN), network, plain)
    assert in_scope(center(MUCHUAN), network, Case(DONGSHAN, command=MUCHUAN))
    held = Case(DONGSHAN, DONGSHAN, holders=frozenset({(YUJIN, "yujin-water")}))
    assert in_scope(center(YUJIN), network, held)
    assert not in_scope(Caller(sub="a", kind="admin"), network, plain)  # no center: no area


# -- rights by kind --------------------------------------------------------------------

CASE = Case(
    town=DONGSHAN,
    command=QIANWEI,
    source_system="12345-hotline",
    holders=frozenset({(DONGSHAN, "dongshan-water"), (QIANWEI, "qianwei-water")}),
)
PLATFORM = Caller("p", "platform", source_systems=frozenset({"12345-hotline"}))
OTHER_PLATFORM = Caller("q", "platform", source_systems=frozenset({"citizen-app"}))
WATER = Caller("w", "department", center=DONGSHAN, department="dongshan-water")
POLICE = Caller("x", "department", center=DONGSHAN, department="dongshan-police")
AUDITOR = Caller("a", "auditor", center=QIANWEI)
MUCHUAN_AUDITOR = Caller("b", "auditor", center=MUCHUAN)
ADMIN = Caller("r", "admin")


@pytest.mark.parametrize(
    ("who", "reads", "steers"),
    [
        (PLATFORM, True, False),
        (OTHER_PLATFORM, False, False),
        (center(DONGSHAN), True, True),
        (center(QIANWEI), True, True),
        (center(YUJIN), False, False),
        (center(MUCHUAN), False, False),
        (WATER, True, False),
        (POLICE, False, False),
        (AUDITOR, True, False),
        (Caller("c", "auditor", center=CITY), True, False),
        (MUCHUAN_AUDITOR, False, False),
        (ADMIN, True, True),
    ],
    ids=lambda v: f"{v.kind}-{v.sub}" if isinstance(v, Caller) else str(v),
)
def test_who_may_read_and_steer_an_incident(network, who, reads, steers):
    assert may_read(who, network, CASE) is reads
    assert may_steer(who, network, CASE) is steers


def test_an_auditor_reads_what_its_area_commands(network):
    assert may_read(MUCHUAN_AUDITOR, network, Case(DONGSHAN, command=MUCHUAN))
    assert not may_read(Caller("d", "auditor", center=YUJIN), network, CASE)


@pytest.mark.parametrize(
    ("who", "acts"),
    [
        (WATER, True),
        (POLICE, False),  # another department of the same center
        (Caller("y", "department", center=YUJIN, department="yujin-water"), False),
        (center(DONGSHAN), True),  # the duty officer acting for its own unit
        (center(QIANWEI), False),  # not the county for a town's unit
        (AUDITOR, False),
        (PLATFORM, False),
        (ADMIN, True),
    ],
    ids=lambda v: f"{v.kind}-{v.sub}" if isinstance(v, Caller) else str(v),
)
def test_who_may_act_on_an_order(who, acts):
    assert may_act_on_order(who, DONGSHAN, "dongshan-water") is acts


def test_require_lets_the_kinds_named_and_admins_through():
    assert center(DONGSHAN).require("center", "platform").center == DONGSHAN
    assert ADMIN.require("center") is ADMIN
    with pytest.raises(Forbidden):
        AUDITOR.require("center")
    require(True, "anything")
    with pytest.raises(Forbidden):
        require(False, "order o-1")


# -- the secret -----------------------------------------------------------------------


def test_the_secret_comes_from_the_environment_or_a_file(tmp_path):
    assert auth_secret({"LINKAGE_AUTH_SECRET": SECRET}) == SECRET
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n", encoding="utf-8")
    assert auth_secret({"LINKAGE_AUTH_SECRET_FILE": str(path)}) == SECRET
    other = "e" * 40
    assert auth_secret({"LINKAGE_AUTH_SECRET": other, "LINKAGE_AUTH_SECRET_FILE": str(path)}) == (
        other
    )


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"LINKAGE_AUTH_SECRET": ""},
        {"LINKAGE_AUTH_SECRET": "short"},
        {"LINKAGE_AUTH_SECRET": "x" * 31},
        {"LINKAGE_AUTH_SECRET_FILE": "/nonexistent/secret"},
    ],
    ids=["none", "empty", "short", "31-bytes", "missing-file"],
)
def test_no_usable_secret_is_missing_secret(environ):
    with pytest.raises(MissingSecret):
        auth_secret(environ)


def test_a_secret_file_too_short_is_missing_secret(tmp_path):
    path = tmp_path / "secret"
    path.write_text("too-short\n", encoding="utf-8")
    with pytest.raises(MissingSecret) as error:
        auth_secret({"LINKAGE_AUTH_SECRET_FILE": str(path)})
    assert "too-short" not in str(error.value)
