"""A three-node RabbitMQ cluster of its own on loopback, beside the machine's broker.

The machine's broker (rabbit@localhost on 5672/15672/25672) is never touched:
each node here has its own node name, ports, config file, enabled-plugins file,
data (mnesia) and log folders under one temporary folder, and its own
rabbitmq-env.conf, so the machine's /etc/rabbitmq/rabbitmq-env.conf (which
names rabbit@localhost) is not read. The nodes run as the `rabbitmq` user so
they share its Erlang cookie (~rabbitmq/.erlang.cookie) and can cluster, and
they register with the machine's epmd like any other node.

    with RabbitCluster() as cluster:
        Connection(cluster.amqp_uri)          # kombu failover over the three nodes
        cluster.kill(cluster.nodes[0])        # SIGKILL of that node's beam process
        cluster.start(cluster.nodes[0])       # back, and in the cluster again

Start-up: every node boots at once, then nodes 2 and 3 stop their app at
once and join node 1 one after the other: about 15 s on two CPUs. Stopping kills every node and
removes the folder: the data is thrown away, so there is nothing to shut down
gracefully. `stop()` runs whatever happened before it (a failed start, a test
failure, Ctrl-C), and so does leaving the `with` block; if the process dies
without running it (SIGKILL, a runner's timeout), a watchdog process does the
same.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import requests

RABBITMQ_BIN = Path(os.environ.get("RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
RABBITMQ_USER = "rabbitmq"
PLUGINS = "[rabbitmq_management,rabbitmq_prometheus]."
NO_PLUGINS = "[]."
AUTH = ("guest", "guest")
# Below Linux's ephemeral range (32768-60999), so no client socket holds them;
# away from the machine's broker (5672, 15672, 15692, 25672).
DEFAULT_BASE_PORT = int(os.environ.get("LINKAGE_CLUSTER_BASE_PORT", "27670"))
BOOT_TIMEOUT_S = 120


class ClusterError(RuntimeError):
    """The cluster could not be started or a node could not be driven."""


@dataclass(frozen=True)
class Node:
    """One node: its name and where it listens, all on 127.0.0.1."""

    index: int
    name: str
    amqp_port: int
    management_port: int
    prometheus_port: int
    dist_port: int
    home: Path

    def amqp_uri(self, vhost: str = "/") -> str:
        path = "" if vhost == "/" else quote(vhost, safe="")
        return f"pyamqp://guest:guest@127.0.0.1:{self.amqp_port}/{path}"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "rabbitmq.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "log" / f"{self.name}.log"


def _node_ports(base: int, index: int) -> dict[str, int]:
    return {
        "amqp_port": base + index,
        "management_port": base + 10 + index,
        "prometheus_port": base + 20 + index,
        "dist_port": base + 30 + index,
    }


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class RabbitCluster:
    """`size` RabbitMQ nodes named `<prefix><i>@localhost`, clustered with node 1."""

    def __init__(self, size: int = 3, base_port: int = DEFAULT_BASE_PORT, prefix: str = "lkc"):
        self.size = size
        self.base_port = base_port
        self.prefix = prefix
        self.root: Path | None = None
        self.nodes: list[Node] = []
        self._watchdog: subprocess.Popen | None = None

    # -- what a test or a person needs --------------------------------------------

    @property
    def amqp_uri(self) -> str:
        """Every node's URI, `;`-separated: kombu's failover list (round robin)."""
        return self.amqp_uri_for("/")

    def amqp_uri_for(self, vhost: str, first: Node | None = None) -> str:
        """The failover list for `vhost`, starting with `first` (default node 1)."""
        ordered = sorted(self.nodes, key=lambda node: node is not first)
        return ";".join(node.amqp_uri(vhost) for node in ordered)

    def node(self, name: str) -> Node:
        """The node called `name` (`lkc2@localhost`), e.g. a queue's leader."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def management(self, path: str, node: Node | None = None, **kwargs) -> requests.Response:
        """GET `/api/<path>` from `node`'s management API (default: the first running one)."""
        node = node or next(n for n in self.nodes if self.is_running(n))
        response = requests.get(
            f"{node.management_url}/api/{path}", auth=AUTH, timeout=10, **kwargs
        )
        response.raise_for_status()
        return response

    def running_nodes(self, via: Node | None = None) -> set[str]:
        """The node names `via` sees running in its cluster."""
        via = via or next(n for n in self.nodes if self.is_running(n))
        status = json.loads(self.ctl(via, "cluster_status", "--formatter", "json").stdout)
        return set(status["running_nodes"])

    # -- life cycle ---------------------------------------------------------------

    def __enter__(self) -> RabbitCluster:
        self.up()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def up(self) -> RabbitCluster:
        """Start every node and form the cluster; on any failure, stop what started."""
        try:
            self._prepare()
            _parallel(self._boot, self.nodes)
            joiners = self.nodes[1:]
            _parallel(lambda node: self.ctl(node, "stop_app"), joiners)
            # one at a time: two nodes syncing mnesia's schema with node 1 at
            # once can fail start_app ({mnesia_app, start})
            for node in joiners:
                self._join_first(node)
            expected = {node.name for node in self.nodes}
            if self.running_nodes(self.nodes[0]) != expected:
                raise ClusterError(f"cluster did not form: {self.running_nodes(self.nodes[0])}")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Kill every node of this cluster and remove its folder. Safe to call twice.

        A second Ctrl-C (or a SIGTERM) while this runs would leave nodes
        behind, so both are ignored for the fraction of a second it takes."""
        with _signals_ignored():
            for node in self.nodes:
                self.kill(node)
            if self.root is not None:
                shutil.rmtree(self.root, ignore_errors=True)
                self.root = None
            if self._watchdog is not None:
                self._watchdog.kill()
                self._watchdog.wait()
                self._watchdog = None

    def kill(self, node: Node) -> None:
        """SIGKILL `node`'s Erlang VM, as a crash or a lost machine would; wait until gone."""
        pids = _beam_pids(node.name)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        while _beam_pids(node.name):
            if time.monotonic() > deadline:
                raise ClusterError(f"{node.name} survived SIGKILL")
            time.sleep(0.05)

    def start(self, node: Node) -> None:
        """Start `node` again (after `kill`): it rejoins the cluster from its own data."""
        if self.is_running(node):
            return
        self._boot(node)

    def is_running(self, node: Node) -> bool:
        return bool(_beam_pids(node.name))

    def ctl(self, node: Node, *args: str, timeout: float = BOOT_TIMEOUT_S):
        """`rabbitmqctl -n <node> ...` as the rabbitmq user; raises with its output on failure."""
        return _run_as_rabbitmq(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-q", "-n", node.name, *args],
            env=self._env(node),
            timeout=timeout,
        )

    # -- the steps ------------------------------------------------------------------

    def _prepare(self) -> None:
        user = _rabbitmq_user()
        self.root = Path(tempfile.mkdtemp(prefix="linkage-cluster-"))
        os.chown(self.root, user.pw_uid, user.pw_gid)
        self.root.chmod(0o755)
        self.nodes = [
            Node(
                index=i,
                name=f"{self.prefix}{i}@localhost",
                home=self.root / f"{self.prefix}{i}",
                **_node_ports(self.base_port, i),
            )
            for i in range(1, self.size + 1)
        ]
        busy = [
            f"{node.name}:{port}"
            for node in self.nodes
            for port in _node_ports(self.base_port, node.index).values()
            if _port_in_use(port)
        ]
        leftovers = [node.name for node in self.nodes if self.is_running(node)]
        if busy or leftovers:
            self.nodes = []  # not ours: stop() must not kill them
            raise ClusterError(
                f"ports or node names already taken: {', '.join(busy + leftovers)}. Another "
                "cluster holds them (scripts/cluster, or a run killed before its clean-up: "
                f"`grep -l RABBITMQ_NODENAME={self.prefix} /proc/*/environ` finds its VMs); "
                "stop it, or set LINKAGE_CLUSTER_BASE_PORT"
            )
        # Whatever ends this process (SIGKILL, a test runner's timeout), the
        # nodes must not outlive it: a process of its own waits for our end
        # of its stdin to close, then kills them and removes the folder.
        self._watchdog = subprocess.Popen(
            [sys.executable, "-I", __file__, "--watchdog", str(self.root)]
            + [node.name for node in self.nodes],
            stdin=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C in the terminal is for us, not for it
        )
        for node in self.nodes:
            (node.home / "mnesia").mkdir(parents=True)
            (node.home / "log").mkdir()
            (node.home / "rabbitmq.conf").write_text(self._config(node), encoding="utf-8")
            # the joiners boot bare and get their plugins in _join_first
            plugins = PLUGINS if node is self.nodes[0] else NO_PLUGINS
            (node.home / "enabled_plugins").write_text(plugins + "\n", encoding="utf-8")
            # replaces /etc/rabbitmq/rabbitmq-env.conf, which names the machine's node
            (node.home / "rabbitmq-env.conf").write_text("", encoding="utf-8")
            for path in (node.home, *node.home.rglob("*")):
                os.chown(path, user.pw_uid, user.pw_gid)

    def _config(self, node: Node) -> str:
        return "\n".join(
            [
                f"listeners.tcp.1 = 127.0.0.1:{node.amqp_port}",
                "management.tcp.ip = 127.0.0.1",
                f"management.tcp.port = {node.management_port}",
                "prometheus.tcp.ip = 127.0.0.1",
                f"prometheus.tcp.port = {node.prometheus_port}",
                "cluster_partition_handling = pause_minority",
                # a loopback test box: never let a full /tmp block publishers
                "disk_free_limit.absolute = 50MB",
                "",
            ]
        )

    def _env(self, node: Node) -> dict[str, str]:
        return {
            "HOME": pwd.getpwnam(RABBITMQ_USER).pw_dir,  # the shared Erlang cookie
            "RABBITMQ_CONF_ENV_FILE": str(node.home / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(node.amqp_port),
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_CONFIG_FILE": str(node.home / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(node.home / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(node.home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(node.home / "log"),
            "RABBITMQ_PID_FILE": str(node.pid_file),
            "ERL_CRASH_DUMP": str(node.home / "erl_crash.dump"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def _boot(self, node: Node) -> None:
        node.pid_file.unlink(missing_ok=True)  # a killed node's stale pid would fool `wait`
        _run_as_rabbitmq(
            [str(RABBITMQ_BIN / "rabbitmq-server"), "-detached"],
            env=self._env(node),
            cwd=node.home,
            timeout=30,
        )
        try:
            self.ctl(node, "wait", str(node.pid_file), "--timeout", str(BOOT_TIMEOUT_S))
        except ClusterError as exc:
            raise ClusterError(f"{exc}\n-- last lines of {node.log_file}:\n{_tail(node)}") from None

    def _join_first(self, node: Node) -> None:
        """join_cluster node 1 and start_app (the app is stopped). The node
        booted without plugins because the management plugin's statistics
        collector makes stop_app wait 5 s; start_app reads the file again."""
        self.ctl(node, "join_cluster", self.nodes[0].name)
        (node.home / "enabled_plugins").write_text(PLUGINS + "\n", encoding="utf-8")
        self.ctl(node, "start_app")


def _rabbitmq_user() -> pwd.struct_passwd:
    try:
        user = pwd.getpwnam(RABBITMQ_USER)
    except KeyError:
        raise ClusterError("no `rabbitmq` user: is RabbitMQ installed?") from None
    if os.geteuid() not in (0, user.pw_uid):
        raise ClusterError("the cluster is started as root or as the rabbitmq user")
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        raise ClusterError(f"no rabbitmq-server in {RABBITMQ_BIN} (set RABBITMQ_BIN)")
    return user


def _run_as_rabbitmq(
    command: list[str], env: dict[str, str], timeout: float, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run `command` as the rabbitmq user with exactly `env` (plus PATH and locale)."""
    base = {key: os.environ[key] for key in ("PATH", "LANG", "LC_ALL") if key in os.environ}
    if os.geteuid() == 0:
        command = ["runuser", "-u", RABBITMQ_USER, "--", *command]
    result = subprocess.run(
        command,
        env={**base, **env},
        cwd=cwd or env["HOME"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise ClusterError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result


def _beam_pids(node_name: str) -> list[int]:
    """Erlang VMs of `node_name`. RabbitMQ 3.10 names its node at run time, not
    on the command line, so the VM is recognised by the RABBITMQ_NODENAME it was
    started with (the machine's own broker reads its name from a file instead)."""
    wanted = f"RABBITMQ_NODENAME={node_name}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "beam.smp":
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if wanted in environ:
            pids.append(int(entry.name))
    return pids


def _parallel(step: Callable[[Node], None], nodes: Iterable[Node]) -> None:
    nodes = list(nodes)
    if not nodes:
        return
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        for future in [pool.submit(step, node) for node in nodes]:
            future.result()


@contextmanager
def _signals_ignored() -> Iterator[None]:
    stopping = (signal.SIGINT, signal.SIGTERM)
    try:
        previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in stopping}
    except ValueError:  # not the main thread: signals go elsewhere anyway
        previous = {}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _tail(node: Node, lines: int = 30) -> str:
    try:
        return "\n".join(node.log_file.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def main() -> None:
    """`scripts/cluster`: a cluster in the foreground until Ctrl-C or SIGTERM."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    started = time.monotonic()
    print("starting a three-node RabbitMQ cluster on 127.0.0.1 ...", flush=True)
    cluster = RabbitCluster()
    try:
        cluster.up()
        print(f"up in {time.monotonic() - started:.1f} s; data and logs in {cluster.root}\n")
        for node in cluster.nodes:
            print(
                f"  {node.name}  amqp 127.0.0.1:{node.amqp_port}  "
                f"management {node.management_url} (guest/guest)  "
                f"prometheus http://127.0.0.1:{node.prometheus_port}/metrics"
            )
        print(
            "\nIn another shell (kombu tries the nodes in turn, and the next one when a "
            "connection fails):\n"
            f"  export AMQP_URI='{cluster.amqp_uri}'\n"
            "  export LINKAGE_QUEUE_TYPE=quorum\n"
            f"  rabbitmqctl -n {cluster.nodes[0].name} cluster_status\n"
            "\nCtrl-C stops the nodes and removes their folder.",
            flush=True,
        )
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()  # again if up() stopped it: a Ctrl-C may have cut that short
    print("\nstopped; folder removed", flush=True)


def watchdog(root: str, node_names: list[str]) -> None:
    """Wait for the starting process to end (stdin closes), then clean up after it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdin.buffer.read()
    for name in node_names:
        for pid in _beam_pids(name):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--watchdog"]:
        watchdog(sys.argv[2], sys.argv[3:])
    else:
        main()
