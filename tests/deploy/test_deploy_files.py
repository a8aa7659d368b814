"""The deployment files, checked offline: Prometheus, alerts, Grafana, compose, Kubernetes.

Every PromQL expression in a dashboard or an alert may name only series that
exist: the project's own metric objects (imported, not copied) plus the
rabbitmq_prometheus families of RabbitMQ 3.10 and later. promtool checks the
Prometheus files and runs the alert unit tests (tests/deploy/alerts_test.yml);
kubernetes-validate checks the manifests, except the custom resources of the
operators (KEDA, RabbitMQ) it has no schema for: those are checked against
the fields their CRDs require (CUSTOM_RESOURCES); docker-compose, when
installed, checks docker-compose.yml.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from services import topology
from shared.config import DEFAULT_METRICS_PORTS, GATEWAY, SERVICES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
PROMETHEUS_CONFIGS = (PROMETHEUS_DIR / "prometheus.yml", PROMETHEUS_DIR / "prometheus.local.yml")
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = Path(__file__).with_name("alerts_test.yml")
GRAFANA = DEPLOY / "grafana"
DASHBOARD_NAMES = ("linkage-overview.json", "department-assessment.json", "platform-health.json")
DASHBOARDS = tuple(GRAFANA / "dashboards" / name for name in DASHBOARD_NAMES)
K8S = DEPLOY / "k8s"
RABBITMQ_DIR = DEPLOY / "rabbitmq"
COMPOSE = ROOT / "docker-compose.yml"

METRIC_MODULES = (
    "shared.metrics",
    "services.intake.metrics",
    "services.dispatch.metrics",
    "services.escalation.metrics",
    "services.assessment.metrics",
    "services.gateway.metrics",
)

# Families served by rabbitmq_prometheus (RabbitMQ 3.10 and later) at /metrics
# and /metrics/per-object that the deployment files may use; checked against
# a 3.10.8 broker's output.
RABBITMQ_METRICS = frozenset(
    {
        "rabbitmq_identity_info",
        "rabbitmq_build_info",
        "rabbitmq_connections",
        "rabbitmq_channels",
        "rabbitmq_consumers",
        "rabbitmq_queues",
        "rabbitmq_process_resident_memory_bytes",
        "rabbitmq_resident_memory_limit_bytes",
        "rabbitmq_disk_space_available_bytes",
        "rabbitmq_disk_space_available_limit_bytes",
        "rabbitmq_alarms_memory_used_watermark",
        "rabbitmq_alarms_free_disk_space_watermark",
        "rabbitmq_alarms_file_descriptor_limit",
        "rabbitmq_queue_messages",
        "rabbitmq_queue_messages_ready",
        "rabbitmq_queue_messages_unacked",
        "rabbitmq_queue_messages_published_total",
        "rabbitmq_queue_consumers",
        "rabbitmq_queue_consumer_utilisation",
        "rabbitmq_queue_messages_bytes",
        "rabbitmq_global_publishers",
        "rabbitmq_global_consumers",
        "rabbitmq_global_messages_received_total",
        "rabbitmq_global_messages_received_confirm_total",
        "rabbitmq_global_messages_routed_total",
        "rabbitmq_global_messages_confirmed_total",
        "rabbitmq_global_messages_unroutable_dropped_total",
        "rabbitmq_global_messages_unroutable_returned_total",
        "rabbitmq_global_messages_delivered_total",
        "rabbitmq_global_messages_delivered_consume_manual_ack_total",
        "rabbitmq_global_messages_delivered_consume_auto_ack_total",
        "rabbitmq_global_messages_redelivered_total",
        "rabbitmq_global_messages_acknowledged_total",
        "rabbitmq_global_messages_dead_lettered_delivery_limit_total",
        "rabbitmq_global_messages_dead_lettered_rejected_total",
        "rabbitmq_global_messages_dead_lettered_maxlen_total",
        "rabbitmq_global_messages_dead_lettered_expired_total",
        "rabbitmq_global_messages_dead_lettered_confirmed_total",
    }
)

# Gauges that every instance reads from its service's shared database: they
# are combined with max, never summed over instances.
SHARED_STATE_GAUGES = (
    "linkage_orders_open",
    "linkage_orders_overdue_open",
    "linkage_outbox_pending",
    "linkage_department_score",
    "linkage_department_satisfaction_ratio",
)

# Values Grafana puts in for its variables, so that promtool can parse a query.
GRAFANA_SUBSTITUTES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.+),\s*\w+\s*\)\s*$")


# -- helpers -------------------------------------------------------------------


def metric_names(expr: str) -> set[str]:
    """Series names an expression selects: linkage_*, rabbitmq_* and up.

    String literals (label values such as queue="linkage.dead-letter") are
    dropped first; label names never start with those prefixes.
    """
    bare = _STRING.sub('""', expr)
    return {
        token
        for token in _IDENTIFIER.findall(bare)
        if token.startswith(("linkage_", "rabbitmq_")) or token == "up"
    }


def _import_metric_modules() -> dict[str, str]:
    """Import every metric module; the ones that fail, with why."""
    missing = {}
    for module in METRIC_MODULES:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            missing[module] = f"{type(exc).__name__}: {exc}"
    return missing


def _family_names(family) -> set[str]:
    names = {sample.name for sample in family.samples}
    if family.type == "counter":
        names.add(family.name + "_total")
    elif family.type in ("histogram", "gaugehistogram"):
        names |= {family.name + suffix for suffix in ("_bucket", "_sum", "_count")}
    elif family.type == "summary":
        names |= {family.name, family.name + "_sum", family.name + "_count"}
    else:
        names.add(family.name)
    return names


def known_linkage_metrics() -> set[str]:
    """Names of the project's series, read from its metric objects.

    REGISTRY.collect() gives the families; a labelled metric with no child yet
    has no sample, so each family's type completes the names (`_total`,
    `_bucket`/`_sum`/`_count`). The modules' own metric objects are collected
    too, in case a test elsewhere has unregistered them.
    """
    missing = _import_metric_modules()
    families = [f for f in REGISTRY.collect() if f.name.startswith("linkage_")]
    for module_name in METRIC_MODULES:
        if module_name in missing:
            continue
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                families.extend(value.collect())
    names: set[str] = set()
    for family in families:
        names |= _family_names(family)
    return names


def _panels(panels: list[dict]):
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_queries(path: Path) -> list[tuple[str, str]]:
    """(where, expression) for every panel target and query variable."""
    board = json.loads(path.read_text(encoding="utf-8"))
    queries = []
    for panel in _panels(board["panels"]):
        for target in panel.get("targets", []):
            if target.get("expr"):
                queries.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            query = query["query"] if isinstance(query, dict) else query
            match = _LABEL_VALUES.match(query)
            queries.append((f"variable {variable['name']}", match["selector"] if match else query))
    return queries


def alert_queries() -> list[tuple[str, str]]:
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [
        (f"alert {rule.get('alert') or rule.get('record')}", rule["expr"])
        for group in rules["groups"]
        for rule in group["rules"]
    ]


def as_promql(expr: str) -> str:
    for variable, value in GRAFANA_SUBSTITUTES.items():
        expr = expr.replace(variable, value)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not installed: `apt-get install prometheus` (Debian's package "
            "brings promtool; .ci/run installs it)"
        )
    return path


def run(*command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


def load_yaml_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def k8s_manifests() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def kubernetes_validate():
    try:
        return importlib.import_module("kubernetes_validate")
    except ImportError:
        pytest.fail(
            "kubernetes-validate is not installed: `.venv/bin/pip install kubernetes-validate`"
        )


# Custom resources kubernetes-validate knows no schema for, with what their
# CRDs require (KEDA 2.x keda.sh_scaledobjects/triggerauthentications; RabbitMQ
# Cluster Operator rabbitmqclusters, Messaging Topology Operator policies):
# dotted path -> type. A path through a list ("triggers[]") applies to every item.
CUSTOM_RESOURCES: dict[tuple[str, str], dict[str, type]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): {
        "spec.scaleTargetRef.name": str,
        "spec.triggers": list,
        "spec.triggers[].type": str,
        "spec.triggers[].metadata": dict,
    },
    ("keda.sh/v1alpha1", "TriggerAuthentication"): {
        "spec.secretTargetRef": list,
        "spec.secretTargetRef[].parameter": str,
        "spec.secretTargetRef[].name": str,
        "spec.secretTargetRef[].key": str,
    },
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): {"spec": dict},
    ("rabbitmq.com/v1beta1", "Policy"): {
        "spec.name": str,
        "spec.pattern": str,
        "spec.definition": dict,
        "spec.rabbitmqClusterReference.name": str,
    },
}
# Optional fields whose values the CRDs restrict.
CUSTOM_RESOURCE_ENUMS: dict[tuple[str, str], dict[str, set]] = {
    ("rabbitmq.com/v1beta1", "Policy"): {
        "spec.applyTo": {"queues", "classic_queues", "quorum_queues", "exchanges", "all"}
    },
}


def _values_at(doc, path: str) -> list:
    """The values at a dotted `path`; `[]` after a key steps into each list item.
    A missing key or a list where a mapping should be yields `_MISSING`."""
    values = [doc]
    for part in path.split("."):
        key, each = (part[:-2], True) if part.endswith("[]") else (part, False)
        stepped = []
        for value in values:
            found = value.get(key, _MISSING) if isinstance(value, dict) else _MISSING
            if each and isinstance(found, list):
                stepped.extend(found)
            else:
                stepped.append(found)
        values = stepped
    return values


_MISSING = object()


def custom_resource_errors(doc: dict) -> list[str]:
    """What a custom resource lacks or gets wrong by its CRD's required fields."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key not in CUSTOM_RESOURCES:
        return [f"unknown kind {key[1]} of {key[0]}"]
    errors = []
    name = doc.get("metadata", {}).get("name")
    if not isinstance(name, str) or not name:
        errors.append("metadata.name is required")
    for path, kind in CUSTOM_RESOURCES[key].items():
        for value in _values_at(doc, path):
            if value is _MISSING:
                errors.append(f"{path} is required")
            elif not isinstance(value, kind):
                errors.append(f"{path} must be a {kind.__name__}, not {value!r}")
    for path, allowed in CUSTOM_RESOURCE_ENUMS.get(key, {}).items():
        for value in _values_at(doc, path):
            if value is not _MISSING and value not in allowed:
                errors.append(f"{path}: {value!r} is not one of {sorted(allowed)}")
    return errors


