"""Request types, reply deadlines on working days, duty days, added orders,
reclassification and the duty room's arguments (CONTRACT.md section 7)."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.dispatch import orders, routing
from services.dispatch.duty import checked_roster
from shared.errors import ValidationError
from shared.network import load_network

SHANGHAI = ZoneInfo("Asia/Shanghai")
DONGSHAN = "511123101"


def at(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def end_of(day: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), datetime.min.time(), SHANGHAI).replace(
        hour=17, minute=30
    )


@pytest.fixture(scope="module")
def network():
    return load_network()


class TestReplyDeadline:
    """`reply_workdays: 5` in the sample: the end (17:30) of the 5th working
    day after the day of dispatch."""

    def test_a_friday_evening_report_is_due_the_next_friday(self, network):
        assert routing.reply_deadline(network, at(2026, 11, 27, 19, 0)) == end_of("2026-12-04")

    def test_the_hour_of_dispatch_does_not_matter_the_day_is_not_counted(self, network):
        assert routing.reply_deadline(network, at(2026, 11, 27, 9, 0)) == end_of("2026-12-04")

    def test_a_weekend_is_skipped(self, network):
        # Wednesday 2026-11-25: Thu, Fri, (weekend), Mon, Tue, Wed
        assert routing.reply_deadline(network, at(2026, 11, 25, 10, 0)) == end_of("2026-12-02")

    def test_a_report_on_a_saturday_counts_from_monday(self, network):
        assert routing.reply_deadline(network, at(2026, 11, 28, 10, 0)) == end_of("2026-12-04")

    def test_holidays_are_skipped_and_worked_weekend_days_count(self, network):
        # Wednesday 2026-09-30, then the National Day holidays 10-01..10-07;
        # Thu 10-08, Fri 10-09, Sat 10-10 and Sun 10-11 (both worked), Mon 10-12
        assert routing.reply_deadline(network, at(2026, 9, 30, 16, 0)) == end_of("2026-10-12")

    def test_a_worked_sunday_is_a_working_day_of_its_own(self, network):
        # Sun 10-11 is worked: Mon 10-12 .. Fri 10-16 are the five days after it
        assert routing.reply_deadline(network, at(2026, 10, 11, 10, 0)) == end_of("2026-10-16")

    def test_utc_instants_are_read_in_the_network_timezone(self, network):
        # 2026-11-27 23:30 UTC is Saturday 07:30 in Shanghai
        utc = datetime(2026, 11, 27, 23, 30, tzinfo=ZoneInfo("UTC"))
        assert routing.reply_deadline(network, utc) == end_of("2026-12-04")


class TestRequestTypes:
    @pytest.mark.parametrize("kind", ["help", "emergency"])
    def test_help_and_emergency_orders_must_arrive(self, network, kind):
        unit = network.departments["dongshan-water"]
        planned = routing.plan(unit, "lead", "water", network, at(2026, 11, 27, 10, 0), kind)
        assert planned.arrive_by == planned.dispatched_at + timedelta(minutes=30)
        assert planned.reply_by is None

    @pytest.mark.parametrize("kind", ["consultation", "complaint", "suggestion"])
    def test_other_requests_must_reply_and_need_no_one_on_scene(self, network, kind):
        unit = network.departments["dongshan-water"]
        planned = routing.plan(unit, "lead", "water", network, at(2026, 11, 27, 19, 0), kind)
        assert planned.arrive_by is None and planned.reply_by == end_of("2026-12-04")
        assert planned.accept_by == planned.dispatched_at + timedelta(minutes=5)

    def test_route_passes_the_request_type_to_every_order(self, network):
        category = network.categories["mass.gathering"]
        planned = routing.route(
            category, DONGSHAN, network, at(2026, 11, 27, 10, 0), request_type="consultation"
        )
        assert planned and all(p.arrive_by is None and p.reply_by for p in planned)


class TestDutyDay:
    def test_the_night_belongs_to_the_day_before(self, network):
        assert routing.duty_day(network, at(2026, 11, 28, 2, 0)) == date(2026, 11, 27)
        assert routing.duty_day(network, at(2026, 11, 27, 19, 0)) == date(2026, 11, 27)
        assert routing.duty_day(network, at(2026, 11, 28, 8, 30)) == date(2026, 11, 28)

    def test_only_orders_for_the_duty_officer_have_a_duty_day(self, network):
        office = network.departments["dongshan-construction"]
        always = network.departments["dongshan-water"]
        evening = at(2026, 11, 27, 19, 0)
        assert routing.plan(office, "lead", "construction", network, evening).duty_day == date(
            2026, 11, 27
        )
        assert routing.plan(always, "lead", "water", network, evening).duty_day is None


class TestAddedOrders:
    def test_an_added_unit_is_an_assist_serving_a_role_the_category_needs(self, network):
        unit = network.departments["dongshan-governance"]  # governance, mediation
        category = network.categories["dispute.neighbour"]  # lead: mediation
        planned = routing.added(unit, category, network, at(2026, 11, 27, 10, 0))
        assert (planned.role, planned.served_role) == ("assist", "mediation")

    def test_a_unit_outside_the_category_serves_its_first_role(self, network):
        unit = network.departments["dongshan-justice"]
        planned = routing.added(
            unit, network.categories["fire.building"], network, at(2026, 11, 27, 10, 0)
        )
        assert (planned.role, planned.served_role) == ("assist", "justice")


class TestReclassify:
    def test_roles_no_longer_needed_are_cancelled_and_kept_ones_are_covered(self, network):
        gathering = network.categories["mass.gathering"]
        fire = network.categories["fire.building"]  # lead fire, assist police, health
        open_orders = [("o1", gathering.lead, "initial")] + [
            (f"a{i}", role, "initial") for i, role in enumerate(gathering.assist)
        ]
        decision = routing.reclassify(fire, open_orders)
        kept = {role for _, role, _ in open_orders} & {"fire", "police", "health"}
        assert decision.covered == kept
        assert set(decision.cancel) == {
            oid for oid, role, _ in open_orders if role not in ("fire", "police", "health")
        }

    def test_the_new_roles_get_orders_at_the_center_in_command(self, network):
        fire = network.categories["fire.building"]
        decision = routing.reclassify(fire, [("o1", "police", "initial")])
        planned = routing.route(
            fire, DONGSHAN, network, at(2026, 11, 27, 10, 0), covered=decision.covered
        )
        assert {p.served_role for p in planned} == {"fire", "health"}
        assert decision.cancel == ()

    def test_orders_the_operators_added_stay(self, network):
        fire = network.categories["fire.building"]
        decision = routing.reclassify(
            fire, [("o1", "justice", "added"), ("o2", "water", "initial")]
        )
        assert decision.cancel == ("o2",) and decision.covered == frozenset()

    def test_a_transferred_category_cancels_every_order(self, network):
        transferred = next(c for c in network.categories.values() if c.transfer_to)
        decision = routing.reclassify(transferred, [("o1", "police", "initial")])
        assert decision.cancel == ("o1",)


class TestArguments:
    def test_list_filters_are_checked_together(self):
        with pytest.raises(ValidationError) as error:
            orders.checked_filters(
                limit=0,
                incident_id=None,
                center="",
                department=None,
                status="lost",
                recipient="mayor",
                overdue="yes",
                open=1,
            )
        assert set(error.value.errors) == {
            "limit",
            "center",
            "status",
            "recipient",
            "overdue",
            "open",
        }

    def test_a_roster_names_a_leader_and_officers_with_phones(self, network):
        person = {"name": "张三", "phone": "13800001234"}
        row = checked_roster(DONGSHAN, "2026-11-27", person, [person], network)
        assert row["day"] == date(2026, 11, 27) and row["officers"] == [person]

    def test_a_bad_roster_names_every_bad_field(self, network):
        with pytest.raises(ValidationError) as error:
            checked_roster(
                "nowhere", "27/11/2026", {"name": "张三"}, [{"name": "", "phone": "x"}], network
            )
        assert set(error.value.errors) == {
            "center",
            "date",
            "leader.phone",
            "officers[0].name",
            "officers[0].phone",
        }

    def test_a_roster_needs_an_officer(self, network):
        person = {"name": "张三", "phone": "13800001234"}
        with pytest.raises(ValidationError) as error:
            checked_roster(DONGSHAN, "2026-02-30", person, [], network)
        assert set(error.value.errors) == {"date", "officers"}
