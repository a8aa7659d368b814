"""The backbone with every service as a real process, as it runs in production."""

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import eventlet
import pytest
import requests

from services.dispatch import routing
from shared.network import load_network
from tests.conftest import cluster_rpc, wait_for
from tests.support.processes import ROOT, ServiceProcess, free_port
from tests.support.reports import DONGSHAN, report

pytestmark = pytest.mark.e2e

SERVICES = ("intake", "dispatch", "escalation", "assessment")


def orders_of(rpc, incident_id, expected: int, timeout: float = 30):
    return wait_for(
        lambda: (
            len(found := rpc.dispatch.list_orders(incident_id=incident_id)) >= expected and found
        ),
        timeout=timeout,
        message=f"{expected} orders for {incident_id}",
    )


def test_one_incident_followed_from_report_to_completion(platform, broker_uri):
    platform.start(*SERVICES)
    with cluster_rpc(broker_uri) as rpc:
        answer = rpc.intake.submit_report(report(category="water.burst_main"))
        assert answer["status"] == "accepted"
        [order] = orders_of(rpc, answer["incident_id"], 1)
        assert order["department"] == "dongshan-water" and order["role"] == "lead"
        oid = order["order_id"]
        rpc.dispatch.accept(oid)
        rpc.dispatch.arrive(oid)
        rpc.dispatch.report(oid, "已关阀，正在抢修")
        done = rpc.dispatch.complete(oid, "已修复，恢复供水")
        assert done["status"] == "completed"
        assert done["accepted_at"] <= done["arrived_at"] <= done["completed_at"]
        incident = rpc.intake.get_incident(answer["incident_id"])
        assert incident["center"] == "511123101"
    for process in platform.processes:
        assert "王小明" not in process.log() and "13800001234" not in process.log()


def test_two_dispatch_processes_route_each_incident_exactly_once(platform, broker_uri):
    platform.start("intake", "dispatch", "dispatch")
    categories = ["water.burst_main", "mass.gathering", "fire.building", "traffic.accident"]
    with cluster_rpc(broker_uri) as rpc:
        expected = {}
        for i in range(24):
            category = categories[i % len(categories)]
            incident = rpc.intake.submit_report(report(category=category))["incident_id"]
            expected[incident] = category
        time.sleep(1)
        network = load_network()
        for incident, category in expected.items():
            planned = routing.route(
                network.categories[category], DONGSHAN, network, datetime.now(UTC)
            )
            orders = orders_of(rpc, incident, len(planned))
            assert sorted(o["department"] for o in orders) == sorted(p.department for p in planned)
    # the two processes shared the work and handled each event once between them
    handled = [
        handled_count(requests.get(p.metrics_url, timeout=5).text) for p in platform.of("dispatch")
    ]
    assert sum(handled) == len(expected), handled


def handled_count(metrics: str) -> int:
    total = 0
    for line in metrics.splitlines():
        if (
            line.startswith("linkage_entrypoint_requests_total{")
            and 'entrypoint="on_incident_received"' in line
        ):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def test_sigterm_finishes_work_in_hand_and_loses_nothing(platform, broker_uri):
    platform.start("intake", "intake", "dispatch")
    answers = []
    reports = [report() for _ in range(40)]

    def submit(one):
        with cluster_rpc(broker_uri) as rpc:
            answers.append(rpc.intake.submit_report(one))

    pool = eventlet.GreenPool(20)
    for one in reports:
        pool.spawn(submit, one)
    eventlet.sleep(0.3)
    leaving = platform.of("intake")[0]
    assert leaving.terminate(timeout=30) == 0
    dispatch = platform.of("dispatch")[0]
    assert dispatch.terminate(timeout=30) == 0
    pool.waitall()
    assert len(answers) == 40 and all(a["status"] == "accepted" for a in answers)
    platform.start("dispatch", tag="-again")
    with cluster_rpc(broker_uri) as rpc:
        for answer in answers:
            assert len(orders_of(rpc, answer["incident_id"], 1)) == 1


def test_the_readme_commands_bring_the_platform_up_and_a_report_comes_back_as_orders(
    broker_uri, tmp_path
):
    env = {
        **os.environ,
        "AMQP_URI": broker_uri,
        "LINKAGE_VAR_DIR": str(tmp_path / "var"),
        "INTAKE_METRICS_PORT": str(ServiceProcess("intake", {}, tmp_path).port),
        "GATEWAY_PORT": str(free_port()),  # 8080 may be taken on a CI machine
    }
    # as `make run` does: a development secret under var/, which the client finds
    env.pop("LINKAGE_AUTH_SECRET")
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "auth-secret").write_text("a-development-secret-" + "x" * 32)
    env_run = {**env, "LINKAGE_AUTH_SECRET_FILE": str(tmp_path / "var" / "auth-secret")}
    # as `make run` does: the embedded databases brought to the code's schema first
    migrated = subprocess.run(
        [sys.executable, "-m", "services", "migrate"], cwd=ROOT, env=env_run, timeout=120
    )
    assert migrated.returncode == 0
    log = open(tmp_path / "all.log", "wb")
    platform = subprocess.Popen(
        [sys.executable, "-m", "services"],
        cwd=ROOT,
        env=env_run,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: "running:" in (tmp_path / "all.log").read_text(), timeout=60)
        done = subprocess.run(
            [sys.executable, "-m", "services.client", "submit", "examples/report.json"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        decoder = json.JSONDecoder()
        answer, end = decoder.raw_decode(done.stdout)
        orders, _ = decoder.raw_decode(done.stdout[end:].lstrip())
        assert answer["status"] == "accepted"
        assert {o["incident_id"] for o in orders} == {answer["incident_id"]}
        assert (tmp_path / "var" / "intake.db").exists()
    finally:
        platform.terminate()
        assert platform.wait(30) == 0
        log.close()


def test_sigterm_stops_a_service_that_lost_its_broker_within_the_timeout(db_urls, tmp_path):
    from tests.support.broker import amqp_uri, fresh_vhost
    from tests.support.databases import env_for

    with fresh_vhost() as vhost:
        env = {"AMQP_URI": amqp_uri(vhost), "LINKAGE_STOP_TIMEOUT_S": "3", **env_for(db_urls)}
        service = ServiceProcess("dispatch", env, tmp_path)
        service.start().wait_ready()
    # the vhost is gone: the service keeps trying to reconnect
    time.sleep(1)
    started = time.monotonic()
    try:
        service.terminate(timeout=20)
    finally:
        service.kill()
    assert time.monotonic() - started < 15
