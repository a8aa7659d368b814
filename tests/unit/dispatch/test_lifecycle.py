"""The order state machine: every allowed step, and a clear refusal otherwise."""

import pytest

from services.dispatch.lifecycle import STATUSES, TRANSITIONS, next_status
from shared.errors import InvalidTransition

ALLOWED = {
    ("dispatched", "accept"): "accepted",
    ("dispatched", "return"): "returned",
    ("accepted", "return"): "returned",
    ("accepted", "arrive"): "on_scene",
    ("on_scene", "report"): "on_scene",
    ("on_scene", "complete"): "completed",
    ("accepted", "request_reinforcement"): "accepted",
    ("on_scene", "request_reinforcement"): "on_scene",
    ("dispatched", "cancel"): "cancelled",
    ("accepted", "cancel"): "cancelled",
    ("on_scene", "cancel"): "cancelled",
}


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("action", sorted(TRANSITIONS))
def test_each_action_from_each_status(status, action):
    if (status, action) in ALLOWED:
        assert next_status(status, action) == ALLOWED[(status, action)]
    else:
        with pytest.raises(InvalidTransition) as error:
            next_status(status, action)
        assert status in str(error.value)


def test_the_happy_path_reaches_completed():
    status = "dispatched"
    for action in ("accept", "arrive", "report", "report", "complete"):
        status = next_status(status, action)
    assert status == "completed"
