"""The dashboards' gauges: scores and satisfaction over the trailing 30 local
days, counted by one instance per interval and shown by all (README, Metrics)."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.assessment import store
from services.assessment.metrics import publish
from services.assessment.scoring import gauge_values, trailing_days
from shared.db import Store
from shared.network import Network

GAUGE_REFRESH_S = 15.0
GAUGE_DAYS = 30


def refresh(db: Store, network: Network, interval_s: float, now: datetime) -> None:
    """Count the gauges if no instance did within the interval (one aggregate
    over the day counts) and save them, else read the saved ones; publish
    either, so every instance reports the same and the cost does not grow
    with instances or history."""
    with db.transaction() as tx:
        # a little under the interval: the next tick of whoever refreshed wins
        if store.claim_refresh(tx, now, timedelta(seconds=0.9 * interval_s)):
            since, until = trailing_days(now, GAUGE_DAYS, network.timezone)
            counted = store.window_counts(tx.session, network.timezone, since, until)
            values = gauge_values(counted, network.departments_of, network.weights)
            store.save_gauges(tx, values)
        else:
            values = store.saved_gauges(tx.session)
    publish(
        {(v["center"], v["department"]): v["score"] for v in values if v["score"] is not None},
        {
            (v["center"], v["department"]): v["satisfaction"]
            for v in values
            if v["satisfaction"] is not None
        },
    )
