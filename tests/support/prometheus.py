"""A real Prometheus (Debian's `prometheus` package) and the repo's PromQL.

`scrape_config(...)` turns deploy/prometheus/prometheus.local.yml into the
configuration for one test: the services' jobs point at the test's processes,
everything is scraped and evaluated every second, and the rules are the repo's
own alerts.yml. `Prometheus` runs the server as a subprocess and queries its
HTTP API. `dashboard_queries()` and `render()` give every panel's expression
as Grafana sends it, variables filled in.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from tests.support.processes import ROOT, free_port

PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
LOCAL_CONFIG = PROMETHEUS_DIR / "prometheus.local.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
DASHBOARDS = tuple(sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json")))

# Grafana's built-in variables, as a dashboard at its default time range sends them.
RATE_INTERVAL = "1m"
INTERVAL = "15s"

_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")
_LABEL_VALUES = re.compile(r"^\s*label_values\((?:(?P<selector>.+),)?\s*(?P<label>\w+)\s*\)\s*$")
_NOW_MINUS = re.compile(r"^now-(\d+[smhdwy])$")


def prometheus_binary() -> str | None:
    return shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )


def promtool_binary() -> str | None:
    return shutil.which("promtool") or (
        "/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None
    )


def check_metrics(exposition: str) -> subprocess.CompletedProcess:
    """`promtool check metrics`, which reads the exposition on stdin."""
    binary = promtool_binary()
    if binary is None:
        raise PrometheusError("promtool is not installed: `apt-get install prometheus`")
    return subprocess.run(
        [binary, "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=30
    )


# -- configuration ------------------------------------------------------------------


def scrape_config(service_ports: dict[str, list[int]], interval: str = "1s") -> dict:
    """prometheus.local.yml with the services' targets on `service_ports`
    (`{job: [port, ...]}`), every job scraped and every rule evaluated each
    `interval`, and rule files given by absolute path. Other jobs (RabbitMQ)
    keep their targets."""
    config = yaml.safe_load(LOCAL_CONFIG.read_text(encoding="utf-8"))
    config["global"]["scrape_interval"] = interval
    config["global"]["evaluation_interval"] = interval
    config["global"].pop("scrape_timeout", None)
    config["rule_files"] = [str(PROMETHEUS_DIR / name) for name in config.get("rule_files", [])]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    unknown = set(service_ports) - set(jobs)
    if unknown:
        raise ValueError(f"{LOCAL_CONFIG.name} has no job for {', '.join(sorted(unknown))}")
    for name, job in jobs.items():
        if "scrape_interval" in job:
            job["scrape_interval"] = interval
        if "scrape_timeout" in job:
            job["scrape_timeout"] = interval
        if name in service_ports:
            job["static_configs"] = [
                {"targets": [f"127.0.0.1:{port}" for port in service_ports[name]]}
            ]
    return config


# -- the server ---------------------------------------------------------------------


class PrometheusError(RuntimeError):
    pass


class Prometheus:
    """`prometheus` as a subprocess on a free port; stopped by `stop()` or on exit."""

    def __init__(self, config: dict, workdir: Path):
        self.config = config
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = workdir / "prometheus.log"
        self.started_at: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> Prometheus:
        binary = prometheus_binary()
        if binary is None:
            raise PrometheusError("prometheus is not installed: `apt-get install prometheus`")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self.config, sort_keys=False), encoding="utf-8")
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.started_at = time.time()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PrometheusError(
                    f"prometheus exited with {self.process.returncode}:\n{self.log()}"
                )
            try:
                if requests.get(f"{self.url}/-/ready", timeout=1).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise PrometheusError(f"prometheus not ready in {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Prometheus:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    # -- the HTTP API -----------------------------------------------------------------

    def api(self, path: str, **params) -> dict:
        """The JSON answer of /api/v1/<path>, also for a 4xx (status "error")."""
        response = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        try:
            return response.json()
        except ValueError:
            response.raise_for_status()
            raise

    def query(self, expr: str, at: float | None = None) -> dict:
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self.api("query", **params)

    def query_range(self, expr: str, start: float, end: float, step: str = "1s") -> dict:
        return self.api(
            "query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=step
        )

    def label_values(self, label: str, selector: str | None) -> dict:
        params = {"start": f"{self.started_at:.3f}"}
        if selector:
            params["match[]"] = selector
        return self.api(f"label/{label}/values", **params)

    def targets(self) -> list[dict]:
        return self.api("targets", state="active")["data"]["activeTargets"]

    def rules(self) -> list[dict]:
        return [rule for group in self.api("rules")["data"]["groups"] for rule in group["rules"]]


def finite_values(answer: dict) -> list[float]:
    """The finite sample values of a query's answer (vector, matrix or scalar)."""
    data = answer.get("data", {})
    kind, result = data.get("resultType"), data.get("result", [])
    if kind == "scalar":
        raw = [result[1]]
    elif kind == "vector":
        raw = [series["value"][1] for series in result]
    elif kind == "matrix":
        raw = [value for series in result for _, value in series["values"]]
    else:
        raw = []
    return [v for v in map(float, raw) if not math.isnan(v)]


