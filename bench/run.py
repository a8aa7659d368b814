"""The run: limits, then the platform at each scale, then the table and the file.

Everything borrowed is given back in `finally`: service processes stopped
(SIGTERM, then SIGKILL after 30 s), databases dropped, the vhost deleted. A
run that fails keeps its service logs and writes what it measured to
`bench/results.failed.json`, never over the figures of the last good run.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import cluster, history, infra, limits, report
from bench.platform_run import FLOW_EVENTS, Declared, declared_entrypoints, run_platform
from bench.settings import BENCH_DIR, Settings, from_env
from bench.spy import PySpy
from shared.config import SERVICES

_T0 = time.monotonic()


def say(message: str) -> None:
    print(f"bench [{time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def _terminate(signum, frame):
    # SIGTERM unwinds like Ctrl-C, so every finally block gives back what it took.
    raise SystemExit(128 + signum)


def _settings_view(settings: Settings) -> dict[str, Any]:
    view = asdict(settings)
    view["results_path"] = str(settings.results_path)
    view["scales"] = list(settings.scales)
    return view


def _describe_services(results: dict[str, Any]) -> dict[str, Declared]:
    declared = declared_entrypoints()
    results["services"] = {
        name: {
            "rpc": d.rpc,
            "handlers": [f"{s}.{t} → {m}" for s, t, m in d.handlers],
            "waited_for": bool(d.flow_handlers),
        }
        for name, d in declared.items()
    }
    events = ", ".join(f"{s}.{t}" for s, t in sorted(FLOW_EVENTS))
    for name, d in declared.items():
        if not d.flow_handlers and name != "intake":
            results["notes"].append(
                f"{name} declares no handler for {events} in this tree: nothing of it is "
                "waited for, and its subscriber queues fill unconsumed during the run"
            )
    if not declared["assessment"].flow_handlers:
        results["notes"].append(
            "assessment records are not measured: the assessment service has no event "
            "handlers yet; 'fully flowed' means dispatched orders (plus any other consumer)"
        )
    return declared


def quiet(settings: Settings, results: dict[str, Any], stage: str, copies: int = 0) -> None:
    """Let other work on the machine finish before a stage; note it if it does not."""
    if settings.quiet_wait_s <= 0:
        return
    # every service process may hold a connection per worker, plus its relay's
    workers = int(os.environ.get("LINKAGE_MAX_WORKERS", "10"))
    needed = copies * len(SERVICES) * (workers + 1) + 8 if copies else 0
    state = infra.wait_quiet(settings.quiet_wait_s, pg_connections=needed)
    results["quiet"][stage] = state
    if state["waited_s"] > 3:
        say(f"waited {state['waited_s']:.0f}s for the machine to be idle before {stage}")
    if not state["quiet"]:
        free = state.get("pg_connections_free")
        results["notes"].append(
            f"{stage}: the machine was still busy ({state['busy_cores']} cores"
            + (f"; PostgreSQL connections: {free} free, {needed} wanted" if needed else "")
            + f") after {state['waited_s']:.0f}s of waiting; its figures may be low"
        )


def _note_interference(results: dict[str, Any]) -> None:
    """Name every stage during which other processes took a noticeable share."""

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if "other_cores" in node and node["other_cores"] > 0.2:
                results["notes"].append(
                    f"{path}: other processes used {node['other_cores']:.2f} cores meanwhile"
                )
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else key)

    walk(results.get("limits"), "limits")
    walk(results.get("platform"), "platform")
    walk(results.get("cluster"), "cluster")


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    settings = from_env()
    run_id = infra.new_run_id()
    vhost = infra.Vhost(f"bench-{run_id}")
    log_dir = Path(tempfile.mkdtemp(prefix=f"linkage-bench-{run_id}-"))
    results: dict[str, Any] = {
        "schema": 1,
        "mode": settings.mode,
        "run_id": run_id,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": _settings_view(settings),
        "notes": [],
    }
    if settings.mode != "full":
        results["notes"].append(
            f"{settings.mode} run (overrides: {settings.overrides or 'BENCH_QUICK'}): "
            "figures are not comparable with a full run"
        )
    ok = False
    vhost_created = False
    try:
        say(f"run {run_id} ({settings.mode}); service logs in {log_dir}")
        infra.wait_available()
        stale = infra.reap_stale_vhosts() + infra.reap_stale_databases()
        if stale:
            say(f"removed what killed runs left behind: {', '.join(stale)}")
        results["machine"] = infra.machine()
        declared = _describe_services(results)
        vhost.create()
        vhost_created = True
        amqp_uri = vhost.amqp_uri
        results["limits"] = {}
        results["quiet"] = {}
        results["platform"] = {}
        failures = []

        def stage(name: str, into: dict[str, Any], key: str, measure, before) -> None:
            # A stage that fails is tried once more (on a shared machine a test
            # may restart the broker or PostgreSQL under it); if it fails again
            # it is recorded and the run goes on: the other figures still stand,
            # and the file says what is missing and why.
            for attempt in (1, 2):
                before()
                pg_before = infra.postgres_started_at()
                try:
                    into[key] = measure()
                except Exception as exc:
                    into[key] = {"error": f"{type(exc).__name__}: {exc}"}
                if "error" not in into[key]:
                    return
                error = into[key]["error"].splitlines()[0]
                pg_after = infra.postgres_started_at()
                if pg_after != pg_before:
                    error += f" (PostgreSQL was restarted during the stage, at {pg_after})"
                results["notes"].append(f"{name}, attempt {attempt}: {error}")
                say(f"{name} failed (attempt {attempt}): {error}")
            failures.append(name)

        def before(quiet_key: str, message: str, copies: int = 0):
            def prepare() -> None:
                quiet(settings, results, quiet_key, copies)
                say(message)

            return prepare

        wanted = settings.stages
        if "limits" in wanted:
            stage(
                "bare nameko",
                results["limits"],
                "bare_nameko",
                lambda: limits.bare_nameko(amqp_uri, settings, log_dir),
                before("bare_nameko", "limit (a): bare nameko, sequential and in flight"),
            )
            stage(
                "broker",
                results["limits"],
                "broker",
                lambda: limits.broker(amqp_uri, settings),
                before("broker", "limit (b): broker, persistent + confirms + acks"),
            )
        for copies in settings.scales if "platform" in wanted else ():
            profiler = PySpy(BENCH_DIR / "profiles" / f"{copies}x") if settings.profile else None
            stage(
                f"platform {copies}x",
                results["platform"],
                f"{copies}x",
                lambda copies=copies, profiler=profiler: run_platform(
                    run_id, amqp_uri, copies, settings, log_dir, declared, profiler
                ),
                before(
                    f"platform_{copies}x",
                    f"platform, {copies} process(es) per service: start, warm up, "
                    f"{settings.throughput_reports} reports {settings.in_flight} in flight, "
                    f"then {settings.offered_rate:g}/s for {settings.duration_s:g}s",
                    copies,
                ),
            )
        if "cluster" in wanted:
            stage(
                "cluster",
                results,
                "cluster",
                lambda: cluster.run_cluster(run_id, settings, log_dir, declared),
                before(
                    "cluster",
                    "platform, 1 process per service, on a three-node RabbitMQ cluster "
                    "with quorum queues",
                    1,
                ),
            )
        if "history" in wanted:
            stage(
                "history",
                results,
                "history",
                lambda: history.history(settings, run_id),
                before(
                    "history",
                    f"history: assessment at {history.SMALL} and "
                    f"{settings.history_records} records",
                ),
            )
        if "soak" in wanted:
            stage(
                "soak",
                results,
                "soak",
                lambda: history.soak(run_id, amqp_uri, settings, log_dir, declared),
                before(
                    "soak",
                    f"soak: {settings.soak_rate:g} reports/s for {settings.soak_s:g}s, "
                    "resident memory sampled",
                    1,
                ),
            )
        if settings.profile:
            results["notes"].append(
                "profiled run: py-spy sampled the services during the throughput stage"
            )
        if failures:
            raise RuntimeError(f"stages failed: {', '.join(failures)}")
        ok = True
    except (KeyboardInterrupt, SystemExit) as exc:
        results["error"] = f"interrupted ({type(exc).__name__})"
        say("interrupted: cleaning up")
    except Exception as exc:
        results["error"] = f"{type(exc).__name__}: {exc}"
        say(f"failed: {results['error']}")
    finally:
        if vhost_created:
            try:
                vhost.delete()
            except Exception as exc:  # report, and let the next run reap it
                say(f"could not delete vhost {vhost.name}: {exc}")
        results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        results["elapsed_s"] = round(time.monotonic() - _T0, 1)
    _note_interference(results)
    report.derive(results)
    path = settings.results_path if ok else BENCH_DIR / "results.failed.json"
    report.write(report.to_json(results), path)
    if "machine" in results:
        print(report.render(results))
    say(f"results written to {path}")
    if ok:
        shutil.rmtree(log_dir, ignore_errors=True)
    else:
        say(f"service logs kept in {log_dir}")
    return 0 if ok else 1
