"""信息报送 (CONTRACT.md section 8): when an incident must be reported, by when, to whom."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.escalation import reporting
from services.escalation.reporting import ReportingFacts
from shared.network import load_network, parse_network
from tests.conftest import sample_network

SHANGHAI = ZoneInfo("Asia/Shanghai")
CITY = "511100"
QIANWEI = "511123"
DONGSHAN = "511123101"
T0 = datetime(2026, 11, 3, 9, 0, tzinfo=SHANGHAI)


@pytest.fixture(scope="module")
def network():
    return load_network()


def facts(category="water.burst_main", **figures) -> ReportingFacts:
    return ReportingFacts(category=category, town=DONGSHAN, **figures)


def with_reporting(**block):
    raw = sample_network()
    raw["reporting"].update(block)
    return parse_network(raw)


# -- the triggers ---------------------------------------------------------------


def test_an_ordinary_incident_need_not_be_reported(network):
    assert reporting.triggers(facts(), network) == ()
    assert reporting.duty_on_receipt(facts(), T0, network) is None


@pytest.mark.parametrize(
    ("grade", "reported"), [("I", True), ("II", True), ("III", True), ("IV", False)]
)
def test_a_grade_at_or_above_the_threshold_is_reported_where_I_is_the_most_severe(
    network, grade, reported
):
    assert reporting.must_report(facts(grade=grade), network) is reported


def test_a_grade_threshold_of_II_leaves_grade_III_unreported():
    network = with_reporting(grade="II")
    assert reporting.must_report(facts(grade="II"), network)
    assert not reporting.must_report(facts(grade="III"), network)


def test_a_crowd_must_be_above_the_threshold_not_at_it(network):
    assert not reporting.must_report(facts(crowd_size=30), network)
    assert reporting.triggers(facts(crowd_size=31), network) == ("crowd_size",)


def test_casualties_at_the_threshold_are_reported(network):
    assert not reporting.must_report(facts(casualties=0), network)
    assert reporting.triggers(facts(casualties=1), network) == ("casualties",)


def test_a_report_up_category_is_reported_whatever_its_size(network):
    assert reporting.triggers(facts("mass.gathering", crowd_size=3), network) == ("report_up",)


def test_every_trigger_that_holds_is_named(network):
    found = reporting.triggers(
        facts("mass.gathering", grade="II", crowd_size=80, casualties=2), network
    )
    assert found == ("grade", "crowd_size", "casualties", "report_up")


# -- when the duty starts, and the first report's deadline ---------------------


def test_a_grade_at_receipt_starts_the_duty_then_with_the_first_report_due_30_min_later(network):
    duty = reporting.duty_on_receipt(facts(grade="III"), T0, network)
    assert duty == reporting.Duty(
        since=T0, first_due=T0 + timedelta(minutes=30), triggers=("grade",)
    )


def test_a_crowd_that_grows_past_the_threshold_later_starts_the_duty_at_the_update(network):
    received = facts(crowd_size=20)
    assert reporting.duty_on_receipt(received, T0, network) is None
    updated_at = T0 + timedelta(hours=2)
    duty = reporting.duty_on_update(received, facts(crowd_size=45), updated_at, network)
    assert duty is not None
    assert duty.since == updated_at and duty.triggers == ("crowd_size",)
    assert duty.first_due == updated_at + timedelta(seconds=1800)


def test_an_update_below_the_thresholds_starts_no_duty(network):
    assert reporting.duty_on_update(facts(crowd_size=20), facts(crowd_size=30), T0, network) is None


def test_an_update_of_an_already_reportable_incident_does_not_restart_the_clock(network):
    before, after = facts(grade="III"), facts(grade="II", crowd_size=200)
    assert reporting.duty_on_update(before, after, T0 + timedelta(hours=1), network) is None


def test_a_recategorisation_to_a_report_up_category_starts_the_duty(network):
    duty = reporting.duty_on_update(facts(), facts("health.epidemic"), T0, network)
    assert duty is not None and duty.triggers == ("report_up",)


def test_the_first_report_deadline_follows_the_networks_first_s():
    network = with_reporting(first_s=600)
    assert reporting.first_report_due(T0, network) == T0 + timedelta(minutes=10)


# -- the final report, and lateness --------------------------------------------


def test_a_closing_starts_the_final_report_clock_of_final_s(network):
    closed_at = T0 + timedelta(hours=5)
    assert reporting.final_report_due(closed_at, network) == closed_at + timedelta(hours=24)


def test_only_a_final_report_filed_after_the_closing_answers_the_final_duty():
    closed_at = T0 + timedelta(hours=5)
    assert reporting.answers_final("final", closed_at, closed_at)
    assert not reporting.answers_final("final", closed_at - timedelta(seconds=1), closed_at)
    assert not reporting.answers_final("progress", closed_at + timedelta(hours=1), closed_at)


def test_any_kind_of_report_answers_the_first_report_duty():
    assert all(reporting.answers_first(kind) for kind in ("first", "progress", "final"))
    assert not reporting.answers_first("rumour")


def test_a_report_filed_at_the_deadline_is_on_time_and_one_second_later_is_late():
    due = T0 + timedelta(minutes=30)
    assert not reporting.is_late(due, due, now=due + timedelta(hours=1))
    assert reporting.is_late(due, due + timedelta(seconds=1), now=due + timedelta(hours=1))


def test_an_unfiled_report_is_late_only_once_the_deadline_has_passed():
    due = T0 + timedelta(minutes=30)
    assert not reporting.is_late(due, None, now=due)
    assert reporting.is_late(due, None, now=due + timedelta(seconds=1))


# -- who receives and who files --------------------------------------------------


def test_a_towns_report_reaches_its_county_and_the_city_when_up_to_is_city(network):
    assert [c.code for c in reporting.recipients(DONGSHAN, network)] == [QIANWEI, CITY]


def test_a_towns_report_stops_at_the_county_when_up_to_is_county():
    network = with_reporting(up_to="county")
    assert [c.code for c in reporting.recipients(DONGSHAN, network)] == [QIANWEI]


def test_a_report_filed_by_the_county_in_command_does_not_reach_the_county_itself(network):
    reached = reporting.recipients(DONGSHAN, network, filed_by=QIANWEI)
    assert [c.code for c in reached] == [CITY]


def test_up_to_county_for_a_town_directly_under_a_city_reaches_the_city():
    raw = sample_network()
    raw["centers"].append({"code": "511100901", "name": "直属镇", "level": "town", "parent": CITY})
    raw["reporting"]["up_to"] = "county"
    network = parse_network(raw)
    assert [c.code for c in reporting.recipients("511100901", network)] == [CITY]


def test_the_town_or_the_center_in_command_may_file_and_no_one_else(network):
    assert reporting.may_file(DONGSHAN, town=DONGSHAN, command_center=QIANWEI)
    assert reporting.may_file(QIANWEI, town=DONGSHAN, command_center=QIANWEI)
    assert not reporting.may_file(CITY, town=DONGSHAN, command_center=QIANWEI)
    assert not reporting.may_file("511123102", town=DONGSHAN, command_center=DONGSHAN)
