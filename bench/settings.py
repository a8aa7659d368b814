"""How big a run is: the issue's figures by default, smaller on request.

Environment:
- `BENCH_QUICK=1`: every stage, small (a few minutes in all): a smoke test;
  the history stage seeds 100,000 records instead of 1,000,000 and the soak
  lasts 1 minute instead of 5.
- `BENCH_STAGES`: only these stages, e.g. `history,soak` (default: all).
- the `cluster` stage: the platform (1 process per service) on a three-node
  RabbitMQ cluster of its own with quorum queues (bench/cluster.py; root or
  the rabbitmq user), next to `platform 1x` on the single broker.
- `BENCH_DURATION_S`: length of the offered-load stage (default 60 s).
- `BENCH_REPORTS`: reports in the throughput stage (default 2000).
- `BENCH_RATE`: offered load in reports per second (default 50).
- `BENCH_IN_FLIGHT`: concurrent calls in the closed-loop stages (default 32).
- `BENCH_SCALES`: processes per service to measure, e.g. `1,2` (the default).
- `BENCH_RESULTS`: where to write the results (default `bench/results.json`
  for a full run, `bench/results.<mode>.json` otherwise, so a smoke run never
  overwrites the figures the README quotes).
- `BENCH_PROFILE=1`: sample every service process with py-spy during the
  throughput stage (needs `py-spy` on PATH or in the venv) and keep the
  profiles under `bench/profiles/`.
- `BENCH_LOG_LEVEL`: the services' `LOG_LEVEL` (default INFO, as deployed).
- `BENCH_QUIET_WAIT_S`: before each stage, wait up to this long for the
  machine to be idle (default 120 s; 0 skips): a test suite running alongside
  would otherwise be measured too. The results record the wait and any CPU
  other processes used during each stage.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent

# The fixed points; the targets are figures to report, not assertions.
TARGET_PLATFORM_TO_BARE = 0.50
TARGET_P99_MS = 50.0
TARGET_RSS_MB = 120.0
TARGET_FLOOR_TO_BARE_ROUND_TRIP = 4.0  # p50 at the light load ÷ one bare sequential call
TARGET_WORKER_RUNS = 4.0  # per incident: intake's RPC, dispatch, escalation, assessment
TARGET_PG_TRANSACTIONS = 6.0  # per incident, over the four databases


@dataclass(frozen=True)
class Settings:
    mode: str
    in_flight: int = 32
    bare_sequential_calls: int = 3000
    bare_concurrent_calls: int = 10000
    broker_messages_single: int = 10000
    broker_messages_concurrent: int = 30000
    warmup_reports: int = 200
    throughput_reports: int = 2000
    offered_rate: float = 50.0
    duration_s: float = 60.0
    # the latency floor: the same path at a tenth of the load
    light_rate: float = 5.0
    light_duration_s: float = 20.0
    scales: tuple[int, ...] = (1, 2)
    # No closed-loop stage issues calls for longer than this, whatever its count.
    stage_time_cap_s: float = 60.0
    # How long after the last call a stage waits for the events to flow through.
    drain_timeout_s: float = 60.0
    log_level: str = "INFO"
    quiet_wait_s: float = 120.0
    profile: bool = False
    # issue 16: records seeded for the history stage, on SQLite too; the soak
    history_records: int = 1_000_000
    history_sqlite: bool = True
    soak_s: float = 300.0
    soak_sample_s: float = 30.0
    soak_rate: float = 15.0
    stages: tuple[str, ...] = ("limits", "platform", "cluster", "history", "soak")
    overrides: dict[str, str] = field(default_factory=dict)
    results_path: Path = BENCH_DIR / "results.json"


def _positive(name: str, cast: type, raw: str) -> int | float:
    try:
        value = cast(raw)
    except ValueError:
        raise SystemExit(f"bench: {name}={raw!r} is not a number") from None
    if value <= 0:
        raise SystemExit(f"bench: {name} must be positive")
    return value


def from_env(environ: os._Environ | dict[str, str] = os.environ) -> Settings:
    """The run's settings; any override makes it a non-`full` run."""
    quick = environ.get("BENCH_QUICK", "") not in ("", "0")
    values: dict = {}
    if quick:
        values.update(
            bare_sequential_calls=200,
            bare_concurrent_calls=1000,
            broker_messages_single=500,
            broker_messages_concurrent=2000,
            warmup_reports=32,
            throughput_reports=200,
            duration_s=8.0,
            light_duration_s=4.0,
            stage_time_cap_s=15.0,
            drain_timeout_s=30.0,
            quiet_wait_s=5.0,
            history_records=100_000,
            soak_s=60.0,
            soak_sample_s=10.0,
        )
    if environ.get("BENCH_QUIET_WAIT_S"):
        try:
            values["quiet_wait_s"] = max(0.0, float(environ["BENCH_QUIET_WAIT_S"]))
        except ValueError:
            raise SystemExit("bench: BENCH_QUIET_WAIT_S is a number of seconds") from None
    overrides = {
        name: environ[name]
        for name in (
            "BENCH_DURATION_S",
            "BENCH_REPORTS",
            "BENCH_RATE",
            "BENCH_IN_FLIGHT",
            "BENCH_SCALES",
        )
        if environ.get(name)
    }
    if "BENCH_DURATION_S" in overrides:
        values["duration_s"] = _positive("BENCH_DURATION_S", float, overrides["BENCH_DURATION_S"])
    if "BENCH_REPORTS" in overrides:
        values["throughput_reports"] = _positive("BENCH_REPORTS", int, overrides["BENCH_REPORTS"])
    if "BENCH_RATE" in overrides:
        values["offered_rate"] = _positive("BENCH_RATE", float, overrides["BENCH_RATE"])
        values["light_rate"] = values["offered_rate"] / 10
    if "BENCH_IN_FLIGHT" in overrides:
        values["in_flight"] = _positive("BENCH_IN_FLIGHT", int, overrides["BENCH_IN_FLIGHT"])
    if "BENCH_SCALES" in overrides:
        try:
            scales = tuple(int(s) for s in overrides["BENCH_SCALES"].split(",") if s.strip())
        except ValueError:
            raise SystemExit("bench: BENCH_SCALES is a comma-separated list of integers") from None
        if not scales or any(s < 1 or s > 4 for s in scales):
            raise SystemExit("bench: BENCH_SCALES takes 1 to 4 processes per service")
        values["scales"] = scales
    if environ.get("BENCH_STAGES"):
        overrides["BENCH_STAGES"] = environ["BENCH_STAGES"]
        values["stages"] = tuple(s.strip() for s in environ["BENCH_STAGES"].split(",") if s.strip())
    mode = "quick" if quick else ("custom" if overrides else "full")
    default_path = BENCH_DIR / ("results.json" if mode == "full" else f"results.{mode}.json")
    return Settings(
        mode=mode,
        log_level=environ.get("BENCH_LOG_LEVEL", "INFO"),
        profile=environ.get("BENCH_PROFILE", "") not in ("", "0"),
        overrides=overrides,
        results_path=Path(environ.get("BENCH_RESULTS") or default_path),
        **values,
    )
