"""The results: ratios and targets computed from the figures, a table, a JSON file."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from bench.settings import (
    TARGET_FLOOR_TO_BARE_ROUND_TRIP,
    TARGET_P99_MS,
    TARGET_PG_TRANSACTIONS,
    TARGET_PLATFORM_TO_BARE,
    TARGET_RSS_MB,
    TARGET_WORKER_RUNS,
)


def _get(data: dict, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 4)


BARE_WORKERS_PER_CALL = 2  # bench.bare: the `ping` RPC and the `on_pinged` handler


def entrypoints_per_incident(stage: dict[str, Any]) -> float | None:
    work = _get(stage, "throughput", "work_per_incident") or {}
    runs = [v for k, v in work.items() if k.endswith("linkage_entrypoint_requests_total")]
    return round(sum(runs), 2) if runs else None


def pg_per_incident(stage: dict[str, Any], key: str) -> float | None:
    """Summed over the services' databases: transactions or sessions opened."""
    counters = _get(stage, "throughput", "pg_per_incident")
    if not counters:
        return None
    return round(sum(c[key] for c in counters.values()), 2)


def per_worker_run(stage: dict[str, Any], bare_calls_per_s: float | None) -> float | None:
    """Worker runs per second of the platform ÷ those of bare nameko."""
    incidents = _get(stage, "throughput", "incidents_per_s")
    workers = entrypoints_per_incident(stage)
    if not incidents or not workers or not bare_calls_per_s:
        return None
    return round(incidents * workers / (bare_calls_per_s * BARE_WORKERS_PER_CALL), 4)


def cost_targets(key: str, stage: dict[str, Any], bare_seq: float | None) -> list[dict]:
    """The floor against a bare round trip, and what one incident costs."""
    floor = _get(stage, "latency_light", "submit_to_dispatched", "p50_ms")
    round_trip_ms = 1000 / bare_seq if bare_seq else None
    floor_ratio = _ratio(floor, round_trip_ms)
    runs = entrypoints_per_incident(stage)
    transactions = pg_per_incident(stage, "transactions")
    return [
        {
            "target": f"p50 at the light load ≤ {TARGET_FLOOR_TO_BARE_ROUND_TRIP:g} × a bare "
            "sequential round trip",
            "stage": key,
            "value": floor_ratio,
            "limit": TARGET_FLOOR_TO_BARE_ROUND_TRIP,
            "met": floor_ratio is not None and floor_ratio <= TARGET_FLOOR_TO_BARE_ROUND_TRIP,
        },
        {
            "target": f"worker runs per incident ≤ {TARGET_WORKER_RUNS:g}",
            "stage": key,
            "value": runs,
            "limit": TARGET_WORKER_RUNS,
            "met": runs is not None and runs <= TARGET_WORKER_RUNS,
        },
        {
            "target": f"PostgreSQL transactions per incident ≤ {TARGET_PG_TRANSACTIONS:g}",
            "stage": key,
            "value": transactions,
            "limit": TARGET_PG_TRANSACTIONS,
            "met": transactions is not None and transactions <= TARGET_PG_TRANSACTIONS,
        },
    ]


