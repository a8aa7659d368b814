"""Issue 16's stages: assessment against a long history, and a soak.

- history: seed order records with ratings through assessment's own store
  (`store.seed_records`, which keeps the day counts), then time `scores` for
  a 30-day window and one gauge refresh at a thousand records and at the
  full size, on PostgreSQL and on SQLite. Target: the large ÷ the small at
  most 5 ×. A 30-day window of whole local days is read from the day counts
  alone; a window with partial edge days (`now - 30 days` to `now`) also
  counts those days' records, and is reported beside it.
- soak: the platform (one process per service) under a steady load, each
  service's resident memory sampled after the warm-up. Target: no service
  grows more than 5 MB.
Targets are reported, never asserted.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import delete

from bench import infra
from bench.platform_run import Declared, Platform
from bench.settings import Settings
from services.assessment import store
from services.assessment.models import Base, outbox, processed_events
from services.assessment.scoring import trailing_days
from services.assessment.service import AssessmentService
from shared import migrations
from shared.auth import Caller
from shared.db import Database, Store
from shared.network import load_network

TARGET_HISTORY_RATIO = 5.0
TARGET_SOAK_GROWTH_MB = 5.0
SMALL = 1000
REPEATS = 21


def _worker(url: str):
    """An assessment worker (nameko's worker_factory) on `url`, as the service runs."""
    from nameko.testing.services import worker_factory

    database = Database(Base.metadata, outbox, processed_events)
    database.container = SimpleNamespace(
        service_name="assessment", config={"DATABASE_URLS": {"assessment": url}}
    )
    database.setup()
    database.start()
    admin = Caller(sub="bench", kind="admin")
    network = load_network()
    service = worker_factory(
        AssessmentService, db=Store(database), network=network, auth=lambda: admin
    )
    service.config = {"ASSESSMENT_GAUGES_S": 15}
    return database, service, network


def _median_ms(call, repeats: int = REPEATS) -> float:
    call()  # compiled and cached once, as in a running service
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 3)


def _timings(database, service, network) -> dict[str, float]:
    now = datetime.now(UTC)
    center = max(network.centers, key=lambda c: len(network.departments_of(c)))
    whole = [t.isoformat() for t in trailing_days(now, 30, network.timezone)]
    edges = [(now - timedelta(days=30)).isoformat(), now.isoformat()]

    def refresh() -> None:
        with database.transaction() as tx:  # forget the last one: this refresh counts
            tx.session.execute(delete(store.refreshes))
        service.refresh_gauges()

    return {
        "scores_30_days_ms": _median_ms(lambda: service.scores(center, *whole)),
        "scores_with_edge_days_ms": _median_ms(lambda: service.scores(center, *edges)),
        "gauge_refresh_ms": _median_ms(refresh),
    }


def _one_backend(url: str, records: int) -> dict[str, Any]:
    migrations.upgrade("assessment", url)
    database, service, network = _worker(url)
    try:
        departments = [(d.center, d.code) for d in network.departments.values()]
        now = datetime.now(UTC)
        seeded = {
            "departments": departments,
            "since": now - timedelta(days=29, hours=12),
            "until": now,
            "timezone": network.timezone,
        }
        store.seed_records(database.engine, SMALL, seed=1, **seeded)
        small = _timings(database, service, network)
        start = time.perf_counter()
        store.seed_records(database.engine, records - SMALL, seed=2, **seeded)
        seed_s = round(time.perf_counter() - start, 1)
        large = _timings(database, service, network)
    finally:
        database.stop()
    return {
        "records": {"small": SMALL, "large": records},
        "seed_s": seed_s,
        "small": small,
        "large": large,
        "ratio": {key: round(large[key] / small[key], 2) for key in small},
    }


def history(settings: Settings, run_id: str) -> dict[str, Any]:
    """Both backends, each in a database of its own, dropped afterwards."""
    result: dict[str, Any] = {}
    name = f"bench_{run_id.replace('-', '_')}_history"
    infra.create_databases([name])
    try:
        result["postgresql"] = _one_backend(infra.database_url(name), settings.history_records)
    except Exception as exc:
        result["postgresql"] = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        infra.drop_databases([name])
    if settings.history_sqlite:
        with tempfile.TemporaryDirectory(prefix="linkage-history-") as directory:
            url = f"sqlite:///{Path(directory) / 'assessment.db'}"
            try:
                result["sqlite"] = _one_backend(url, settings.history_records)
            except Exception as exc:
                result["sqlite"] = {"error": f"{type(exc).__name__}: {exc}"}
    return result


