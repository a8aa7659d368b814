"""The platform on a three-node RabbitMQ cluster with quorum queues (issue 15).

The same stage as `platform 1x` (bench/platform_run.py: one process per
service, PostgreSQL, the same throughput and latency loops), but the broker
is tests/support/cluster.py's cluster of three nodes on loopback and the
services run with `LINKAGE_QUEUE_TYPE=quorum`: every queue they declare is
replicated by Raft on the three nodes, every message confirmed only once a
majority has written it. Side by side with `platform 1x` on the machine's
single broker (classic queues), it shows what replication costs.

The three nodes share the machine's cores with everything else, so the cost
measured here is the replication's plus two more Erlang VMs on the same cores;
on three machines the second part goes away.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.platform_run import Declared, run_platform
from bench.settings import Settings
from tests.support.cluster import RabbitCluster

# Away from the test suite's clusters (27670, prefix lkc), which may run meanwhile.
BASE_PORT = int(os.environ.get("BENCH_CLUSTER_BASE_PORT", "27770"))


def run_cluster(
    run_id: str, settings: Settings, log_dir: Path, declared: dict[str, Declared]
) -> dict[str, Any]:
    """Start the cluster, run the 1-process platform stage on it, stop it."""
    previous = os.environ.get("LINKAGE_QUEUE_TYPE")
    os.environ["LINKAGE_QUEUE_TYPE"] = "quorum"  # the service processes inherit it
    try:
        with RabbitCluster(base_port=BASE_PORT, prefix="lkb") as cluster:
            result = run_platform(run_id, cluster.amqp_uri, 1, settings, log_dir, declared)
            result["cluster"] = {
                "nodes": [node.name for node in cluster.nodes],
                "queue_type": "quorum",
                "rabbitmq_queues": _queue_types(cluster),
            }
    finally:
        if previous is None:
            os.environ.pop("LINKAGE_QUEUE_TYPE", None)
        else:
            os.environ["LINKAGE_QUEUE_TYPE"] = previous
    if "error" in result:
        raise RuntimeError(result["error"])
    return result


def _queue_types(cluster: RabbitCluster) -> dict[str, int]:
    """How many queues of each type the services declared (all quorum, but
    the clients' reply queues)."""
    counts: dict[str, int] = {}
    for queue in cluster.management("queues").json():
        counts[queue.get("type", "?")] = counts.get(queue.get("type", "?"), 0) + 1
    return counts


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 4)


# (label, path in a platform stage's results, unit)
FIGURES = (
    ("incidents/s fully flowed", ("throughput", "incidents_per_s"), " /s"),
    ("submit_report alone (RPC answered)", ("throughput", "submit_only_per_s"), " /s"),
    ("p50 submit→order_dispatched", ("latency", "submit_to_dispatched", "p50_ms"), " ms"),
    ("p99 submit→order_dispatched", ("latency", "submit_to_dispatched", "p99_ms"), " ms"),
    ("floor p50", ("latency_light", "submit_to_dispatched", "p50_ms"), " ms"),
    ("floor p99", ("latency_light", "submit_to_dispatched", "p99_ms"), " ms"),
)


def derive(results: dict[str, Any]) -> None:
    """`results["replication"]`: each figure on one node, on the cluster, and the ratio."""
    cluster = results.get("cluster")
    if not isinstance(cluster, dict) or "throughput" not in cluster:
        return
    single = _get(results, "platform", "1x") or {}
    results["replication"] = {
        label: {
            "single_node": _get(single, *path),
            "cluster": _get(cluster, *path),
            "cluster_to_single": _ratio(_get(cluster, *path), _get(single, *path)),
        }
        for label, path, _ in FIGURES
    }


def render(results: dict[str, Any]) -> list[str]:
    replication = results.get("replication")
    cluster = results.get("cluster")
    if not replication:
        if isinstance(cluster, dict) and "error" in cluster:
            return ["", f"Three-node quorum cluster: failed: {cluster['error']}"]
        return []
    rate = results["settings"]["offered_rate"]
    light = _get(cluster, "latency_light", "offered_per_s")
    units = {label: unit for label, _, unit in FIGURES}
    lines = [
        "",
        f"{'Replication (1 proc/service)':<52}{'single node':>16}{'3-node quorum':>16}"
        f"{'cluster ÷ single':>18}",
    ]
    for label, figures in replication.items():
        at = f" at {rate:g}/s" if label.startswith("p") else ""
        at = f" at {light:g}/s" if label.startswith("floor") and light else at
        cells = [
            "—" if figures[key] is None else f"{figures[key]:,.1f}{units[label]}"
            for key in ("single_node", "cluster")
        ]
        ratio = figures["cluster_to_single"]
        lines.append(
            f"  {label + at:<50}{cells[0]:>16}{cells[1]:>16}"
            + f"{'—' if ratio is None else f'{ratio * 100:.0f}%':>18}"
        )
    return lines
