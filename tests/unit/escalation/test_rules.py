"""When command moves and to which center (rule 5): every reason and boundary."""

import copy
from datetime import UTC, datetime, timedelta

import pytest

from services.escalation import rules
from services.escalation.rules import Declined, IncidentFacts, Move, NoParent
from shared.errors import Forbidden, ValidationError
from shared.network import load_network, parse_network

CITY = "511100"
QIANWEI = "511123"
DONGSHAN = "511123101"
YUJIN = "511123102"
XIAOGU = "511123103"  # 孝姑镇: no fire, environment or maritime unit
QINGXI = "511123104"
MUCHUAN = "511129"
LIDIAN = "511129102"  # 利店镇: no fire unit, and neither has its only neighbour


@pytest.fixture(scope="module")
def network():
    return load_network()


def incident(center=DONGSHAN, category="mass.gathering", crowd_size=None, grade=None, town=None):
    return IncidentFacts(
        category=category,
        town=town or center,
        center=center,
        crowd_size=crowd_size,
        grade=grade,
    )


def tiny_network(**changes) -> dict:
    """A city, one county, two towns; `changes` replace top-level keys."""
    raw = {
        "calendar": {"working_hours": ["08:30-17:30"]},
        "deadlines_s": {"accept": 1, "arrive_tier1": 2, "arrive_tier2": 3, "overdue_grace": 2},
        "thresholds": {"county_crowd": 100, "city_crowd": 500},
        "grades": {"I": "city", "II": "city", "III": "county", "IV": "town"},
        "centers": [
            {"code": "C", "name": "city", "level": "city"},
            {"code": "K", "name": "county", "level": "county", "parent": "C"},
            {"code": "T1", "name": "town 1", "level": "town", "parent": "K", "neighbours": ["T2"]},
            {"code": "T2", "name": "town 2", "level": "town", "parent": "K", "neighbours": ["T1"]},
        ],
        "departments": [
            {
                "code": "c-fire",
                "center": "C",
                "name": "f",
                "roles": ["fire"],
                "tier": 1,
                "duty": "24h",
            },
            {
                "code": "k-police",
                "center": "K",
                "name": "p",
                "roles": ["police"],
                "tier": 1,
                "duty": "24h",
            },
            {
                "code": "t1-police",
                "center": "T1",
                "name": "p",
                "roles": ["police"],
                "tier": 1,
                "duty": "24h",
            },
            {
                "code": "t2-police",
                "center": "T2",
                "name": "p",
                "roles": ["police"],
                "tier": 1,
                "duty": "24h",
            },
        ],
        "categories": [
            {"code": "order", "name": "o", "lead": "police", "assist": []},
            {"code": "fire", "name": "f", "lead": "fire", "assist": ["police"]},
        ],
    }
    raw.update(copy.deepcopy(changes))
    return raw


# -- crowd size ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("crowd", "expected"),
    [
        (None, None),
        (0, None),
        (100, None),
        (101, Move("crowd_size", DONGSHAN, QIANWEI)),
        (499, Move("crowd_size", DONGSHAN, QIANWEI)),
        (500, Move("crowd_size", DONGSHAN, CITY)),
        (20_000, Move("crowd_size", DONGSHAN, CITY)),
    ],
)
def test_a_crowd_above_the_county_threshold_goes_to_the_county_and_at_the_city_one_to_the_city(
    network, crowd, expected
):
    assert rules.initial_command(incident(crowd_size=crowd), network) == expected


def test_crowd_thresholds_come_from_the_network_file():
    network = parse_network(tiny_network(thresholds={"county_crowd": 10, "city_crowd": 20}))
    assert rules.initial_command(incident("T1", "order", crowd_size=10), network) is None
    assert rules.initial_command(incident("T1", "order", crowd_size=11), network).to_center == "K"
    assert rules.initial_command(incident("T1", "order", crowd_size=20), network).to_center == "C"


def test_a_report_taken_at_the_county_is_never_moved_down_or_sideways(network):
    assert rules.initial_command(incident(QIANWEI, crowd_size=150, town=DONGSHAN), network) is None
    moved = rules.initial_command(incident(QIANWEI, crowd_size=500, town=DONGSHAN), network)
    assert moved == Move("crowd_size", QIANWEI, CITY)


def test_a_town_directly_under_the_city_sends_a_county_sized_crowd_to_the_city():
    raw = tiny_network()
    raw["centers"].append({"code": "T3", "name": "t3", "level": "town", "parent": "C"})
    raw["departments"].append(
        {
            "code": "t3-police",
            "center": "T3",
            "name": "p",
            "roles": ["police"],
            "tier": 1,
            "duty": "24h",
        }
    )
    network = parse_network(raw)
    assert rules.initial_command(incident("T3", "order", crowd_size=150), network) == Move(
        "crowd_size", "T3", "C"
    )


