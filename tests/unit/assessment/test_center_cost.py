"""Centers ranked and the notice cost the same at any history: over whole
local days they read the day counts, the window's duties and the window's
overdue orders, with the same few statements at 10 and 1,000 records."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from services.assessment import store
from services.assessment.reporting import ReportDuty
from tests.unit.assessment.test_history import NOW, TZ, seed, statements

COUNTY = "511123"
TOWNS = ["511123101", "511123102", "511123103", "511123104"]


def add_duties(database, n: int, start: datetime) -> None:
    """`n` duties of the county's towns, one an hour from `start`, every third late."""
    with database.transaction() as tx:
        for k in range(n):
            due = start + timedelta(hours=k)
            store.add_duty(
                tx, ReportDuty(f"d{start:%j}-{k}", "first", TOWNS[k % 4], due, k % 3 == 0)
            )


def sent_by(engine, call) -> list[str]:
    with statements(engine) as sent:
        call()
    return [s for s in sent if not s.startswith("BEGIN")]  # SQLite's own


def test_rank_centers_and_the_notice_issue_the_same_statements_at_10_and_1000_records(
    assessment,
):
    database, service = assessment.database, assessment.service
    midnight = datetime.combine((NOW - timedelta(days=40)).astimezone(TZ).date(), time(), TZ)
    window = (midnight.isoformat(), (midnight + timedelta(days=41)).isoformat())

    def rank():
        return service.rank_centers(COUNTY, *window)

    def notice():
        return service.notice(COUNTY, *window, "html")

    seed(database, 10, seed=21)
    add_duties(database, 10, NOW - timedelta(days=5))
    small = [sent_by(database.engine, rank), sent_by(database.engine, notice)]
    before = rank()
    seed(database, 990, seed=22)
    add_duties(database, 990, NOW - timedelta(days=400))  # history: outside the window
    large = [sent_by(database.engine, rank), sent_by(database.engine, notice)]

    assert [len(sent) for sent in small] == [len(sent) for sent in large]
    ranking, notice_reads = large
    # one day-counts read per town, one of the duties; no record read
    assert len(ranking) == len(TOWNS) + 1
    assert not any("order_records" in s for s in ranking)
    assert sum("report_duties" in s for s in ranking) == 1
    # the notice's only read of records: the worst cases, by the window
    record_reads = [s for s in notice_reads if "order_records" in s]
    assert len(record_reads) == 1 and "dispatched_at >=" in record_reads[0]
    # the old duties count nowhere: the ranking's reports are the same
    after = {row["center"]: (row["reports_due"], row["reports_late"]) for row in rank()}
    assert after == {row["center"]: (row["reports_due"], row["reports_late"]) for row in before}
    assert sum(due for due, _ in after.values()) == 10
