"""Routing by competence, hours and duty; deadlines by tier; returns (rules 1–4)."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.dispatch import routing
from shared.network import load_network

SHANGHAI = ZoneInfo("Asia/Shanghai")
WORKING = datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI)  # Friday morning
FRIDAY_EVENING = datetime(2026, 11, 27, 17, 31, tzinfo=SHANGHAI)
HOLIDAY = datetime(2026, 10, 2, 10, 0, tzinfo=SHANGHAI)
WORKED_SUNDAY = datetime(2026, 10, 11, 10, 0, tzinfo=SHANGHAI)
DONGSHAN = "511123101"


@pytest.fixture(scope="module")
def network():
    return load_network()


def by_department(orders):
    return {o.department: o for o in orders}


def test_a_category_gets_one_lead_and_one_order_per_assisting_role(network):
    category = network.categories["mass.gathering"]
    orders = routing.route(category, DONGSHAN, network, WORKING)
    assert [(o.role, o.served_role) for o in orders] == [("lead", "governance")] + [
        ("assist", r) for r in category.assist
    ]
    assert all(o.center == DONGSHAN for o in orders)
    assert all(o.dispatched_at == WORKING for o in orders)


def test_the_first_holder_in_file_order_leads(network):
    category = network.categories["building.illegal"]
    (lead, *_) = routing.route(category, DONGSHAN, network, WORKING)
    assert lead.department == network.holders(DONGSHAN, "construction")[0].code


def test_a_department_already_holding_an_order_is_not_sent_another(network):
    category = network.categories["building.illegal"]
    first = network.holders(DONGSHAN, "construction")[0].code
    orders = routing.route(category, DONGSHAN, network, WORKING, skip=[first])
    assert first not in by_department(orders)


def test_no_holder_of_the_lead_role_means_no_lead_order_here(network):
    # 孝姑镇 has no fire team: the escalation service moves command for that
    town = "511123103"
    assert not network.holders(town, "fire")
    orders = routing.route(network.categories["fire.building"], town, network, WORKING)
    assert all(o.role == "assist" for o in orders)


@pytest.mark.parametrize(
    ("at", "office_recipient"),
    [
        (WORKING, "department"),
        (FRIDAY_EVENING, "duty_officer"),
        (HOLIDAY, "duty_officer"),
        (WORKED_SUNDAY, "department"),
    ],
)
def test_off_hours_orders_for_office_units_go_to_the_duty_officer(network, at, office_recipient):
    office = next(d for d in network.departments_of(DONGSHAN) if d.duty == "office")
    always = next(d for d in network.departments_of(DONGSHAN) if d.duty == "24h")
    assert routing.recipient_for(office, network, at) == office_recipient
    assert routing.recipient_for(always, network, at) == "department"


@pytest.mark.parametrize("at", [WORKING, FRIDAY_EVENING, HOLIDAY])
def test_deadlines_run_from_dispatch_by_tier_whatever_the_hour(network, at):
    tier1 = next(d for d in network.departments_of(DONGSHAN) if d.tier == 1)
    tier2 = next(d for d in network.departments_of(DONGSHAN) if d.tier == 2)
    one = routing.plan(tier1, "lead", tier1.roles[0], network, at)
    two = routing.plan(tier2, "lead", tier2.roles[0], network, at)
    assert one.accept_by == at + timedelta(minutes=5) == two.accept_by
    assert one.arrive_by == at + timedelta(minutes=30)
    assert two.arrive_by == at + timedelta(minutes=40)


def test_a_returned_order_goes_to_the_next_holder_then_nowhere(network):
    holders = [d.code for d in network.holders(DONGSHAN, "mediation")]
    assert len(holders) >= 2
    nxt = routing.reroute("mediation", "lead", DONGSHAN, network, WORKING, tried=holders[:1])
    assert nxt.department == holders[1] and nxt.role == "lead"
    assert routing.reroute("mediation", "lead", DONGSHAN, network, WORKING, tried=holders) is None


def test_neighbour_towns_units_of_the_lead_role_join_as_assists(network):
    category = network.categories["mass.gathering"]
    neighbours = network.centers[DONGSHAN].neighbours
    orders = routing.neighbour_assists(category, neighbours, network, WORKING)
    assert {o.center for o in orders} == set(neighbours)
    assert all(o.role == "assist" and o.served_role == "governance" for o in orders)


class TestMissedDeadlines:
    at = WORKING
    accept_by = at + timedelta(minutes=5)
    arrive_by = at + timedelta(minutes=30)

    def missed(self, status, now, accept_marked=None, arrive_marked=None, reply_by=None):
        due = {"accept": self.accept_by, "arrive": self.arrive_by, "reply": reply_by}
        if reply_by is not None:
            due["arrive"] = None
        marked = {"accept": accept_marked, "arrive": arrive_marked}
        return [d for d, _ in routing.missed_deadlines(status, due, marked, now)]

    def test_nothing_is_late_before_the_deadline(self):
        assert self.missed("dispatched", self.accept_by - timedelta(seconds=1)) == []

    def test_an_unaccepted_order_is_late_at_its_accept_deadline(self):
        assert self.missed("dispatched", self.accept_by) == ["accept"]

    def test_an_accepted_order_can_only_miss_arrival(self):
        assert self.missed("accepted", self.arrive_by) == ["arrive"]

    def test_a_deadline_is_announced_once(self):
        assert self.missed("dispatched", self.arrive_by, accept_marked=self.accept_by) == ["arrive"]
        assert self.missed("dispatched", self.arrive_by, self.accept_by, self.arrive_by) == []

    @pytest.mark.parametrize("status", ["on_scene", "completed", "returned", "cancelled"])
    def test_orders_on_scene_or_closed_are_never_late(self, status):
        assert self.missed(status, self.arrive_by + timedelta(hours=1)) == []

    def test_an_order_without_an_arrival_deadline_misses_its_reply_one(self):
        reply_by = self.at + timedelta(days=7)
        assert self.missed("accepted", reply_by - timedelta(seconds=1), reply_by=reply_by) == []
        assert self.missed("on_scene", reply_by, reply_by=reply_by) == ["reply"]
        assert self.missed("completed", reply_by, reply_by=reply_by) == []


def test_roles_already_covered_at_the_center_get_no_second_order(network):
    category = network.categories["building.illegal"]
    orders = routing.route(category, DONGSHAN, network, WORKING, covered=[category.lead])
    assert all(o.served_role != category.lead for o in orders)
