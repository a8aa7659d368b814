"""Centers ranked and the notice (通报), against the real RabbitMQ and both databases.

Escalation's reporting events and dispatch's order events are published as
those services would (nameko's standalone dispatcher), shuffled and
duplicated, to two assessment instances; `rank_centers` must count each duty
against the town that owed it and equal the ranking computed in memory from
the same events (scoring.py, reporting.py, ranking.py), also after the events
come again. The notice comes back over RPC as a PDF whose text names the
center and every department it ranks, and as HTML.
"""

from __future__ import annotations

import base64
import random
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta

import eventlet
import pytest
from nameko.exceptions import IncorrectSignature, RemoteError
from nameko.standalone.events import event_dispatcher

from services import client
from services.assessment import ranking
from services.assessment.reporting import (
    duties_answered,
    duty_overdue,
    merge_duty,
    reporting_counts,
)
from services.assessment.scoring import assess
from services.assessment.service import AssessmentService
from shared.events import load_event
from shared.network import load_network
from tests.conftest import make_token, wait_for
from tests.integration.test_assessment import assessment_idle
from tests.unit.assessment.factory import (
    order_story,
    rating,
    replay,
    report_filed,
    report_overdue,
    worked_example,
)

pytestmark = pytest.mark.integration

COUNTY = "511123"
DONGSHAN, YUJIN, XIAOGU, QINGXI = "511123101", "511123102", "511123103", "511123104"
MUXI = "511129101"  # a town of the other county
NETWORK = load_network()
TOWNS = [DONGSHAN, YUJIN, XIAOGU, QINGXI]


def order_events(base: datetime) -> list[tuple]:
    """Dongshan: the scoring docstring's example; Yujin: one order on time,
    one overdue and urged; the county's own water company: one overdue order."""
    events = worked_example(DONGSHAN, base)
    events += order_story(
        "yj-1", "yj-i1", "yujin-water", base, center=YUJIN, accept=60, arrive=900, complete=1800
    )
    events.append(rating("yj-i1", "basically_satisfied", base + timedelta(days=1)))
    events += order_story(
        "yj-2",
        "yj-i2",
        "yujin-power",
        base + timedelta(hours=2),
        center=YUJIN,
        overdue=["accept", "arrive"],
        urges=[400, 2000],
    )
    events += order_story(
        "qw-1", "qw-i1", "qianwei-water", base, center=COUNTY, accept=900, overdue=["accept"]
    )
    return events


def report_events(base: datetime) -> list[tuple]:
    """Duties: Dongshan 3 due in the window, 2 late (one filed late after it
    was announced overdue, one never filed), plus one due long before the
    window; Yujin 1 due, filed late; Xiaogu 1 due, on time, and a progress
    report (no duty); Qingxi none; a town of another county one."""
    due = base + timedelta(minutes=30)
    return [
        report_filed("ds-i1", DONGSHAN, "first", due - timedelta(minutes=5), [("first", due)]),
        report_overdue("ds-i1", DONGSHAN, "final", due + timedelta(days=1)),
        report_filed(
            "ds-i1",
            DONGSHAN,
            "final",
            due + timedelta(days=1, hours=2),
            [("final", due + timedelta(days=1))],
        ),  # fmt: skip
        report_overdue("ds-i2", DONGSHAN, "first", due),
        report_overdue("ds-old", DONGSHAN, "first", base - timedelta(days=40)),
        report_filed("yj-i1", YUJIN, "first", due + timedelta(minutes=1), [("first", due)]),
        report_filed("xg-i1", XIAOGU, "first", due, [("first", due)]),
        report_filed("xg-i1", XIAOGU, "progress", due + timedelta(hours=1)),
        report_overdue("mx-i1", MUXI, "first", due),
    ]


def expected_ranking(events, since: datetime, until: datetime) -> list[dict]:
    ledger = replay(events)
    duties: dict = {}
    for source, event_type, payload in events:
        if event_type == "report_overdue":
            found = [duty_overdue(load_event(source, event_type, payload))]
        elif event_type == "report_filed":
            found = duties_answered(load_event(source, event_type, payload))
        else:
            continue
        for duty in found:
            duties[duty.key] = merge_duty(duties.get(duty.key), duty)
    reports = reporting_counts(duties.values(), since, until)
    given = []
    for town in TOWNS:
        totals = assess(
            town,
            [d.code for d in NETWORK.departments_of(town)],
            ledger.records(),
            ratings={i: r.rating for i, r in ledger.ratings.items()},
            moves=ledger.moves.values(),
            weights=NETWORK.weights,
            since=since,
            until=until,
        )["totals"]
        due, late = reports.get(town, (0, 0))
        given.append(
            {
                "center": town,
                "name": NETWORK.centers[town].name,
                "units_score": totals["score"],
                "orders": totals["orders"],
                "satisfaction_rate": totals["satisfaction_rate"],
                "returns": totals["returns"],
                "urges": totals["urges"],
                "overdue_orders": totals["overdue"],
                "reports_due": due,
                "reports_late": late,
            }
        )
    return ranking.rank_centers(given)


