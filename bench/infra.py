"""What a run borrows from the machine and gives back, and what it reads of it.

Borrowed: a RabbitMQ vhost (through the management API) and PostgreSQL
databases, both named after the run (`bench-<pid>-<hex>`), so two runs, or a
run and the test suite, never share a queue or a table. A run that was killed
leaves them behind; the next run removes those whose process is gone.

Read: `/proc` for resident memory and CPU time of processes and of the
machine, and the versions of everything measured. Only loopback addresses.
"""

from __future__ import annotations

import base64
import importlib.metadata
import json
import os
import platform
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from bench.settings import REPO_ROOT

BROKER_HOST = "127.0.0.1"
AMQP_PORT = 5672
MANAGEMENT_URL = "http://127.0.0.1:15672"
BROKER_USER = "guest"
BROKER_PASSWORD = "guest"
PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"

STALE_VHOST = re.compile(r"^bench-(\d+)-[0-9a-f]+$")
STALE_DATABASE = re.compile(r"^bench_(\d+)_[0-9a-f]+_[a-z]+$")


def new_run_id() -> str:
    """`<pid>-<hex>`: unique, and tells a later run whether its owner is alive."""
    return f"{os.getpid()}-{secrets.token_hex(3)}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- RabbitMQ ------------------------------------------------------------------


class ManagementError(RuntimeError):
    pass


def management(method: str, path: str, body: Any = None, timeout: float = 10) -> Any:
    """One call to the RabbitMQ management API; the decoded JSON answer, or None."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(MANAGEMENT_URL + path, data=data, method=method)
    token = base64.b64encode(f"{BROKER_USER}:{BROKER_PASSWORD}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raise ManagementError(f"{method} {path}: HTTP {exc.code} {exc.read()[:200]!r}") from None
    except OSError as exc:
        raise ManagementError(
            f"RabbitMQ management API not reachable at {MANAGEMENT_URL} ({exc}); "
            "run scripts/prepare-services"
        ) from None
    return json.loads(raw) if raw else None


@dataclass
class Vhost:
    name: str

    @property
    def path(self) -> str:
        return urllib.parse.quote(self.name, safe="")

    @property
    def amqp_uri(self) -> str:
        return f"pyamqp://{BROKER_USER}:{BROKER_PASSWORD}@{BROKER_HOST}:{AMQP_PORT}/{self.path}"

    def create(self) -> None:
        management("PUT", f"/api/vhosts/{self.path}", {"tracing": False})
        management(
            "PUT",
            f"/api/permissions/{self.path}/{BROKER_USER}",
            {"configure": ".*", "write": ".*", "read": ".*"},
        )

    def delete(self) -> None:
        try:
            management("DELETE", f"/api/vhosts/{self.path}")
        except ManagementError as exc:
            if "HTTP 404" not in str(exc):
                raise


def reap_stale_vhosts() -> list[str]:
    """Delete the vhosts of earlier runs whose process is gone."""
    removed = []
    for vhost in management("GET", "/api/vhosts") or []:
        match = STALE_VHOST.match(vhost["name"])
        if match and not _alive(int(match.group(1))):
            Vhost(vhost["name"]).delete()
            removed.append(vhost["name"])
    return removed


def broker_versions() -> dict[str, str]:
    overview = management("GET", "/api/overview")
    return {
        "rabbitmq": overview.get("rabbitmq_version", "?"),
        "erlang": overview.get("erlang_version", "?"),
    }


# -- PostgreSQL -----------------------------------------------------------------


def pg_connect(dbname: str = "postgres") -> psycopg2.extensions.connection:
    """An autocommit connection (CREATE/DROP DATABASE cannot run in a transaction)."""
    connection = psycopg2.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname, connect_timeout=10
    )
    connection.autocommit = True
    return connection


def database_url(dbname: str) -> str:
    return f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{dbname}"


def create_databases(names: list[str]) -> None:
    """Fresh, empty databases: dropped first in case a name is left over."""
    drop_databases(names)
    connection = pg_connect()
    try:
        with connection.cursor() as cursor:
            for name in names:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        connection.close()


def drop_databases(names: list[str]) -> None:
    connection = pg_connect()
    try:
        with connection.cursor() as cursor:
            for name in names:
                # FORCE: a service killed mid-transaction may leave a backend behind.
                cursor.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
    finally:
        connection.close()


def reap_stale_databases() -> list[str]:
    connection = pg_connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_%'")
            names = [row[0] for row in cursor.fetchall()]
    finally:
        connection.close()
    stale = [
        name
        for name in names
        if (match := STALE_DATABASE.match(name)) and not _alive(int(match.group(1)))
    ]
    if stale:
        drop_databases(stale)
    return stale


def pg_free_connections() -> int:
    """Client connections PostgreSQL would still accept (superuser slots aside)."""
    connection = pg_connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('max_connections')::int"
                " - current_setting('superuser_reserved_connections')::int"
                " - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
            )
            return int(cursor.fetchone()[0])
    finally:
        connection.close()


def wait_available(timeout_s: float = 60) -> None:
    """Until the broker's management API and PostgreSQL both answer (either may
    be restarting under another process's test); their error after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            management("GET", "/api/overview")
            pg_connect().close()
            return
        except (ManagementError, psycopg2.Error):
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def postgres_started_at() -> str | None:
    """When the PostgreSQL server last started: a change means someone restarted it."""
    try:
        connection = pg_connect()
    except psycopg2.Error:
        return None
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_postmaster_start_time()::text")
            return cursor.fetchone()[0]
    finally:
        connection.close()