def derive(results: dict[str, Any]) -> None:
    """Add `ratios`, `scaling` and `targets` to `results` from its figures."""
    bare_seq = _get(results, "limits", "bare_nameko", "sequential", "calls_per_s")
    bare_par = _get(results, "limits", "bare_nameko", "in_flight", "calls_per_s")
    broker_one = _get(results, "limits", "broker", "single_publisher", "msgs_per_s")
    broker_par = _get(results, "limits", "broker", "in_flight", "msgs_per_s")
    stages = results.get("platform", {})
    throughput = {
        key: _get(stage, "throughput", "incidents_per_s") for key, stage in stages.items()
    }
    ratios: dict[str, Any] = {
        "bare_in_flight_to_sequential": _ratio(bare_par, bare_seq),
        "bare_in_flight_to_broker_in_flight": _ratio(bare_par, broker_par),
        "bare_sequential_to_broker_single_publisher": _ratio(bare_seq, broker_one),
    }
    for key, value in throughput.items():
        ratios[f"platform_{key}_to_bare_in_flight"] = _ratio(value, bare_par)
        # An incident runs several workers (intake's RPC, then every handler of its
        # events); a bare call runs two (the RPC and its handler). Per worker run:
        ratios[f"platform_{key}_worker_runs_to_bare_in_flight"] = per_worker_run(
            stages[key], bare_par
        )
        ratios[f"platform_{key}_to_bare_sequential"] = _ratio(value, bare_seq)
        ratios[f"platform_{key}_to_broker_in_flight"] = _ratio(value, broker_par)
    results["ratios"] = ratios

    scaling: dict[str, Any] = {}
    if "1x" in throughput and throughput["1x"]:
        base = throughput["1x"]
        services = len(results.get("services", [])) or 4
        for key, value in throughput.items():
            copies = int(key.rstrip("x"))
            if copies == 1 or value is None:
                continue
            added = services * (copies - 1)
            scaling[key] = {
                "incidents_per_s": value,
                "speedup": _ratio(value, base),
                "processes_added": added,
                "incidents_per_s_per_added_process": round((value - base) / added, 2),
                # what one process delivered on average with one of each
                "incidents_per_s_per_process_at_1x": round(base / services, 2),
            }
    results["scaling"] = scaling

    targets = []
    for key, stage in stages.items():
        if "throughput" not in stage:
            targets.append(
                {"target": "all", "stage": key, "value": None, "limit": None, "met": None}
            )
            continue
        value = ratios.get(f"platform_{key}_to_bare_in_flight")
        targets.append(
            {
                "target": f"platform throughput ≥ {TARGET_PLATFORM_TO_BARE:.0%} of bare nameko",
                "stage": key,
                "value": value,
                "limit": TARGET_PLATFORM_TO_BARE,
                "met": value is not None and value >= TARGET_PLATFORM_TO_BARE,
            }
        )
        p99 = _get(stage, "latency", "submit_to_dispatched", "p99_ms")
        targets.append(
            {
                "target": f"p99 submit→order_dispatched < {TARGET_P99_MS:.0f} ms at "
                f"{_get(stage, 'latency', 'offered_per_s')} reports/s",
                "stage": key,
                "value": p99,
                "limit": TARGET_P99_MS,
                "met": p99 is not None and p99 < TARGET_P99_MS,
            }
        )
        targets += cost_targets(key, stage, bare_seq)
        rss = [p["rss_mb"] for p in stage.get("footprint", [])]
        worst = max(rss) if rss else None
        targets.append(
            {
                "target": f"resident memory < {TARGET_RSS_MB:.0f} MB per service process",
                "stage": key,
                "value": worst,
                "limit": TARGET_RSS_MB,
                "met": worst is not None and worst < TARGET_RSS_MB,
            }
        )
    from bench import cluster, history  # later stages; they import the platform

    results["targets"] = targets + history.targets(results)
    cluster.derive(results)


def write(results: dict[str, Any], path: Path) -> None:
    """Atomically, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    return str(value)


def _json_safe(value: Any) -> Any:
    """JSON has no infinity: a latency that never ended is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def to_json(results: dict[str, Any]) -> dict[str, Any]:
    return _json_safe(results)


# -- the table --------------------------------------------------------------------