def is_custom_resource(doc: dict) -> bool:
    """Kubernetes' own API groups are "" (core), dotless (apps) or *.k8s.io."""
    group = doc.get("apiVersion", "").rpartition("/")[0]
    return "." in group and not group.endswith(".k8s.io")


def _validate_k8s(documents: list[tuple[str, dict]]) -> list[str]:
    kv = kubernetes_validate()
    errors = [
        f"{where} {doc.get('kind')}/{doc.get('metadata', {}).get('name')}: {error}"
        for where, doc in documents
        if is_custom_resource(doc)
        for error in custom_resource_errors(doc)
    ]
    documents = [(where, doc) for where, doc in documents if not is_custom_resource(doc)]
    for version in ("1.25.0", kv.latest_version()):
        for where, doc in documents:
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as exc:
                name = f"{doc['kind']}/{doc['metadata']['name']}"
                path = ".".join(str(p) for p in exc.path)
                errors.append(f"{where} {name} ({version}): {path}: {exc.message}")
            except kv.SchemaNotFoundError as exc:
                errors.append(f"{where}: {exc.message}")
    return errors


# -- metric names ----------------------------------------------------------------


@pytest.mark.parametrize("module", METRIC_MODULES)
def test_metric_module_exists(module):
    missing = _import_metric_modules()
    assert module not in missing, f"{module} cannot be imported ({missing.get(module)})"


