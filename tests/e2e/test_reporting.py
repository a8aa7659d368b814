"""Information reporting with every service as a real process, two of
escalation (CONTRACT.md sections 8 and 9): a town files its first report
late, the miss is announced once and counted against the town when the
county ranks its towns; the county signs for the report and its inbox
empties."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from services.client import main as client_main
from tests.conftest import cluster_rpc, make_token, sample_network, wait_for
from tests.support.reports import DONGSHAN, report

pytestmark = pytest.mark.e2e

QIANWEI = "511123"
TOWN = make_token("center", sub="东山值班员", center=DONGSHAN)
COUNTY = make_token("center", sub="犍为县值班员", center=QIANWEI)


def test_a_late_first_report_counts_against_the_town_and_the_county_signs_for_it(
    platform, broker_uri, network_file, tap, monkeypatch, capsys
):
    reporting = {**sample_network()["reporting"], "first_s": 2}
    platform.env["LINKAGE_NETWORK"] = network_file(reporting=reporting)
    platform.start("intake", "dispatch", "escalation", "escalation", "assessment")
    events = tap("escalation")
    since = datetime.now(UTC) - timedelta(minutes=1)
    with cluster_rpc(broker_uri) as rpc:
        incident = rpc.intake.submit_report(report(category="mass.gathering", crowd_size=45))
        incident = incident["incident_id"]
        wait_for(lambda: events.drain() and events.of_type("report_overdue"), timeout=45)
        events.drain(timeout=2)
        [missed] = events.of_type("report_overdue")
        assert (missed["incident_id"], missed["center"], missed["kind"]) == (
            incident,
            DONGSHAN,
            "first",
        )

        # the town and the county's duty rooms use the command-line client
        monkeypatch.setenv("AMQP_URI", broker_uri)
        capsys.readouterr()
        assert client(TOWN, "file-report", incident, "first", "东山镇广场聚集45人") == 0
        filed = json.loads(capsys.readouterr().out)
        assert client(COUNTY, "inbox", QIANWEI, "--unacknowledged") == 0
        [waiting] = json.loads(capsys.readouterr().out)
        assert waiting["report_id"] == filed["report_id"]
        assert client(COUNTY, "acknowledge", filed["report_id"]) == 0
        capsys.readouterr()
        assert client(COUNTY, "inbox", QIANWEI, "--unacknowledged") == 0
        assert json.loads(capsys.readouterr().out) == []

        with cluster_rpc(broker_uri, token=COUNTY) as county:
            until = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()

            def dongshan():
                rows = county.assessment.rank_centers(QIANWEI, since.isoformat(), until)
                row = next(r for r in rows if r["center"] == DONGSHAN)
                return row if row["reports_due"] else None

            row = wait_for(dongshan, timeout=30, message="the duty counted by assessment")
            assert (row["reports_due"], row["reports_late"]) == (1, 1)
            others = county.assessment.rank_centers(QIANWEI, since.isoformat(), until)
            assert all(r["reports_due"] == 0 for r in others if r["center"] != DONGSHAN)


def client(token: str, *args: str) -> int:
    return client_main(["--token", token, *args])