# -- the dashboards and rules -------------------------------------------------------


@dataclass(frozen=True)
class Query:
    dashboard: str  # the dashboard's uid
    panel: int
    ref: str
    title: str
    expr: str  # as written in the dashboard
    instant: bool  # a table / bar gauge's instant query, else a range query

    def __str__(self) -> str:
        return f"{self.dashboard} panel {self.panel} {self.title!r} {self.ref}"


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    selector: str | None
    multi: bool
    include_all: bool
    all_value: str | None


def _panels(panels: list[dict]):
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def load_dashboard(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def dashboard_range(board: dict) -> str:
    """Grafana's `$__range` for the dashboard's default time range (now-24h → 24h)."""
    time_range = board.get("time", {"from": "now-6h", "to": "now"})
    match = _NOW_MINUS.match(time_range["from"])
    if not match or time_range.get("to") != "now":
        raise ValueError(f"{board['title']}: time range {time_range} is not now-N to now")
    return match.group(1)


def dashboard_queries(board: dict) -> list[Query]:
    queries = []
    for panel in _panels(board["panels"]):
        for target in panel.get("targets", []):
            if target.get("expr"):
                queries.append(
                    Query(
                        dashboard=board["uid"],
                        panel=panel["id"],
                        ref=target.get("refId", ""),
                        title=panel["title"],
                        expr=target["expr"],
                        instant=bool(target.get("instant")) and not target.get("range"),
                    )
                )
    return queries


def dashboard_variables(board: dict) -> list[Variable]:
    variables = []
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            raise ValueError(f"{board['title']}: variable type {variable.get('type')} not handled")
        query = variable["query"]
        query = query["query"] if isinstance(query, dict) else query
        match = _LABEL_VALUES.match(query)
        if not match:
            raise ValueError(f"{board['title']}: variable {variable['name']}: {query!r}")
        variables.append(
            Variable(
                name=variable["name"],
                label=match["label"],
                selector=match["selector"],
                multi=bool(variable.get("multi")),
                include_all=bool(variable.get("includeAll")),
                all_value=variable.get("allValue") or None,
            )
        )
    return variables


def grafana_all(variable: Variable, values: list[str]) -> str:
    """What Grafana puts in for "All": the variable's allValue, else every value
    as a regex alternation."""
    if variable.all_value is not None:
        return variable.all_value
    escaped = [re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", v) for v in values]
    return "(" + "|".join(escaped) + ")"


def render(expr: str, variables: dict[str, str], range_: str) -> str:
    """`expr` with Grafana's built-ins and the dashboard's variables replaced;
    an unknown variable is left in place, so the query fails to parse."""
    values = {
        "__rate_interval": RATE_INTERVAL,
        "__interval": INTERVAL,
        "__range": range_,
        **variables,
    }

    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        return values.get(name, match.group(0))

    return _VARIABLE.sub(replace, expr)


def alert_rules() -> list[tuple[str, str]]:
    """(name, expression) of every rule in alerts.yml."""
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [
        (rule.get("alert") or rule.get("record"), rule["expr"])
        for group in rules["groups"]
        for rule in group["rules"]
    ]