def test_metric_name_parser_finds_series_but_not_labels_or_functions():
    expr = (
        'sum by (queue) (rabbitmq_queue_messages_ready{job="rabbitmq-per-object", '
        'queue="linkage.dead-letter"}) / max by (center) (linkage_orders_open) '
        "and histogram_quantile(0.9, rate(linkage_x_seconds_bucket[5m])) or up == 0"
    )
    assert metric_names(expr) == {
        "rabbitmq_queue_messages_ready",
        "linkage_orders_open",
        "linkage_x_seconds_bucket",
        "up",
    }


def test_known_metrics_include_every_shape_of_series():
    known = known_linkage_metrics()
    assert "linkage_entrypoint_requests_total" in known  # a counter
    assert "linkage_entrypoint_latency_seconds_bucket" in known  # a histogram
    assert "linkage_outbox_pending" in known  # a gauge
    assert "linkage_orders_open_count" not in known


@pytest.mark.parametrize("path", [*DASHBOARDS, ALERTS], ids=[p.name for p in (*DASHBOARDS, ALERTS)])
def test_queries_name_only_series_that_exist(path):
    queries = alert_queries() if path == ALERTS else dashboard_queries(path)
    assert queries, f"{path.name} has no query"
    known = known_linkage_metrics() | RABBITMQ_METRICS | {"up"}
    unknown = {
        f"{where}: {name}"
        for where, expr in queries
        for name in metric_names(expr)
        if name not in known
    }
    missing = _import_metric_modules()
    hint = f" (metric modules not importable yet: {', '.join(missing)})" if missing else ""
    assert not unknown, f"{path.name} names series that do not exist{hint}:\n" + "\n".join(
        sorted(unknown)
    )


@pytest.mark.parametrize("path", [*DASHBOARDS, ALERTS], ids=[p.name for p in (*DASHBOARDS, ALERTS)])
def test_rabbitmq_series_are_selected_by_job(path):
    """/metrics and /metrics/per-object serve the same names: never add them up."""
    queries = alert_queries() if path == ALERTS else dashboard_queries(path)
    unscoped = []
    for where, expr in queries:
        bare = _STRING.sub(lambda m: m.group(0).replace("{", "").replace("}", ""), expr)
        for match in re.finditer(r"(rabbitmq_[A-Za-z0-9_]+)\s*(\{[^}]*\})?", bare):
            if not match.group(2) or "job" not in match.group(2):
                unscoped.append(f"{where}: {match.group(1)}")
    assert not unscoped, "RabbitMQ series without a job selector:\n" + "\n".join(unscoped)


@pytest.mark.parametrize("path", [*DASHBOARDS, ALERTS], ids=[p.name for p in (*DASHBOARDS, ALERTS)])
def test_gauges_from_a_shared_database_are_not_summed_over_instances(path):
    queries = alert_queries() if path == ALERTS else dashboard_queries(path)
    summed = [
        f"{where}: {expr}"
        for where, expr in queries
        for gauge in SHARED_STATE_GAUGES
        if re.search(rf"\bsum\s*(by\s*\([^)]*\)\s*)?\(\s*{gauge}\b", expr)
    ]
    assert not summed, "use max by (...), not sum, for these gauges:\n" + "\n".join(summed)


# -- Prometheus ------------------------------------------------------------------