def publish(amqp_uri: str, events, seed: int) -> None:
    shuffle = random.Random(seed)
    delivered = events + shuffle.sample(events, len(events) // 2)
    shuffle.shuffle(delivered)
    dispatch = event_dispatcher({"AMQP_URI": amqp_uri})
    for source, event_type, payload in delivered:
        dispatch(source, event_type, payload)


@pytest.fixture
def window():
    now = datetime.now(UTC)
    return now - timedelta(days=10), now + timedelta(hours=1)


@pytest.fixture
def month_of_work(run_services, nameko_config, vhost, window):
    """Two assessment instances that have applied the story's events."""
    run_services(AssessmentService)
    run_services(AssessmentService)
    base = (datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0)
    events = order_events(base) + report_events(base)
    publish(nameko_config["AMQP_URI"], events, seed=7)
    return events


def test_reporting_duties_count_against_the_town_that_owed_them_and_survive_redelivery(
    month_of_work, rpc, nameko_config, vhost, window
):
    since, until = window
    want = expected_ranking(month_of_work, since, until)
    args = (COUNTY, since.isoformat(), until.isoformat())
    wait_for(lambda: rpc.assessment.rank_centers(*args) == want, timeout=30, message="ranking")
    wait_for(lambda: assessment_idle(vhost), timeout=30, message="assessment queues drained")
    by_town = {row["center"]: row for row in rpc.assessment.rank_centers(*args)}
    assert list(by_town) == [row["center"] for row in want]
    assert (by_town[DONGSHAN]["reports_due"], by_town[DONGSHAN]["reports_late"]) == (3, 2)
    assert (by_town[YUJIN]["reports_due"], by_town[YUJIN]["reports_late"]) == (1, 1)
    assert (by_town[XIAOGU]["reports_due"], by_town[XIAOGU]["reports_late"]) == (1, 0)
    assert (by_town[QINGXI]["reports_due"], by_town[QINGXI]["score"]) == (0, None)
    assert by_town[QINGXI]["rank"] == 4
    assert by_town[YUJIN]["orders"] == 2 and by_town[YUJIN]["overdue_orders"] == 1
    assert by_town[YUJIN]["urges"] == 2
    assert by_town[DONGSHAN]["orders"] == 14 and by_town[DONGSHAN]["name"] == "东山镇"
    # the same events again, and the same accounts under new event ids
    # (escalation retrying), in another order: nothing changes
    reports = [e for e in month_of_work if e[1].startswith("report_")]
    again = [(s, t, {**p, "event_id": p["event_id"] + "-2"}) for s, t, p in reports]
    publish(nameko_config["AMQP_URI"], month_of_work + again, seed=8)
    # the management API's queue depths are sampled every 5 s: wait out one
    # sample so "idle" is not the depth from before the publishing
    eventlet.sleep(6)
    wait_for(lambda: assessment_idle(vhost), timeout=30, message="redelivered events applied")
    assert rpc.assessment.rank_centers(*args) == want
    # the other county counts its own town's duty
    [muxi] = [r for r in rpc.assessment.rank_centers("511129", *args[1:]) if r["center"] == MUXI]
    assert (muxi["reports_due"], muxi["reports_late"]) == (1, 1)


def test_rank_centers_rights_like_scores(run_services, rpc_as):
    run_services(AssessmentService)
    good = ("2026-11-01T00:00:00+08:00", "2026-12-01T00:00:00+08:00")
    allowed = [
        ("center", {"center": COUNTY}),
        ("auditor", {"center": COUNTY}),
        ("center", {"center": "511100"}),  # the city: the county is in its area
        ("admin", {}),
    ]
    for kind, claims in allowed:
        with rpc_as(kind, **claims) as rpc:
            rows = rpc.assessment.rank_centers(COUNTY, *good)
        assert [r["center"] for r in rows] == TOWNS  # nothing counted: network order
    refused = [
        ("center", {"center": DONGSHAN}),  # a town, asking for its county
        ("auditor", {"center": DONGSHAN}),
        ("center", {"center": "511129"}),  # the other county
        ("department", {"center": COUNTY, "department": "qianwei-water"}),
        ("platform", {"source_systems": ["12345"]}),
    ]
    for kind, claims in refused:
        with rpc_as(kind, **claims) as rpc, pytest.raises(RemoteError) as error:
            rpc.assessment.rank_centers(COUNTY, *good)
        assert error.value.exc_type == "Forbidden", (kind, claims)
    with rpc_as("center", center=DONGSHAN) as rpc:
        assert rpc.assessment.rank_centers(DONGSHAN, *good) == []  # nothing below a town
        with pytest.raises(RemoteError) as error:
            rpc.assessment.notice(COUNTY, *good, "html")
        assert error.value.exc_type == "Forbidden"


def test_bad_arguments_are_a_field_map(run_services, rpc):
    run_services(AssessmentService)
    good = ("2026-11-01T00:00:00+08:00", "2026-12-01T00:00:00+08:00")
    for args, fields in (
        (("nowhere", *good), ["center"]),
        ((None, *good), ["center"]),
        ((COUNTY, "2026-11-01", good[1]), ["since"]),
        ((COUNTY, good[0], "next month"), ["until"]),
        ((COUNTY, good[1], good[0]), ["until"]),
        ((COUNTY, 20261101, None), ["since", "until"]),
    ):
        for call in (rpc.assessment.rank_centers, rpc.assessment.notice):
            with pytest.raises(RemoteError) as error:
                call(*args)
            assert error.value.exc_type == "ValidationError", (call, args)
            assert all(f'"{field}"' in error.value.value for field in fields), error.value.value
    with pytest.raises(RemoteError) as error:
        rpc.assessment.notice(COUNTY, "yesterday", good[1], "docx")
    assert error.value.exc_type == "ValidationError"
    assert '"format"' in error.value.value and '"since"' in error.value.value
    with pytest.raises(IncorrectSignature):
        rpc.assessment.rank_centers(COUNTY, *good, "extra")


def pdf_text(content: bytes, tmp_path) -> str:
    assert shutil.which("pdftotext"), "poppler-utils: scripts/prepare-services installs it"
    path = tmp_path / "notice.pdf"
    path.write_bytes(content)
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True
    ).stdout
    return re.sub(r"\s+", "", text)