# -- grade --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grade", "expected"),
    [
        ("IV", None),
        ("III", Move("grade", DONGSHAN, QIANWEI)),
        ("II", Move("grade", DONGSHAN, CITY)),
        ("I", Move("grade", DONGSHAN, CITY)),
    ],
)
def test_a_grade_maps_to_the_level_that_commands(network, grade, expected):
    assert rules.initial_command(incident(grade=grade), network) == expected


def test_the_grade_levels_come_from_the_network_file():
    network = parse_network(
        tiny_network(grades={"I": "city", "II": "county", "III": "county", "IV": "county"})
    )
    assert rules.initial_command(incident("T1", "order", grade="IV"), network) == Move(
        "grade", "T1", "K"
    )


def test_the_higher_of_crowd_and_grade_wins_in_one_step(network):
    assert rules.initial_command(incident(crowd_size=150, grade="I"), network) == Move(
        "grade", DONGSHAN, CITY
    )
    assert rules.initial_command(incident(crowd_size=600, grade="III"), network) == Move(
        "crowd_size", DONGSHAN, CITY
    )


def test_on_a_tie_between_crowd_and_grade_the_crowd_is_recorded(network):
    assert rules.initial_command(incident(crowd_size=150, grade="III"), network) == Move(
        "crowd_size", DONGSHAN, QIANWEI
    )


# -- no competent unit ----------------------------------------------------------


def test_a_town_without_a_unit_of_the_lead_role_hands_command_to_the_nearest_that_has_one(
    network,
):
    assert not network.holders(XIAOGU, "fire")
    assert rules.initial_command(incident(XIAOGU, "fire.building"), network) == Move(
        "no_competent_unit", XIAOGU, QIANWEI
    )


def test_no_competent_unit_skips_every_level_without_the_role():
    # only the city has a fire unit
    network = parse_network(tiny_network())
    assert rules.initial_command(incident("T1", "fire"), network) == Move(
        "no_competent_unit", "T1", "C"
    )


def test_a_crowd_sends_command_to_the_county_but_the_role_only_the_city_holds_wins():
    network = parse_network(tiny_network())
    assert rules.initial_command(incident("T1", "fire", crowd_size=150), network) == Move(
        "no_competent_unit", "T1", "C"
    )


def test_a_severity_move_to_a_center_with_the_role_keeps_its_reason(network):
    # 孝姑镇 has no fire team, the county has one: the crowd's reason stands
    assert rules.initial_command(incident(XIAOGU, "fire.building", crowd_size=150), network) == (
        Move("crowd_size", XIAOGU, QIANWEI)
    )


def test_a_town_with_the_lead_role_keeps_command(network):
    assert rules.initial_command(incident(DONGSHAN, "fire.building"), network) is None


# -- all returned ----------------------------------------------------------------


def test_when_every_holder_has_returned_the_order_the_parent_takes_command(network):
    assert rules.on_all_returned(DONGSHAN, DONGSHAN, network) == Move(
        "all_returned", DONGSHAN, QIANWEI
    )
    assert rules.on_all_returned(QIANWEI, QIANWEI, network) == Move("all_returned", QIANWEI, CITY)


def test_returns_at_a_town_that_no_longer_commands_move_nothing(network):
    assert rules.on_all_returned(DONGSHAN, QIANWEI, network) is None


def test_all_returned_at_the_city_is_refused_not_looped(network):
    assert rules.on_all_returned(CITY, CITY, network) == NoParent("all_returned", CITY)


# -- reinforcement -----------------------------------------------------------------


def reinforce(network, center=DONGSHAN, command=None, lead="governance", crowd=None, called=False):
    return rules.on_reinforcement(
        order_center=center,
        command_center=command or center,
        lead_role=lead,
        crowd_size=crowd,
        neighbours_called=called,
        network=network,
    )


@pytest.mark.parametrize("crowd", [None, 0, 30, 100])
def test_a_small_reinforcement_request_brings_in_the_neighbour_towns(network, crowd):
    assert reinforce(network, crowd=crowd) == Move("neighbour", DONGSHAN, DONGSHAN, (YUJIN, XIAOGU))


def test_only_neighbours_with_a_unit_of_the_lead_role_join(network):
    # of 东山镇's neighbours only 玉津镇 has a fire team
    assert reinforce(network, lead="fire") == Move("neighbour", DONGSHAN, DONGSHAN, (YUJIN,))


@pytest.mark.parametrize("crowd", [101, 499, 500])
def test_a_reinforcement_request_above_the_county_threshold_goes_up_one_level(network, crowd):
    assert reinforce(network, crowd=crowd) == Move("reinforcement", DONGSHAN, QIANWEI)