@pytest.mark.parametrize("config", PROMETHEUS_CONFIGS, ids=lambda p: p.name)
def test_promtool_accepts_the_prometheus_config(config):
    result = run(promtool(), "check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_alert_rules():
    result = run(promtool(), "check", "rules", "--lint-fatal", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_fire_as_their_unit_tests_expect():
    result = run(promtool(), "test", "rules", ALERT_TESTS.name, cwd=ALERT_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_severity_summary_and_description():
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
            assert rule["annotations"]["summary"].strip(), rule["alert"]
            assert rule["annotations"]["description"].strip(), rule["alert"]


def test_dashboard_queries_are_valid_promql(tmp_path):
    queries = [expr for path in DASHBOARDS for _, expr in dashboard_queries(path)]
    rules = {
        "groups": [
            {
                "name": "dashboard-queries",
                "rules": [
                    {"record": f"dashboard_check:query_{i}", "expr": as_promql(expr)}
                    for i, expr in enumerate(queries)
                ],
            }
        ]
    }
    rule_file = tmp_path / "dashboard-queries.yml"
    rule_file.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    result = run(promtool(), "check", "rules", "--lint-fatal", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_every_service_on_its_port_and_rabbitmq_per_object():
    compose_config = yaml.safe_load(PROMETHEUS_CONFIGS[0].read_text(encoding="utf-8"))
    local_config = yaml.safe_load(PROMETHEUS_CONFIGS[1].read_text(encoding="utf-8"))
    for config in (compose_config, local_config):
        assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in compose_config["scrape_configs"]}
    local_jobs = {job["job_name"]: job for job in local_config["scrape_configs"]}
    for service in (*SERVICES, GATEWAY):
        port = DEFAULT_METRICS_PORTS[service]
        assert jobs[service]["dns_sd_configs"] == [
            {"names": [service], "type": "A", "port": port, "refresh_interval": "15s"}
        ]
        assert local_jobs[service]["static_configs"] == [{"targets": [f"127.0.0.1:{port}"]}]
    for all_jobs, host in ((jobs, "rabbitmq"), (local_jobs, "127.0.0.1")):
        assert all_jobs["rabbitmq"]["static_configs"] == [{"targets": [f"{host}:15692"]}]
        per_object = all_jobs["rabbitmq-per-object"]
        assert per_object["metrics_path"] == "/metrics/per-object"
        assert per_object["static_configs"] == [{"targets": [f"{host}:15692"]}]


# -- Grafana ---------------------------------------------------------------------


def test_grafana_provisioning_points_at_the_dashboards_and_datasource():
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )
    assert [(d["uid"], d["type"]) for d in datasources["datasources"]] == [
        ("prometheus", "prometheus")
    ]
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text(encoding="utf-8")
    )
    assert [p["options"]["path"] for p in providers["providers"]] == ["/var/lib/grafana/dashboards"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_well_formed(path):
    board = json.loads(path.read_text(encoding="utf-8"))
    assert board["uid"] and board["title"]
    panels = list(_panels(board["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "prometheus", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "prometheus", panel["title"]
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24, panel["title"]


def test_dashboard_uids_are_unique():
    uids = [json.loads(p.read_text(encoding="utf-8"))["uid"] for p in DASHBOARDS]
    assert len(uids) == len(set(uids))


# -- docker-compose ----------------------------------------------------------------


def _compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and run("docker", "compose", "version").returncode == 0:
        return ["docker", "compose"]
    return None


def test_docker_compose_config_is_valid():
    command = _compose_command()
    if command is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose); not checked")
    result = run(*command, "-f", str(COMPOSE), "config", "-q")
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_each_service_from_one_image_without_host_ports():
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services = compose["services"]
    for name in SERVICES:
        service = services[name]
        assert service["command"] == ["python", "-m", f"services.{name}"]
        assert service["image"] == "linkage:latest" and service["build"] == "."
        assert "ports" not in service, f"{name} publishes a host port: --scale would collide"
        env = service["environment"]
        assert env["METRICS_PORT"] == str(DEFAULT_METRICS_PORTS[name])
        # its own database role and broker user, and nobody else's
        url = env.pop(f"{name.upper()}_DATABASE_URL")
        assert url.startswith(f"postgresql+psycopg2://{name}:")
        assert url.endswith(f"@postgres:5432/{name}")
        assert not [variable for variable in env if variable.endswith("_DATABASE_URL")]
        assert env["AMQP_URI"].startswith(f"pyamqp://{name}:")
        assert env["AMQP_URI"].endswith("@rabbitmq:5672/linkage")
        assert service["depends_on"] == {
            "rabbitmq": {"condition": "service_healthy"},
            "postgres": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
            "topology": {"condition": "service_completed_successfully"},
        }
    for name in ("rabbitmq", "postgres"):
        assert services[name]["healthcheck"]["test"]


def test_compose_migrates_every_database_once_before_the_services():
    services = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["python", "-m", "services", "migrate"]
    assert migrate["image"] == "linkage:latest" and migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in SERVICES:
        assert (
            migrate["environment"][f"{name.upper()}_DATABASE_URL"]
            == (services[name]["environment"][f"{name.upper()}_DATABASE_URL"])
        )


def test_compose_mounts_only_files_that_exist():
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def _policies_in_script() -> dict[str, dict]:
    script = (DEPLOY / "rabbitmq" / "policies.sh").read_text(encoding="utf-8")
    found = re.findall(
        r"set_policy -p \"\$vhost\" --priority (\d+) --apply-to queues \\\n"
        r"\s+(\S+) '([^']+)' \\\n\s+'([^']+)'",
        script,
    )
    return {
        name: {"priority": int(priority), "pattern": pattern, "definition": json.loads(body)}
        for priority, name, pattern, body in found
    }


def test_quorum_queues_dead_letter_at_least_once_with_a_crash_guard_only():
    policies = _policies_in_script()
    events = policies["linkage-events"]["definition"]
    assert events["dead-letter-strategy"] == "at-least-once"
    assert events["overflow"] == "reject-publish"  # RabbitMQ's condition for at-least-once
    assert events["dead-letter-exchange"] == "linkage.dead-letter"
    # retries are new messages (shared/retry.py): the limit only stops a crash loop
    assert 5 <= events["delivery-limit"] <= 50
    assert policies["linkage-retries"]["definition"]["dead-letter-strategy"] == "at-least-once"


def test_the_definitions_file_carries_the_policies_of_the_script():
    path = DEPLOY / "rabbitmq" / "definitions.json"
    if not path.exists():
        pytest.skip("no definitions.json")
    loaded = {
        p["name"]: {k: p[k] for k in ("priority", "pattern", "definition")}
        for p in json.loads(path.read_text(encoding="utf-8"))["policies"]
    }
    assert loaded == _policies_in_script()


def test_postgres_init_creates_one_database_per_service():
    sql = (DEPLOY / "postgres" / "init.sql").read_text(encoding="utf-8")
    created = re.findall(r"CREATE DATABASE (\w+)", sql)
    assert sorted(created) == sorted(SERVICES)


@pytest.mark.parametrize("name", SERVICES)
def test_postgres_init_gives_each_database_its_own_role_and_closes_it_to_others(name):
    """Run for real by tests/integration/test_database_roles.py."""
    statements = [
        line.strip()
        for line in (DEPLOY / "postgres" / "init.sql").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("--")
    ]
    assert f"\\getenv {name}_password LINKAGE_DB_PASSWORD_{name.upper()}" in statements
    assert f"CREATE ROLE {name} LOGIN PASSWORD :'{name}_password';" in statements
    assert f"CREATE DATABASE {name} OWNER {name};" in statements
    assert f"REVOKE ALL ON DATABASE {name} FROM PUBLIC;" in statements


def test_compose_postgres_and_migrate_use_the_service_roles():
    services = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    postgres = services["postgres"]["environment"]
    for name in SERVICES:
        password = postgres[f"LINKAGE_DB_PASSWORD_{name.upper()}"]
        url = services["migrate"]["environment"][f"{name.upper()}_DATABASE_URL"]
        assert url == f"postgresql+psycopg2://{name}:{password}@postgres:5432/{name}"


# -- broker users ------------------------------------------------------------------

DEFINITIONS = DEPLOY / "rabbitmq" / "definitions.json"
REPLY_ID = "0b3f6c8e-2f55-4d39-9c4e-52f0a1f1c0de"


def definitions() -> dict:
    return json.loads(DEFINITIONS.read_text(encoding="utf-8"))


def permissions_of(user: str) -> dict[str, str]:
    [entry] = [p for p in definitions()["permissions"] if p["user"] == user]
    assert entry["vhost"] == "linkage"
    return entry


def allows(pattern: str, name: str) -> bool:
    return re.search(pattern, name) is not None  # as RabbitMQ matches


def test_definitions_hold_the_vhost_and_users_without_passwords():
    loaded = definitions()
    assert loaded["vhosts"] == [{"name": "linkage"}]
    users = {user["name"]: user for user in loaded["users"]}
    assert set(users) == {"linkage-admin", *SERVICES, GATEWAY, "platform-12345"}
    assert {user["password_hash"] for user in users.values()} == {""}
    assert users["linkage-admin"]["tags"] == "administrator"
    assert permissions_of("linkage-admin") | {"user": "", "vhost": ""} == {
        "user": "",
        "vhost": "",
        "configure": ".*",
        "write": ".*",
        "read": ".*",
    }


def test_compose_loads_the_definitions_and_gives_every_user_a_password():
    services = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    broker = services["rabbitmq"]
    assert any(v.startswith("./deploy/rabbitmq/definitions.json:") for v in broker["volumes"])
    config = (DEPLOY / "rabbitmq" / "rabbitmq.conf").read_text(encoding="utf-8")
    assert "load_definitions = /etc/rabbitmq/definitions.json" in config.splitlines()
    for user in definitions()["users"]:
        variable = "LINKAGE_BROKER_PASSWORD_" + user["name"].upper().replace("-", "_")
        assert broker["environment"][variable], user["name"]
    topology = services["topology"]
    assert topology["command"] == ["python", "-m", "services", "declare-topology"]
    assert topology["environment"]["AMQP_URI"].startswith("pyamqp://linkage-admin:")


@pytest.mark.parametrize("name", SERVICES)
def test_a_services_broker_user_publishes_and_reads_only_its_own(name):
    """The permissions agree with the services' subscriptions (services.topology()).
    tests/integration/test_broker_permissions.py shows them on the real broker."""
    from services import topology

    subscriptions = topology()
    own_queues = [s.queue for s in subscriptions if s.service == name]
    others_queues = [s.queue for s in subscriptions if s.service != name]
    sources = {s.source for s in subscriptions if s.service == name}
    rights = permissions_of(name)
    mine = [*own_queues, f"rpc-{name}", f"rpc.reply-{name}-{REPLY_ID}"]
    for queue in mine:
        for right in ("configure", "write", "read"):
            assert allows(rights[right], queue), (right, queue)
    theirs = [
        *others_queues,
        *(f"rpc-{other}" for other in SERVICES if other != name),
        f"rpc.reply-standalone_rpc_proxy-{REPLY_ID}",
        "linkage.dead-letter",
        "linkage.retry.1000ms",
    ]
    for queue in theirs:
        assert not allows(rights["configure"], queue), queue
        assert not allows(rights["read"], queue), queue
    for exchange in (f"{name}.events", "nameko-rpc", "linkage.dead-letter", "linkage.retry"):
        assert allows(rights["write"], exchange), exchange
    for exchange in (*(f"{o}.events" for o in SERVICES if o != name), "linkage.retry-return", ""):
        assert not allows(rights["write"], exchange or "amq.default"), exchange
    readable = {s for s in SERVICES if allows(rights["read"], f"{s}.events")}
    assert readable == sources
    topic = {t["exchange"]: t for t in definitions()["topic_permissions"] if t["user"] == name}
    retry_key = f"1000ms.{own_queues[0]}"
    assert allows(topic["linkage.retry"]["write"], retry_key)
    for queue in others_queues:
        assert not allows(topic["linkage.retry"]["write"], f"1000ms.{queue}"), queue
    assert allows(topic["nameko-rpc"]["read"], f"{name}.*")
    assert not allows(topic["nameko-rpc"]["read"], "intake.*" if name != "intake" else "dispatch.*")


def test_a_platforms_broker_user_may_only_call_and_read_its_replies():
    rights = permissions_of("platform-12345")
    reply = f"rpc.reply-standalone_rpc_proxy-{REPLY_ID}"
    for right in ("configure", "write", "read"):
        assert allows(rights[right], reply) and allows(rights[right], "nameko-rpc")
    from services import topology

    refused = [
        *(s.queue for s in topology()),
        *(f"rpc-{s}" for s in SERVICES),
        *(f"{s}.events" for s in SERVICES),
        "linkage.dead-letter",
        "linkage.retry",
        "amq.default",
    ]
    for name in refused:
        for right in ("configure", "write", "read"):
            assert not allows(rights[right], name), (right, name)
    [topic] = [t for t in definitions()["topic_permissions"] if t["user"] == "platform-12345"]
    assert topic["exchange"] == "nameko-rpc"
    assert allows(topic["write"], "intake.submit_report") and not allows(topic["write"], REPLY_ID)
    assert allows(topic["read"], REPLY_ID) and not allows(topic["read"], "intake.*")


def test_the_gateways_broker_user_may_only_call_the_services_and_read_its_replies():
    """tests/integration/test_broker_permissions.py shows it on the real broker."""
    rights = permissions_of(GATEWAY)
    reply = f"rpc.reply-gateway-{REPLY_ID}"
    for right in ("configure", "write", "read"):
        assert allows(rights[right], reply) and allows(rights[right], "nameko-rpc")
    from services import topology

    refused = [
        *(s.queue for s in topology()),
        *(f"rpc-{s}" for s in SERVICES),
        *(f"{s}.events" for s in SERVICES),
        f"rpc.reply-standalone_rpc_proxy-{REPLY_ID}",
        f"rpc.reply-intake-{REPLY_ID}",
        "linkage.dead-letter",
        "linkage.retry",
        "amq.default",
    ]
    for name in refused:
        for right in ("configure", "write", "read"):
            assert not allows(rights[right], name), (right, name)
    [topic] = [t for t in definitions()["topic_permissions"] if t["user"] == GATEWAY]
    assert topic["exchange"] == "nameko-rpc"
    for service in SERVICES:
        assert allows(topic["write"], f"{service}.get_order")
    assert not allows(topic["write"], REPLY_ID) and not allows(topic["write"], "gateway.x")
    assert allows(topic["read"], REPLY_ID) and not allows(topic["read"], "intake.*")


def test_compose_runs_the_gateway_without_a_database_on_its_own_user():
    services = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    gateway = services[GATEWAY]
    assert gateway["command"] == ["python", "-m", "services.gateway"]
    env = gateway["environment"]
    assert env["AMQP_URI"].startswith("pyamqp://gateway:")
    assert env["METRICS_PORT"] == str(DEFAULT_METRICS_PORTS[GATEWAY])
    assert not [variable for variable in env if variable.endswith("_DATABASE_URL")]
    assert "migrate" not in gateway["depends_on"] and "postgres" not in gateway["depends_on"]
    assert gateway["ports"] == [f"{env['GATEWAY_PORT']}:{env['GATEWAY_PORT']}"]
    assert "/readyz" in " ".join(gateway["healthcheck"]["test"])


# -- Kubernetes --------------------------------------------------------------------


def test_kubernetes_manifests_validate():
    documents = [(path.name, doc) for path in k8s_manifests() for doc in load_yaml_documents(path)]
    assert len(documents) >= 2 + 2 * len(SERVICES)
    errors = _validate_k8s(documents)
    assert not errors, "\n".join(errors)


def test_the_gateway_deployment_serves_http_and_metrics_without_a_database():
    docs = {doc["kind"]: doc for doc in load_yaml_documents(K8S / "gateway.yaml")}
    pod = docs["Deployment"]["spec"]["template"]
    assert "initContainers" not in pod["spec"]  # nothing to migrate
    [container] = pod["spec"]["containers"]
    assert container["command"] == ["python", "-m", "services.gateway"]
    env = {e["name"]: e for e in container["env"]}
    assert env["AMQP_URI"]["valueFrom"]["secretKeyRef"]["key"] == "gateway-amqp-uri"
    secret = load_yaml_documents(K8S / "secret.example.yaml")[0]
    assert "gateway-amqp-uri" in secret["stringData"]
    assert not [name for name in env if name.endswith("_DATABASE_URL")]
    assert "LINKAGE_AUTH_SECRET" not in env  # it passes tokens on, never mints one
    port = DEFAULT_METRICS_PORTS[GATEWAY]
    assert env["METRICS_PORT"]["value"] == str(port)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": int(env["GATEWAY_PORT"]["value"]), "metrics": port}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    assert {p["name"] for p in docs["Service"]["spec"]["ports"]} == {"http", "metrics"}
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert "gateway.yaml" in kustomization["resources"]


def test_kustomization_lists_existing_files():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert kustomization["namespace"] == "linkage"
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
    assert {f"{name}.yaml" for name in SERVICES} <= set(kustomization["resources"])
    for generator in kustomization["configMapGenerator"]:
        for entry in generator["files"]:
            assert (K8S / entry.split("=")[-1]).is_file(), entry


def test_kustomize_output_validates(tmp_path):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; the rendered kustomization is not checked")
    result = run(kubectl, "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(K8S))
    assert result.returncode == 0, result.stderr
    documents = [("kustomize", doc) for doc in yaml.safe_load_all(result.stdout) if doc]
    kinds = sorted(doc["kind"] for _, doc in documents)
    assert kinds.count("Deployment") == len(SERVICES) + 1 and "ConfigMap" in kinds  # + gateway
    for _, doc in documents:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "linkage", doc["metadata"]["name"]
    errors = _validate_k8s(documents)
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("name", SERVICES)
def test_each_deployment_runs_its_service_as_the_contract_says(name):
    docs = {doc["kind"]: doc for doc in load_yaml_documents(K8S / f"{name}.yaml")}
    port = DEFAULT_METRICS_PORTS[name]
    pod = docs["Deployment"]["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["image"] == "linkage:latest"
    assert container["command"] == ["python", "-m", f"services.{name}"]
    env = {e["name"]: e for e in container["env"]}
    assert env["METRICS_PORT"]["value"] == str(port)
    assert env["LINKAGE_QUEUE_TYPE"]["value"] == "quorum"
    assert env["AMQP_URI"]["valueFrom"]["secretKeyRef"]["key"] == f"{name}-amqp-uri"
    assert env["AMQP_SSL_CA"]["value"] == "/etc/linkage-tls/ca.crt"
    secret = load_yaml_documents(K8S / "secret.example.yaml")[0]
    for variable in ("AMQP_URI", f"{name.upper()}_DATABASE_URL"):
        reference = env[variable]["valueFrom"]["secretKeyRef"]
        assert reference["name"] == secret["metadata"]["name"]
        assert reference["key"] in secret["stringData"]
    assert container["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert container["resources"]["limits"]["memory"] == "256Mi"
    assert pod["spec"]["terminationGracePeriodSeconds"] == 30
    assert pod["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": "/metrics",
    }
    assert docs["Service"]["spec"]["ports"][0]["port"] == port


@pytest.mark.parametrize("name", SERVICES)
def test_each_deployment_migrates_its_database_before_its_service_starts(name):
    pod = {doc["kind"]: doc for doc in load_yaml_documents(K8S / f"{name}.yaml")}["Deployment"]
    [init] = pod["spec"]["template"]["spec"]["initContainers"]
    container = pod["spec"]["template"]["spec"]["containers"][0]
    assert init["image"] == container["image"]
    assert init["command"] == ["python", "-m", f"services.{name}", "migrate"]
    url = f"{name.upper()}_DATABASE_URL"
    init_env = {e["name"]: e for e in init["env"]}
    assert init_env[url] == {e["name"]: e for e in container["env"]}[url]
    assert init["securityContext"]["readOnlyRootFilesystem"] is True


# -- Kubernetes: the operators' custom resources (issue 15) ---------------------------


def custom_resources(kind: str) -> list[dict]:
    return [
        doc
        for path in k8s_manifests()
        for doc in load_yaml_documents(path)
        if doc["kind"] == kind and is_custom_resource(doc)
    ]


def test_the_custom_resource_check_finds_what_a_crd_would_refuse():
    scaled = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "x"},
        "spec": {"scaleTargetRef": {}, "triggers": [{"type": "rabbitmq"}]},
    }
    assert custom_resource_errors(scaled) == [
        "spec.scaleTargetRef.name is required",
        "spec.triggers[].metadata is required",
    ]
    policy = {
        "apiVersion": "rabbitmq.com/v1beta1",
        "kind": "Policy",
        "metadata": {"name": "p"},
        "spec": {"name": "p", "pattern": "^x", "definition": "{}", "applyTo": "queue"},
    }
    assert custom_resource_errors(policy) == [
        "spec.definition must be a dict, not '{}'",
        "spec.rabbitmqClusterReference.name is required",
        "spec.applyTo: 'queue' is not one of ['all', 'classic_queues', 'exchanges', "
        "'queues', 'quorum_queues']",
    ]
    assert custom_resource_errors({"apiVersion": "example.com/v1", "kind": "Thing"})[0] == (
        "unknown kind Thing of example.com/v1"
    )
    assert not is_custom_resource({"apiVersion": "networking.k8s.io/v1"})
    assert not is_custom_resource({"apiVersion": "apps/v1"})


def test_kustomization_deploys_the_rabbitmq_cluster_and_the_autoscaling():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert {"rabbitmq.yaml", "keda.yaml"} <= set(kustomization["resources"])


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_scales_on_the_backlog_of_its_own_queues(name):
    scaled = {doc["metadata"]["name"]: doc for doc in custom_resources("ScaledObject")}
    spec = scaled[name]["spec"]
    assert spec["scaleTargetRef"] == {"name": name}
    deployment = next(
        doc for doc in load_yaml_documents(K8S / f"{name}.yaml") if doc["kind"] == "Deployment"
    )
    assert deployment["metadata"]["name"] == name
    # two instances at least, as the contract runs every service (section 1)
    assert 2 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
    [trigger] = spec["triggers"]
    assert trigger["type"] == "rabbitmq"
    metadata = trigger["metadata"]
    assert metadata["mode"] == "QueueLength" and float(metadata["value"]) > 0
    # KEDA matches queue names by regex only through the management API
    assert (metadata["useRegex"], metadata["protocol"], metadata["operation"]) == (
        "true",
        "http",
        "sum",
    )
    pattern = re.compile(metadata["queueName"])
    own = [f"rpc-{name}"] + [s.queue for s in topology() if s.service == name]
    others = [f"rpc-{other}" for other in SERVICES if other != name] + [
        s.queue for s in topology() if s.service != name
    ]
    assert [q for q in own if not pattern.search(q)] == []
    assert [q for q in others + ["linkage.dead-letter"] if pattern.search(q)] == []

    [auth] = custom_resources("TriggerAuthentication")
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    secret = load_yaml_documents(K8S / "secret.example.yaml")[0]
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["name"] == secret["metadata"]["name"]
        assert secret["stringData"][ref["key"]].startswith(("http://", "https://"))


def _conf_settings(text: str) -> dict[str, str]:
    settings = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


def test_the_rabbitmq_cluster_has_three_nodes_with_deploy_rabbitmq_settings():
    [cluster] = custom_resources("RabbitmqCluster")
    spec = cluster["spec"]
    assert spec["replicas"] == 3
    # the operator owns the listeners; every other setting is carried over
    wanted = {
        key: value
        for key, value in _conf_settings(
            (RABBITMQ_DIR / "rabbitmq.conf").read_text(encoding="utf-8")
        ).items()
        if not key.startswith(("listeners.", "management.tcp.", "prometheus.tcp."))
    }
    assert _conf_settings(spec["rabbitmq"]["additionalConfig"]) == wanted
    plugins = (RABBITMQ_DIR / "enabled_plugins").read_text(encoding="utf-8")
    assert sorted(spec["rabbitmq"]["additionalPlugins"]) == sorted(
        re.findall(r"\w+", plugins.strip().strip("[].").replace(",", " "))
    )
    anti = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["topologyKey"] == "kubernetes.io/hostname"
    assert anti[0]["labelSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": cluster["metadata"]["name"]
    }


def policies_sh() -> dict[str, dict]:
    """`set_policy` commands of deploy/rabbitmq/policies.sh, by policy name."""
    script = (RABBITMQ_DIR / "policies.sh").read_text(encoding="utf-8").replace("\\\n", " ")
    policies = {}
    for line in script.splitlines():
        words = shlex.split(line, comments=True)
        if "set_policy" not in words:
            continue
        args = words[words.index("set_policy") + 1 :]
        options = {}
        while args[0].startswith("-"):
            options[args[0]], args = args[1], args[2:]
        name, pattern, definition = args
        policies[name] = {
            "name": name,
            "pattern": pattern,
            "definition": json.loads(definition),
            "priority": int(options.get("--priority", 0)),
            "applyTo": options.get("--apply-to", "all"),
            "vhost": options.get("-p", "/"),
        }
    return policies


def test_the_policy_objects_are_the_policies_of_policies_sh():
    expected = policies_sh()
    assert set(expected) == {"linkage-events", "linkage-retries", "linkage-dead-letter"}
    for policy in expected.values():
        # the script takes the vhost as an argument; the platform's is `linkage`
        policy["vhost"] = "linkage"
    [cluster] = custom_resources("RabbitmqCluster")
    found = {}
    for doc in custom_resources("Policy"):
        spec = dict(doc["spec"])
        assert spec.pop("rabbitmqClusterReference") == {"name": cluster["metadata"]["name"]}
        found[spec["name"]] = spec
    assert found == expected
