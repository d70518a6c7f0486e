"""The monitoring examples under deploy/, checked against the code and the compose file (no Prometheus or Grafana runs
on the CI machine): every target Prometheus scrapes is a compose service whose command opens that port to the network;
every series the dashboard asks for is one the processes export; the files compose mounts exist.

Each check is also run on a broken copy, to show that it fails on one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from consentflow.runtime.metrics import ApiMetrics, LagCollector, SinkMetrics, WorkerMetrics
from tests.support.paths import DEPLOY

COMPOSE = DEPLOY / "docker-compose.yml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "consentflow.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
_SERIES = re.compile(r"\b(consentflow_[a-z_]+)\b")


def exported() -> set[str]:
    """Every series name the worker, the sink and the API can export."""
    names: set[str] = set()
    for family in (SinkMetrics, WorkerMetrics, ApiMetrics):
        registry = CollectorRegistry()
        family(registry)
        for metric in registry.collect():
            if metric.type == "counter":
                names.add(f"{metric.name}_total")
            elif metric.type == "histogram":
                names.update(f"{metric.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
    names.update(metric.name for metric in LagCollector("g", dict).collect())
    return names


def unknown_series(dashboard: dict[str, Any]) -> list[str]:
    """Series the dashboard's queries name that no process exports."""
    known = exported()
    return [
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in _SERIES.findall(target["expr"])
        if name not in known
    ]


def unopened_targets(prometheus: dict[str, Any], services: dict[str, Any]) -> list[str]:
    """Scrape targets that are no compose service listening on that port on every address."""
    wrong = []
    for job in prometheus["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, port = target.split(":")
                command = services.get(host, {}).get("command", [])
                opens = (
                    "--health-port" in command
                    and command[command.index("--health-port") + 1] == port
                    and "--health-host" in command
                    and command[command.index("--health-host") + 1] == "0.0.0.0"
                )
                if not opens:
                    wrong.append(f"{job['job_name']}: {target}")
    return wrong


def test_every_series_the_dashboard_asks_for_is_exported() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert len(dashboard["panels"]) >= 10
    assert unknown_series(dashboard) == []
    broken = json.loads(DASHBOARD.read_text().replace("consentflow_events_in_total", "consentflow_events_total", 1))
    assert unknown_series(broken) == ["consentflow_events_total"]


def test_the_dashboard_reads_the_provisioned_data_source() -> None:
    (source,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    uids = {target["datasource"]["uid"] for panel in json.loads(DASHBOARD.read_text())["panels"] for target in panel["targets"]}
    assert uids == {source["uid"]}


def test_prometheus_scrapes_the_worker_and_the_sink_where_their_command_opens_metrics() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    prometheus = yaml.safe_load(PROMETHEUS.read_text())
    assert {job["job_name"] for job in prometheus["scrape_configs"]} >= {"consentflow-worker", "consentflow-sink"}
    assert unopened_targets(prometheus, services) == []
    loopback = yaml.safe_load(COMPOSE.read_text().replace('"--health-host", "0.0.0.0"', '"--health-host", "127.0.0.1"', 1))
    assert unopened_targets(prometheus, loopback["services"]) == ["consentflow-worker: worker:8081"]


def test_the_files_compose_mounts_for_prometheus_and_grafana_exist() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / Path(source)).exists(), (name, source)