def test_a_second_reinforcement_request_goes_up_one_level(network):
    assert reinforce(network, called=True) == Move("reinforcement", DONGSHAN, QIANWEI)


def test_without_neighbours_a_reinforcement_request_goes_up_one_level():
    raw = tiny_network()
    for center in raw["centers"]:
        center.pop("neighbours", None)
    network = parse_network(raw)
    assert reinforce(network, "T1", lead="police") == Move("reinforcement", "T1", "K")


def test_without_a_neighbour_holding_the_lead_role_a_request_goes_up_one_level(network):
    assert not network.holders("511129103", "fire")
    assert reinforce(network, LIDIAN, lead="fire") == Move("reinforcement", LIDIAN, MUCHUAN)


def test_a_county_asking_for_reinforcement_goes_to_the_city(network):
    assert reinforce(network, QIANWEI) == Move("reinforcement", QIANWEI, CITY)


def test_a_request_from_a_center_not_in_command_moves_nothing(network):
    assert reinforce(network, DONGSHAN, command=QIANWEI) is None
    assert reinforce(network, YUJIN, command=DONGSHAN) is None  # a neighbour's assist unit


def test_reinforcement_at_the_city_is_refused(network):
    assert reinforce(network, CITY) == NoParent("reinforcement", CITY)


# -- overdue --------------------------------------------------------------------------


def test_a_deadline_unmet_after_its_grace_moves_command_up_from_the_order_center(network):
    assert rules.on_overdue_unmet(DONGSHAN, DONGSHAN, network) == Move("overdue", DONGSHAN, QIANWEI)
    assert rules.on_overdue_unmet(QIANWEI, QIANWEI, network) == Move("overdue", QIANWEI, CITY)


def test_an_overdue_town_order_after_command_went_up_moves_nothing(network):
    assert rules.on_overdue_unmet(DONGSHAN, QIANWEI, network) is None


def test_an_overdue_order_at_the_city_is_refused(network):
    refused = rules.on_overdue_unmet(CITY, CITY, network)
    assert refused == NoParent("overdue", CITY)
    assert "no parent" in refused.message


# -- once keys ---------------------------------------------------------------------------


def test_automatic_moves_are_keyed_once_per_reason_and_center_operators_moves_are_not():
    assert Move("overdue", DONGSHAN, QIANWEI).once_key == f"overdue@{DONGSHAN}"
    assert Move("neighbour", DONGSHAN, DONGSHAN, (YUJIN,)).once_key == f"neighbour@{DONGSHAN}"
    assert Move("manual", DONGSHAN, QIANWEI).once_key is None
    assert Move("assign_down", QIANWEI, DONGSHAN).once_key is None


# -- operators -----------------------------------------------------------------------------


def test_an_operator_escalates_one_level_from_the_center_in_command(network):
    assert rules.manual_escalate(DONGSHAN, network) == Move("manual", DONGSHAN, QIANWEI)
    assert rules.manual_escalate(QIANWEI, network, caller=QIANWEI) == Move("manual", QIANWEI, CITY)


def test_escalating_at_the_city_is_a_validation_error(network):
    with pytest.raises(ValidationError) as error:
        rules.manual_escalate(CITY, network)
    assert error.value.errors == {"incident_id": ["the city center has no parent to escalate to"]}


def test_only_the_center_in_command_escalates(network):
    with pytest.raises(Forbidden):
        rules.manual_escalate(QIANWEI, network, caller=DONGSHAN)


def test_a_county_assigns_down_to_one_of_its_towns(network):
    assert rules.assign_down_target(QIANWEI, DONGSHAN, network) == Move(
        "assign_down", QIANWEI, DONGSHAN
    )
    assert rules.assign_down_target(CITY, LIDIAN, network, caller=CITY) == Move(
        "assign_down", CITY, LIDIAN
    )


@pytest.mark.parametrize("target", ["nowhere", QIANWEI, CITY, ""])
def test_assigning_down_to_anything_but_a_town_is_a_validation_error(network, target):
    with pytest.raises(ValidationError) as error:
        rules.assign_down_target(CITY, target, network)
    assert list(error.value.errors) == ["to_center"]


def test_assigning_down_to_a_town_of_another_county_is_forbidden(network):
    with pytest.raises(Forbidden):
        rules.assign_down_target(QIANWEI, LIDIAN, network)


def test_a_town_in_command_cannot_assign_down(network):
    with pytest.raises(Forbidden):
        rules.assign_down_target(DONGSHAN, YUJIN, network)
    with pytest.raises(Forbidden):
        rules.assign_down_target(DONGSHAN, DONGSHAN, network)