def test_the_notice_over_rpc_is_a_pdf_naming_the_center_and_every_ranked_department(
    month_of_work, rpc, vhost, window, tmp_path
):
    since, until = window
    args = (COUNTY, since.isoformat(), until.isoformat())
    want = expected_ranking(month_of_work, since, until)
    wait_for(lambda: rpc.assessment.rank_centers(*args) == want, timeout=30, message="ranking")
    answer = rpc.assessment.notice(*args, "pdf")
    assert answer["content_type"] == "application/pdf"
    assert re.fullmatch(
        r"notice-511123-\d{4}-\d{2}-\d{2}-\d{4}-\d{2}-\d{2}\.pdf", answer["filename"]
    )
    content = base64.b64decode(answer["content_base64"])
    assert content.startswith(b"%PDF-")
    text = pdf_text(content, tmp_path)
    assert "犍为县社会应急联动工作通报" in text
    report = rpc.assessment.report(*args)
    for row in report["rows"]:
        assert re.sub(r"\s+", "", row["name"]) in text, row["name"]
    for town in TOWNS:
        assert NETWORK.centers[town].name in text
    # the worst overdue cases: the county's own and Yujin's, under their units' names
    assert "犍为县自来水公司" in text and "玉津镇供电所" in text

    html = rpc.assessment.notice(*args, "html")
    assert html["content_type"] == "text/html; charset=utf-8"
    assert html["filename"] == answer["filename"].replace(".pdf", ".html")
    page = base64.b64decode(html["content_base64"]).decode("utf-8")
    assert "<h1>犍为县社会应急联动工作通报" in page
    assert "yj-2" in page and "qw-1" in page  # the overdue orders listed


def test_the_client_writes_a_month_notice_to_a_file(
    run_services, nameko_config, tmp_path, monkeypatch, capsys
):
    run_services(AssessmentService)
    monkeypatch.setenv("AMQP_URI", nameko_config["AMQP_URI"])
    token = make_token("center", center=COUNTY)
    out = tmp_path / "tongbao.pdf"
    assert client.main(["--token", token, "notice", COUNTY, "2026-11", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    text = pdf_text(out.read_bytes(), tmp_path)
    assert "犍为县社会应急联动工作通报（2026年11月）" in text
    monkeypatch.chdir(tmp_path)
    assert client.main(["--token", token, "notice", COUNTY, "2026-11", "--format", "html"]) == 0
    written = tmp_path / "notice-511123-2026-11.html"
    assert capsys.readouterr().out.strip() == "notice-511123-2026-11.html"
    assert "统计时段：2026年11月1日至2026年11月30日" in written.read_text(encoding="utf-8")
    assert client.main(["--token", token, "rank-centers", COUNTY, "2026-11"]) == 0
    table = capsys.readouterr().out
    assert all(NETWORK.centers[town].name in table for town in TOWNS)
    town_token = make_token("center", center=DONGSHAN)
    assert client.main(["--token", town_token, "notice", COUNTY, "2026-11"]) == 2
    assert "Forbidden" in capsys.readouterr().err


def test_an_instance_laying_out_a_pdf_still_answers_other_calls(run_services, rpc, rpc_as):
    """WeasyPrint is CPU-bound for a second or more: rendered on the hub, it
    would hold every other worker of the instance until it is done."""
    run_services(AssessmentService)
    good = ("2026-11-01T00:00:00+08:00", "2026-12-01T00:00:00+08:00")
    rpc.assessment.notice(COUNTY, *good, "pdf")  # imports and font caches warmed
    finished = {}

    def notice() -> None:
        with rpc_as("admin") as own:
            own.assessment.notice(COUNTY, *good, "pdf")
        finished["notice"] = time.monotonic()

    rendering = eventlet.spawn(notice)
    eventlet.sleep(0.3)  # the call has reached the service
    answered = []
    for _ in range(3):
        rpc.assessment.scores(DONGSHAN, *good)
        answered.append(time.monotonic())
    rendering.wait()
    assert answered[-1] < finished["notice"], "scores waited for the PDF"