def postgres_version() -> str:
    connection = pg_connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            return cursor.fetchone()[0]
    finally:
        connection.close()


# -- this machine -------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nobody listens on now (the service binds it moments later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float | None:
    """Resident memory of `pid` in MiB (VmRSS), None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def cpu_seconds(pid: int, reaped_children: bool = False) -> float | None:
    """User + system CPU time `pid` has used so far; with `reaped_children`,
    plus that of its children that have exited (PostgreSQL backends that came
    and went during a stage are only found there, on the postmaster)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # after "pid (comm)": state is field 0, utime 11, stime 12, cutime 13, cstime 14
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _CLOCK_TICKS


def pids_named(comm: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as handle:
                if handle.read().strip() == comm:
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already in user
    return (total - idle) / _CLOCK_TICKS, total / _CLOCK_TICKS


def _meminfo_mb(key: str) -> float | None:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _git() -> dict[str, Any]:
    def run(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()

    try:
        return {"commit": run("rev-parse", "HEAD"), "dirty": bool(run("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def machine() -> dict[str, Any]:
    """The machine and the versions of everything measured."""
    packages = {}
    for name in ("nameko", "eventlet", "kombu", "amqp", "SQLAlchemy", "psycopg2-binary"):
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = None
    with open("/proc/loadavg") as loadavg:
        load = [float(v) for v in loadavg.read().split()[:3]]
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "mem_total_mb": round(_meminfo_mb("MemTotal") or 0),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "packages": packages,
        **broker_versions(),
        "postgresql": postgres_version(),
        "loadavg_at_start": load,
        "git": _git(),
    }


class CpuMeter:
    """CPU time used during a stage by each process of interest, by the broker,
    by PostgreSQL and by the whole machine: where the cores went."""

    def __init__(self, pids: dict[str, int]):
        self.pids = {"bench client": os.getpid(), **pids}
        self._start: dict[str, float] = {}
        self._machine: tuple[float, float] = (0.0, 0.0)
        self._wall = 0.0

    def _groups(self) -> dict[str, list[int]]:
        groups = {label: [pid] for label, pid in self.pids.items()}
        # machine-wide: other work on the same broker or server counts here too
        groups["rabbitmq (beam.smp)"] = pids_named("beam.smp")
        groups["postgresql (all backends)"] = pids_named("postgres")
        return groups

    def _sample(self) -> dict[str, float]:
        """CPU so far per group: its live processes and the children they reaped.
        A group's delta is then right even when processes come and go in it."""
        return {
            label: sum(cpu_seconds(pid, reaped_children=True) or 0.0 for pid in pids)
            for label, pids in self._groups().items()
        }

    def start(self) -> CpuMeter:
        self._start = self._sample()
        self._machine = machine_cpu()
        self._wall = time.monotonic()
        return self

    def stop(self) -> dict[str, Any]:
        """Per label `{"cpu_s", "cores"}` over the stage, and the machine's busy cores."""
        wall = max(time.monotonic() - self._wall, 1e-9)
        end = self._sample()
        busy_end, _ = machine_cpu()
        usage = {}
        for label, total in end.items():
            spent = max(total - self._start.get(label, 0.0), 0.0)
            usage[label] = {"cpu_s": round(spent, 3), "cores": round(spent / wall, 3)}
        machine_busy = busy_end - self._machine[0]
        ours = sum(u["cpu_s"] for u in usage.values())
        return {
            "wall_s": round(wall, 3),
            "machine_busy_cores": round(machine_busy / wall, 3),
            # CPU not used by the processes above: other work on the machine, and
            # the kernel's own (softirq) work for loopback traffic
            "other_cores": round(max(machine_busy - ours, 0.0) / wall, 3),
            "processes": usage,
        }


def wait_quiet(
    max_wait_s: float,
    pg_connections: int = 0,
    threshold_cores: float = 0.3,
    window_s: float = 2.0,
) -> dict[str, Any]:
    """Wait (at most `max_wait_s`) until the machine has been nearly idle for
    `window_s` and PostgreSQL has `pg_connections` free: on a shared machine a
    test suite running alongside would otherwise halve the figures, or take
    the connections the services need. Returns how long it waited and the state."""
    started = time.monotonic()
    while True:
        busy0, _ = machine_cpu()
        time.sleep(window_s)
        busy = (machine_cpu()[0] - busy0) / window_s
        try:
            free = pg_free_connections() if pg_connections else 0
        except psycopg2.Error:  # restarting under someone else's test: not quiet
            free = -1
        waited = time.monotonic() - started
        quiet = busy < threshold_cores and free >= pg_connections
        if quiet or waited >= max_wait_s:
            state = {"waited_s": round(waited, 1), "busy_cores": round(busy, 2), "quiet": quiet}
            if pg_connections:
                state.update(pg_connections_free=free, pg_connections_needed=pg_connections)
            return state