def _num(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return f"{value:,.{digits}f}{unit}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _verdict(met: bool | None) -> str:
    return "not measured" if met is None else ("met" if met else "MISSED")


def _met(targets: list[dict], stage: str, prefix: str) -> str:
    for target in targets:
        if target["stage"] == stage and target["target"].startswith(prefix):
            return _verdict(target["met"])
    return ""


def render(results: dict[str, Any]) -> str:
    """The human table: limits, platform per stage, scaling, footprint, CPU."""
    m = results["machine"]
    pk = m["packages"]
    in_flight = results["settings"]["in_flight"]
    rate = results["settings"]["offered_rate"]
    lines = [
        f"linkage bench ({results['mode']}) — {m['cores']} cores ({m['cpu_model']}), "
        f"{m['mem_total_mb'] / 1024:.1f} GiB; Python {m['python']}, nameko {pk['nameko']}, "
        f"kombu {pk['kombu']}, RabbitMQ {m['rabbitmq']}, PostgreSQL {m['postgresql']}",
        "",
    ]
    limits = results.get("limits", {})

    def row(label: str, *cells: str, width: int = 50) -> str:
        return f"  {label:<{width}}" + "".join(f"{c:>16}" for c in cells)

    lines.append("Limits")
    bare = limits.get("bare_nameko", {})
    broker = limits.get("broker", {})
    lines.append(
        row(
            "bare nameko RPC→event→handler, sequential",
            _num(_get(bare, "sequential", "calls_per_s"), " /s"),
        )
    )
    lines.append(
        row(
            f"bare nameko RPC→event→handler, {in_flight} in flight",
            _num(_get(bare, "in_flight", "calls_per_s"), " /s"),
        )
    )
    lines.append(
        row(
            "broker persistent+confirm+ack, 1 publisher",
            _num(_get(broker, "single_publisher", "msgs_per_s"), " /s"),
        )
    )
    lines.append(
        row(
            f"broker persistent+confirm+ack, {in_flight} publishers",
            _num(_get(broker, "in_flight", "msgs_per_s"), " /s"),
        )
    )
    stages = results.get("platform", {})
    targets = results.get("targets", [])
    keys = list(stages)
    if keys:
        lines += [
            "",
            row(
                "Platform (PostgreSQL)",
                *[f"{k[:-1]} proc/service" for k in keys],
                "target",
                width=52,
            )[2:],
        ]

        def stage_row(label: str, cell, target: str = "", prefix: str = "") -> str:
            cells = [cell(stages[k]) for k in keys]
            verdict = ""
            if prefix:
                verdict = " ".join(v for k in keys if (v := _met(targets, k, prefix)))
            return row(label, *cells, target) + (f"  {verdict}" if verdict else "")

        lines.append(
            stage_row(
                f"incidents/s fully flowed, {in_flight} in flight",
                lambda s: _num(_get(s, "throughput", "incidents_per_s"), " /s"),
            )
        )
        lines.append(
            stage_row(
                "  ÷ bare nameko in flight",
                lambda s: _pct(
                    _ratio(
                        _get(s, "throughput", "incidents_per_s"),
                        _get(bare, "in_flight", "calls_per_s"),
                    )
                ),
                f"≥ {TARGET_PLATFORM_TO_BARE:.0%}",
                "platform throughput",
            )
        )
        lines.append(
            stage_row(
                "  worker runs per incident (bare call: 2)",
                lambda s: _num(entrypoints_per_incident(s), digits=2),
            )
        )
        lines.append(
            stage_row(
                "  ÷ bare nameko, per worker run",
                lambda s: _pct(per_worker_run(s, _get(bare, "in_flight", "calls_per_s"))),
            )
        )
        lines.append(
            stage_row(
                "  PostgreSQL transactions / connections per incident",
                lambda s: "/".join(
                    _num(pg_per_incident(s, key), digits=1) for key in ("transactions", "sessions")
                ),
            )
        )
        lines.append(
            stage_row(
                "submit_report alone (RPC answered)",
                lambda s: _num(_get(s, "throughput", "submit_only_per_s"), " /s"),
            )
        )
        for q in ("p50", "p95", "p99"):
            lines.append(
                stage_row(
                    f"submit→order_dispatched {q} at {rate:g}/s",
                    lambda s, q=q: _num(
                        _get(s, "latency", "submit_to_dispatched", f"{q}_ms"), " ms"
                    ),
                    f"< {TARGET_P99_MS:.0f} ms" if q == "p99" else "",
                    "p99" if q == "p99" else "",
                )
            )
        for leg, label in (
            ("submit_to_incident_received", "  intake leg (→ incident_received) p50/p99"),
            ("incident_received_to_order_dispatched", "  dispatch leg (→ order) p50/p99"),
        ):
            lines.append(
                stage_row(
                    label,
                    lambda s, leg=leg: (
                        "/".join(
                            _num(_get(s, "latency", "legs", leg, f"{q}_ms"), digits=0)
                            for q in ("p50", "p99")
                        )
                        + " ms"
                    ),
                )
            )
        light = _get(stages[keys[0]], "latency_light", "offered_per_s")
        lines.append(
            stage_row(
                f"  floor: p50/p99 at {light:g}/s" if light else "  floor",
                lambda s: (
                    "/".join(
                        _num(_get(s, "latency_light", "submit_to_dispatched", f"{q}_ms"), digits=0)
                        for q in ("p50", "p99")
                    )
                    + " ms"
                ),
            )
        )
        lines.append(
            stage_row(
                "reports without an order (of offered)",
                lambda s: (
                    f"{_get(s, 'latency', 'without_order')}/{_get(s, 'latency', 'reports')}"
                    if "latency" in s
                    else "—"
                ),
            )
        )
        lines.append(
            stage_row(
                "largest service RSS after the run",
                lambda s: _num(
                    max((p["rss_mb"] for p in s.get("footprint", [])), default=None), " MB"
                ),
                f"< {TARGET_RSS_MB:.0f} MB",
                "resident memory",
            )
        )
    scaling = results.get("scaling", {})
    for key, figures in scaling.items():
        speedup = _num(figures["speedup"], digits=2)
        per_added = _num(figures["incidents_per_s_per_added_process"], " incidents/s", 2)
        per_process = _num(figures["incidents_per_s_per_process_at_1x"], digits=2)
        lines += [
            "",
            f"Scaling ({key[:-1]} processes of each service): ×{speedup} throughput; "
            f"{per_added} per added process ({figures['processes_added']} added; "
            f"{per_process} per process at 1×)",
        ]
    for key, stage in stages.items():
        footprint = stage.get("footprint", [])
        if footprint:
            lines += ["", f"Footprint, {key[:-1]} process(es)/service (RSS after the run)"]
            lines.append(
                "  " + ", ".join(f"{p['process']} {p['rss_mb']:.0f} MB" for p in footprint)
            )
        cpu = _get(stage, "throughput", "cpu_ms_per_incident")
        busy = _get(stage, "throughput", "cpu", "machine_busy_cores")
        if cpu:
            lines.append(
                "  CPU per incident (throughput stage), ms: "
                + ", ".join(f"{label} {ms:.2f}" for label, ms in cpu.items())
                + f"; machine busy {busy:.2f} of {m['cores']} cores"
            )
    lines += [""] + [
        f"target: {t['target']} [{t['stage']}]: {_num(t['value'], digits=3)} — {_verdict(t['met'])}"
        for t in targets
    ]
    for note in results.get("notes", []):
        lines.append(f"note: {note}")
    from bench import cluster, history

    lines += cluster.render(results)
    lines += history.render(results)
    return "\n".join(lines)
