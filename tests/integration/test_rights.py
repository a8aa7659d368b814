"""Who may do what (CONTRACT.md section 6), over the real RabbitMQ and both databases.

One test per row of the rights table (platform, center, department, auditor,
admin): the kind doing what it may, then one step beyond, which is
`Forbidden` and leaves every database as it was. Calls without a valid token
are `Unauthenticated` and change nothing either. The actor recorded in order
history and in the command chain is the token's `sub`; the reporter is shown
in full only to those the contract names, and each such disclosure is in the
admin's access log.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import create_engine, func, select

from services.dispatch.models import OrderHistory, WorkOrder
from services.dispatch.models import outbox as dispatch_outbox
from services.dispatch.service import DispatchService
from services.escalation.models import CommandMove, CommandState
from services.escalation.models import outbox as escalation_outbox
from services.escalation.service import EscalationService
from services.intake.models import Incident, PersonalDataAccess
from services.intake.models import outbox as intake_outbox
from services.intake.service import IntakeService
from shared.auth import bearer, mint
from tests.conftest import make_token, wait_for
from tests.support.reports import DONGSHAN, report

pytestmark = pytest.mark.integration

QIANWEI = "511123"  # 犍为县, DONGSHAN's county
MUCHUAN = "511129"  # 沐川县, another county
MUXI = "511129101"  # a town of 沐川县
YUJIN = "511123102"  # DONGSHAN's neighbour town
HOTLINE = "12345-hotline"  # report()'s source system

PLATFORM = {"kind": "platform", "sub": "平台-12345", "source_systems": [HOTLINE]}
OTHER_PLATFORM = {"kind": "platform", "sub": "平台-app", "source_systems": ["citizen-app"]}
TOWN_DUTY = {"kind": "center", "sub": "值班员-张", "center": DONGSHAN}
COUNTY_DUTY = {"kind": "center", "sub": "县值班员-赵", "center": QIANWEI}
MUCHUAN_DUTY = {"kind": "center", "sub": "沐川值班员", "center": MUCHUAN}
WATER = {"kind": "department", "sub": "水务-李", "center": DONGSHAN, "department": "dongshan-water"}
POLICE = {
    "kind": "department",
    "sub": "派出所-王",
    "center": DONGSHAN,
    "department": "dongshan-police",
}
AUDITOR = {"kind": "auditor", "sub": "审计-周", "center": QIANWEI}
MUCHUAN_AUDITOR = {"kind": "auditor", "sub": "沐川审计", "center": MUCHUAN}
ADMIN = {"kind": "admin", "sub": "管理员-吴"}

FULL = {"name": "王小明", "phone": "13800001234"}
MASKED = {"name": "王*", "phone": "138****1234"}
SERVICES = (IntakeService, DispatchService, EscalationService)


class Databases:
    """Every row a refused call must leave alone, read as an outsider."""

    TABLES = {
        "intake": [Incident.__table__, PersonalDataAccess.__table__, intake_outbox],
        "dispatch": [WorkOrder.__table__, OrderHistory.__table__, dispatch_outbox],
        "escalation": [CommandState.__table__, CommandMove.__table__, escalation_outbox],
    }
    ROWS = {
        "intake": (Incident.incident_id, Incident.center, Incident.status),
        "dispatch": (WorkOrder.order_id, WorkOrder.status, WorkOrder.returns),
        "escalation": (CommandState.incident_id, CommandState.center, CommandState.moves),
    }

    def __init__(self, urls: dict[str, str]):
        self.engines = {name: create_engine(urls[name]) for name in self.TABLES}

    def snapshot(self) -> dict:
        state = {}
        for name, engine in self.engines.items():
            with engine.connect() as connection:
                for table in self.TABLES[name]:
                    count = select(func.count()).select_from(table)
                    state[table.name, name] = connection.execute(count).scalar_one()
                rows = connection.execute(select(*self.ROWS[name])).all()
                state[name] = sorted(tuple(row) for row in rows)
        return state

    def close(self) -> None:
        for engine in self.engines.values():
            engine.dispose()


@pytest.fixture
def databases(db_urls):
    opened = Databases(db_urls)
    yield opened
    opened.close()


@pytest.fixture
def as_(rpc_as):
    """`with as_(WATER) as rpc:` the API as one of the callers above."""

    def open_(caller: dict):
        return rpc_as(**caller)

    return open_


def refused(call, kind: str = "Forbidden") -> RemoteError:
    with pytest.raises(RemoteError) as error:
        call()
    assert error.value.exc_type == kind, error.value
    return error.value


def all_refused(databases, calls, kind: str = "Forbidden") -> None:
    """Each call is refused with `kind`, and no database changes."""
    before = databases.snapshot()
    for call in calls:
        refused(call, kind)
    assert databases.snapshot() == before


def found(read):
    """`read()` once what it reads has arrived (NotFound until then)."""

    def ready():
        try:
            return [read()]  # truthy, even when what is read is empty
        except RemoteError as error:
            if error.exc_type != "NotFound":
                raise
            return None

    return wait_for(ready, message="the incident to arrive")[0]


def seeded(rpc, as_) -> tuple[str, dict]:
    """A water-main burst at 东山镇 submitted by its platform: the incident and
    its one order (dongshan-water), once escalation knows the incident too."""
    with as_(PLATFORM) as platform:
        incident = platform.intake.submit_report(report())["incident_id"]
    [order] = wait_for(lambda: rpc.dispatch.list_orders(incident_id=incident))
    assert order["department"] == "dongshan-water"
    assert found(lambda: rpc.escalation.chain(incident)) == []
    return incident, order


def orders_at(rpc, incident_id: str, center: str) -> list[dict]:
    return wait_for(
        lambda: rpc.dispatch.list_orders(incident_id=incident_id, center=center),
        message=f"orders at {center}",
    )


# -- platform ----------------------------------------------------------------------


def test_a_platform_submits_and_reads_its_own_reports_and_nothing_more(
    run_services, rpc, as_, databases
):
    run_services(*SERVICES)
    incident, order = seeded(rpc, as_)
    with as_(PLATFORM) as platform:
        read = platform.intake.get_incident(incident)
        assert read["incident_id"] == incident and read["reporter"] == FULL
        assert [o["order_id"] for o in platform.dispatch.list_orders(incident_id=incident)] == [
            order["order_id"]
        ]
        assert platform.dispatch.get_order(order["order_id"])["status"] == "dispatched"
        assert platform.escalation.chain(incident) == []

        all_refused(
            databases,
            [
                lambda: platform.intake.submit_report(report(source_system="110-alarm")),
                lambda: platform.intake.submit_report(report(center=QIANWEI)),
                lambda: platform.dispatch.accept(order["order_id"]),
                lambda: platform.escalation.escalate(incident, "平台不可上报"),
            ],
        )

    with as_(OTHER_PLATFORM) as other:
        all_refused(
            databases,
            [
                lambda: other.intake.get_incident(incident),
                lambda: other.dispatch.get_order(order["order_id"]),
                lambda: other.escalation.chain(incident),
                lambda: other.intake.submit_report(report()),  # 12345-hotline is not its own
            ],
        )
        assert other.dispatch.list_orders(incident_id=incident) == []


# -- center ------------------------------------------------------------------------


def test_a_center_steers_the_incidents_in_its_scope_and_no_other(run_services, rpc, as_, databases):
    run_services(*SERVICES)
    incident, order = seeded(rpc, as_)
    with as_(TOWN_DUTY) as town:
        assert town.intake.get_incident(incident)["reporter"] == FULL
        # the duty officer acting for one of its own center's units
        assert town.dispatch.accept(order["order_id"])["status"] == "accepted"
        assert town.dispatch.get_order(order["order_id"])["history"][-1]["operator"] == "值班员-张"
        step = town.escalation.escalate(incident, "现场失控")
        assert (step["from_center"], step["to_center"]) == (DONGSHAN, QIANWEI)
        assert town.escalation.chain(incident)[-1]["operator"] == "值班员-张"
        [county_order] = orders_at(rpc, incident, QIANWEI)
        wait_for(lambda: rpc.intake.get_incident(incident)["center"] == QIANWEI)

        own = town.intake.submit_report(report(channel="center"))
        assert own["status"] == "accepted" and own["center"] == DONGSHAN
        wait_for(lambda: rpc.dispatch.list_orders(incident_id=own["incident_id"]))
        found(lambda: rpc.escalation.chain(own["incident_id"]))  # escalation has it too

        all_refused(
            databases,
            [
                lambda: town.escalation.escalate(incident, "再次上报"),  # no longer in command
                lambda: town.escalation.assign_down(incident, DONGSHAN),
                lambda: town.dispatch.accept(county_order["order_id"]),  # the county's unit
                lambda: town.intake.submit_report(report()),  # channel 12345: a platform's
                lambda: town.intake.submit_report(
                    report(channel="center", location={"town": MUXI, "address": "沐溪镇"})
                ),
                lambda: town.intake.personal_data_access(since(), until()),
            ],
        )

    with as_(MUCHUAN_DUTY) as elsewhere:
        all_refused(
            databases,
            [
                lambda: elsewhere.intake.get_incident(incident),
                lambda: elsewhere.dispatch.get_order(order["order_id"]),
                lambda: elsewhere.escalation.chain(incident),
                lambda: elsewhere.escalation.escalate(incident, "越界"),
                lambda: elsewhere.escalation.assign_down(incident, DONGSHAN),
            ],
        )
        assert elsewhere.dispatch.list_orders(incident_id=incident) == []

    with as_(COUNTY_DUTY) as county:  # in command now: it may hand the incident back down
        down = county.escalation.assign_down(incident, DONGSHAN)
        assert down["to_center"] == DONGSHAN
        assert county.escalation.chain(incident)[-1]["operator"] == "县值班员-赵"


# -- department ---------------------------------------------------------------------


def test_a_department_acts_on_its_own_orders_only(run_services, rpc, as_, databases):
    run_services(*SERVICES)
    incident, order = seeded(rpc, as_)
    oid = order["order_id"]
    with as_(POLICE) as police:
        all_refused(
            databases,
            [
                lambda: police.dispatch.accept(oid),
                lambda: police.dispatch.return_order(oid, "不是我们的"),
                lambda: police.dispatch.request_reinforcement(oid, "人手不足"),
                lambda: police.dispatch.get_order(oid),
                lambda: police.intake.get_incident(incident),
            ],
        )
        assert police.dispatch.list_orders(incident_id=incident) == []

    with as_(WATER) as water:
        assert [o["order_id"] for o in water.dispatch.list_orders()] == [oid]
        assert water.intake.get_incident(incident)["reporter"] == FULL
        for act, args in [
            ("accept", ()),
            ("arrive", ()),
            ("report", ("阀门已关闭",)),
            ("request_reinforcement", ("管径大，人手不足",)),
        ]:
            getattr(water.dispatch, act)(oid, *args)
            history = water.dispatch.get_order(oid)["history"]
            assert (history[-1]["action"], history[-1]["operator"]) == (act, "水务-李")
        wait_for(lambda: len(rpc.dispatch.list_orders(incident_id=incident)) >= 3)
        done = water.dispatch.complete(oid, "管道已修复")
        assert done["status"] == "completed"
        assert water.dispatch.get_order(oid)["history"][-1]["operator"] == "水务-李"

        all_refused(
            databases,
            [
                lambda: water.escalation.escalate(incident, "水务不能上报"),
                lambda: water.intake.submit_report(report(channel="center")),
                lambda: water.intake.personal_data_access(since(), until()),
            ],
        )

    # a neighbour town whose unit was brought in holds an order: the incident is in its scope
    with as_({"kind": "center", "sub": "玉津值班员", "center": YUJIN}) as yujin:
        assert yujin.intake.get_incident(incident)["reporter"] == FULL
        held = {o["center"] for o in yujin.dispatch.list_orders(incident_id=incident)}
        assert {DONGSHAN, YUJIN} <= held


# -- auditor ------------------------------------------------------------------------


def test_an_auditor_reads_its_area_masked_and_may_not_act(run_services, rpc, as_, databases):
    run_services(*SERVICES)
    incident, order = seeded(rpc, as_)
    with as_(AUDITOR) as auditor:
        before = databases.snapshot()
        read = auditor.intake.get_incident(incident)
        assert read["incident_id"] == incident and read["reporter"] == MASKED
        assert auditor.dispatch.get_order(order["order_id"])["order_id"] == order["order_id"]
        assert len(auditor.dispatch.list_orders(incident_id=incident)) == 1
        assert auditor.escalation.chain(incident) == []
        assert auditor.escalation.command(incident)["center"] == DONGSHAN
        assert databases.snapshot() == before  # a masked read is no disclosure

        all_refused(
            databases,
            [
                lambda: auditor.dispatch.accept(order["order_id"]),
                lambda: auditor.escalation.escalate(incident, "审计不能上报"),
                lambda: auditor.intake.submit_report(report(channel="center")),
                lambda: auditor.intake.personal_data_access(since(), until()),
            ],
        )

    with as_(MUCHUAN_AUDITOR) as elsewhere:
        all_refused(
            databases,
            [
                lambda: elsewhere.intake.get_incident(incident),
                lambda: elsewhere.dispatch.get_order(order["order_id"]),
                lambda: elsewhere.escalation.chain(incident),
            ],
        )


# -- admin --------------------------------------------------------------------------


def test_an_admin_may_do_everything_and_read_the_access_log(run_services, rpc, as_):
    run_services(*SERVICES)
    with as_(ADMIN) as admin:
        answer = admin.intake.submit_report(report(channel="center", center=QIANWEI))
        assert answer["center"] == QIANWEI
        incident = answer["incident_id"]
        [order] = wait_for(lambda: admin.dispatch.list_orders(incident_id=incident))
        assert admin.intake.get_incident(incident)["reporter"] == FULL
        admin.dispatch.accept(order["order_id"])
        assert admin.dispatch.get_order(order["order_id"])["history"][-1]["operator"] == "管理员-吴"
        found(lambda: admin.escalation.chain(incident))
        step = admin.escalation.escalate(incident, "市里接管")
        assert step["to_center"] == "511100" and step["operator"] == "管理员-吴"
        log = admin.intake.personal_data_access(since(), until())
        assert [(e["sub"], e["kind"], e["incident_id"]) for e in log] == [
            ("管理员-吴", "admin", incident)
        ]


# -- personal data -------------------------------------------------------------------


def test_the_reporter_is_shown_in_full_only_to_those_named_and_each_disclosure_is_logged(
    run_services, rpc, as_, databases
):
    run_services(*SERVICES)
    incident, order = seeded(rpc, as_)
    start = since()
    shown = {}
    for caller in (PLATFORM, TOWN_DUTY, COUNTY_DUTY, WATER, AUDITOR, ADMIN):
        with as_(caller) as reader:
            shown[caller["sub"]] = reader.intake.get_incident(incident)["reporter"]
    assert shown == {
        "平台-12345": FULL,
        "值班员-张": FULL,
        "县值班员-赵": FULL,  # DONGSHAN is in its area
        "水务-李": FULL,  # holds an order on it
        "审计-周": MASKED,
        "管理员-吴": FULL,
    }

    with as_(ADMIN) as admin:
        log = admin.intake.personal_data_access(start, until())
    assert sorted((e["sub"], e["kind"], e["incident_id"]) for e in log) == sorted(
        [
            ("平台-12345", "platform", incident),
            ("值班员-张", "center", incident),
            ("县值班员-赵", "center", incident),
            ("水务-李", "department", incident),
            ("管理员-吴", "admin", incident),
        ]
    )

    for caller in (PLATFORM, TOWN_DUTY, WATER, AUDITOR):
        with as_(caller) as reader:
            all_refused(databases, [lambda: reader.intake.personal_data_access(start, until())])


# -- no valid token ------------------------------------------------------------------


def bad_headers() -> dict[str, dict | None]:
    """Context data that authenticates nobody."""
    good = make_token("admin", "管理员-吴")
    return {
        "no token": None,
        "an empty context": {},
        "expired": bearer(make_token("admin", "管理员-吴", ttl_s=-10)),
        "another secret": bearer(mint("another-secret-" + "f" * 32, "管理员-吴", "admin")),
        "Bearer x": {"authorization": "Bearer x"},
        "no Bearer prefix": {"authorization": good},
        "Basic scheme": {"authorization": f"Basic {good}"},
        "unknown center": bearer(make_token("center", "值班员", center="999999")),
        "platform without systems": bearer(make_token("platform", "平台")),
        "unknown kind": bearer(make_token("root", "值班员")),
    }


def test_calls_without_a_valid_token_are_unauthenticated_and_change_nothing(
    run_services, rpc, as_, databases, nameko_config
):
    run_services(*SERVICES)
    incident, order = seeded(rpc, as_)
    for what, context in bad_headers().items():
        config = {"AMQP_URI": nameko_config["AMQP_URI"]}
        with ClusterRpcProxy(config, timeout=30, context_data=context) as anyone:
            before = databases.snapshot()
            for call in (
                lambda: anyone.intake.submit_report(report()),
                lambda: anyone.intake.get_incident(incident),
                lambda: anyone.intake.personal_data_access(since(), until()),
                lambda: anyone.dispatch.accept(order["order_id"]),
                lambda: anyone.dispatch.list_orders(),
                lambda: anyone.escalation.escalate(incident, "无凭据"),
                lambda: anyone.escalation.chain(incident),
            ):
                error = refused(call, "Unauthenticated")
                assert "王小明" not in str(error.value) and "管理员" not in str(error.value), what
            assert databases.snapshot() == before, what


def since() -> str:
    return (datetime.now(UTC) - timedelta(minutes=5)).isoformat()


def until() -> str:
    return (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