def test_a_caller_not_in_command_cannot_assign_down(network):
    with pytest.raises(Forbidden):
        rules.assign_down_target(CITY, DONGSHAN, network, caller=QIANWEI)


# -- vetting a decision against the incident as it stands -----------------------------


def test_nothing_asked_and_a_refusal_pass_the_vetting_unchanged(network):
    assert rules.vet(None, DONGSHAN, frozenset(), network) is None
    refused = NoParent("overdue", CITY)
    assert rules.vet(refused, CITY, frozenset(), network) == refused


def test_a_move_from_the_center_in_command_is_approved(network):
    move = Move("overdue", DONGSHAN, QIANWEI)
    assert rules.vet(move, DONGSHAN, frozenset(), network) == move


def test_a_move_from_a_center_no_longer_in_command_is_declined(network):
    move = Move("overdue", DONGSHAN, QIANWEI)
    assert rules.vet(move, QIANWEI, frozenset(), network) == Declined(
        move, rules.NOT_IN_COMMAND, QIANWEI
    )


def test_a_move_to_where_command_already_is_is_declined_except_neighbours_who_keep_it(network):
    stay = Move("crowd_size", DONGSHAN, DONGSHAN)
    assert rules.vet(stay, DONGSHAN, frozenset(), network) == Declined(stay, rules.NO_OP, DONGSHAN)
    neighbours = Move("neighbour", DONGSHAN, DONGSHAN, (YUJIN,))
    assert rules.vet(neighbours, DONGSHAN, frozenset(), network) == neighbours


@pytest.mark.parametrize(
    "move",
    [
        Move("overdue", QIANWEI, DONGSHAN),  # down
        Move("reinforcement", DONGSHAN, YUJIN),  # sideways
        Move("manual", CITY, QIANWEI),
    ],
)
def test_an_automatic_or_manual_move_that_does_not_go_up_is_declined(network, move):
    assert rules.vet(move, move.from_center, frozenset(), network) == Declined(
        move, rules.DOWNWARD, move.from_center
    )


def test_assigning_down_is_the_one_move_that_goes_down(network):
    move = Move("assign_down", QIANWEI, DONGSHAN)
    assert rules.vet(move, QIANWEI, frozenset(), network) == move


def test_an_automatic_reason_moves_command_from_a_center_once(network):
    move = Move("overdue", DONGSHAN, QIANWEI)
    made = frozenset({f"overdue@{DONGSHAN}"})
    assert rules.vet(move, DONGSHAN, made, network) == Declined(move, rules.MADE_ALREADY, DONGSHAN)
    # the same reason from another center, or another reason, is still to make
    assert rules.vet(move, DONGSHAN, frozenset({f"overdue@{QIANWEI}"}), network) == move
    assert rules.vet(move, DONGSHAN, frozenset({f"all_returned@{DONGSHAN}"}), network) == move


def test_an_operators_move_is_never_declined_as_made_already(network):
    move = Move("manual", DONGSHAN, QIANWEI)
    assert move.once_key is None
    assert rules.vet(move, DONGSHAN, frozenset({f"manual@{DONGSHAN}"}), network) == move


# -- when a move is recorded ------------------------------------------------------------------

T0 = datetime(2026, 10, 9, 8, 0, tzinfo=UTC)


def test_a_move_is_recorded_now_when_now_is_after_the_previous_move():
    assert rules.move_at(T0, None) == T0
    assert rules.move_at(T0, T0 - rules.TICK) == T0


def test_a_move_is_recorded_a_tick_after_the_previous_one_when_a_clock_lags():
    assert rules.move_at(T0, T0) == T0 + rules.TICK
    assert rules.move_at(T0 - timedelta(seconds=5), T0) == T0 + rules.TICK


# -- a missed deadline at the end of its grace -----------------------------------------------


@pytest.mark.parametrize(
    ("deadline", "accepted", "arrived", "returned", "expected"),
    [
        ("accept", None, None, None, None),
        ("accept", T0, None, None, "met"),  # caught up exactly at the end of the grace
        ("accept", T0 + rules.TICK, None, None, None),  # too late
        ("accept", None, T0, None, "met"),  # arrival meets acceptance too
        ("arrive", T0, None, None, None),  # acceptance does not meet arrival
        ("arrive", None, T0, None, "met"),
        ("arrive", None, None, T0, "moot"),  # returned: its replacement has its own
        ("arrive", None, None, T0 + rules.TICK, None),
        ("accept", T0, None, T0, "met"),  # met before it was returned
    ],
)
def test_a_missed_deadline_is_met_moot_or_still_owed_at_the_end_of_its_grace(
    deadline, accepted, arrived, returned, expected
):
    assert rules.settled(deadline, T0, accepted, arrived, returned) == expected