def soak(
    run_id: str,
    amqp_uri: str,
    settings: Settings,
    log_dir: Path,
    declared: dict[str, Declared],
) -> dict[str, Any]:
    """One process per service at `offered_rate` / 10 for `soak_s`, in slices,
    resident memory sampled after each; growth from the first sample."""
    platform = Platform(f"{run_id}-soak", amqp_uri, 1, settings, log_dir, declared)
    rate = settings.soak_rate
    slices = max(2, round(settings.soak_s / settings.soak_sample_s))
    result: dict[str, Any] = {"offered_per_s": rate, "duration_s": settings.soak_s, "samples": []}
    try:
        platform.start()
        result["warm_up"] = platform.warm_up()
        result["samples"].append({"t_s": 0.0, "rss_mb": _rss(platform)})
        started = time.monotonic()
        errors = 0
        for n in range(slices):
            # a stage name of its own per slice: intake refuses a report twice
            slice_result = platform.latency(rate, settings.soak_sample_s, f"soak{n}")
            errors += slice_result["errors"] + slice_result["without_order"]
            elapsed = round(time.monotonic() - started, 1)
            result["samples"].append({"t_s": elapsed, "rss_mb": _rss(platform)})
        result["errors"] = errors
        first, last = result["samples"][0]["rss_mb"], result["samples"][-1]["rss_mb"]
        result["growth_mb"] = {
            service: round(last[service] - first[service], 1) for service in first
        }
        result["peak_growth_mb"] = {
            service: round(max(s["rss_mb"][service] for s in result["samples"]) - first[service], 1)
            for service in first
        }
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        result["exit_codes"] = platform.stop()
    return result


def _rss(platform: Platform) -> dict[str, float]:
    """Summed over a service's processes (one each here)."""
    found: dict[str, float] = {}
    for process in platform.footprint():
        found[process["service"]] = found.get(process["service"], 0.0) + process["rss_mb"]
    return found


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for backend, figures in (results.get("history") or {}).items():
        for key, label in (
            ("scores_30_days_ms", "scores, 30 days"),
            ("gauge_refresh_ms", "gauge refresh"),
        ):
            value = (figures.get("ratio") or {}).get(key)
            found.append(
                {
                    "target": f"{label} at {figures.get('records', {}).get('large')} records "
                    f"≤ {TARGET_HISTORY_RATIO:g} × at {SMALL} ({backend})",
                    "stage": "history",
                    "value": value,
                    "limit": TARGET_HISTORY_RATIO,
                    "met": value is not None and value <= TARGET_HISTORY_RATIO,
                }
            )
    growth = (results.get("soak") or {}).get("growth_mb")
    for service, value in (growth or {}).items():
        found.append(
            {
                "target": f"{service} resident memory grows ≤ {TARGET_SOAK_GROWTH_MB:g} MB "
                "over the soak",
                "stage": "soak",
                "value": value,
                "limit": TARGET_SOAK_GROWTH_MB,
                "met": value <= TARGET_SOAK_GROWTH_MB,
            }
        )
    return found


def render(results: dict[str, Any]) -> list[str]:
    lines = []
    history_ = results.get("history")
    if history_:
        lines += ["", "Assessment history (medians; target: large ≤ 5 × small)"]
        for backend, f in history_.items():
            if "error" in f:
                lines.append(f"  {backend}: failed: {f['error']}")
                continue
            n = f["records"]
            for key in ("scores_30_days_ms", "scores_with_edge_days_ms", "gauge_refresh_ms"):
                lines.append(
                    f"  {backend:<11} {key:<26} {n['small']:>9} rec {f['small'][key]:>9.2f} ms"
                    f"   {n['large']:>9} rec {f['large'][key]:>9.2f} ms   × {f['ratio'][key]:g}"
                )
    soak_ = results.get("soak")
    if soak_:
        lines += ["", f"Soak ({soak_.get('duration_s')} s at {soak_.get('offered_per_s')}/s)"]
        if "error" in soak_:
            lines.append(f"  failed: {soak_['error']}")
        for service, value in (soak_.get("growth_mb") or {}).items():
            first = soak_["samples"][0]["rss_mb"][service]
            lines.append(
                f"  {service:<12} {first:>7.1f} MB after warm-up, grew {value:+.1f} MB "
                f"(peak {soak_['peak_growth_mb'][service]:+.1f}; "
                f"target ≤ {TARGET_SOAK_GROWTH_MB:g})"
            )
    return lines
