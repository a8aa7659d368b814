"""Working hours in the network's timezone: weekends, holidays, worked weekend days."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from shared.network import load_network

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def network():
    return load_network()


def local(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("at", "working"),
    [
        (local(2026, 11, 27, 17, 29), True),  # Friday afternoon
        (local(2026, 11, 27, 17, 31), False),  # Friday 17:31: the office has closed
        (local(2026, 11, 27, 17, 30), False),  # the end is exclusive
        (local(2026, 11, 27, 8, 30), True),
        (local(2026, 11, 27, 12, 30), False),  # lunch break
        (local(2026, 11, 28, 10, 0), False),  # Saturday
        (local(2026, 10, 1, 10, 0), False),  # National Day holiday (a Thursday)
        (local(2026, 10, 11, 10, 0), True),  # a worked Sunday (调休)
        (local(2026, 10, 11, 13, 0), False),  # ... but still not over lunch
    ],
)
def test_working_time(network, at, working):
    assert network.is_working_time(at) is working


def test_hours_are_judged_in_the_networks_timezone(network):
    # 00:31 UTC is 08:31 in Shanghai on a Monday
    assert network.is_working_time(datetime(2026, 11, 30, 0, 31, tzinfo=UTC))
    # 09:31 UTC is 17:31 in Shanghai
    assert not network.is_working_time(datetime(2026, 11, 30, 9, 31, tzinfo=UTC))
