"""The deploy/ examples, checked as text: neither systemd nor Docker nor Kubernetes runs on the CI machine.

- the systemd units pass ``systemd-analyze verify`` with nothing to say (it exits 0 even on an unknown key or a
  value it cannot parse, printing "ignoring": any line it prints fails the test), restart on failure and outlast
  the worker's bounded stop;
- the compose file is valid against the Compose specification's JSON Schema (vendored, ``tests/data/compose_spec``);
- the Kubernetes example parses, and in every example the probes ask the port and paths the command opens.

Each checker is also run on a broken copy, to show that it fails on one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from consentflow.runtime.health import STALE_AFTER
from consentflow.streams.worker import STOP_WITHIN
from tests.support.paths import DATA, DEPLOY

UNITS = DEPLOY / "systemd"
COMPOSE = DEPLOY / "docker-compose.yml"
KUBERNETES = DEPLOY / "kubernetes" / "consentflow.yaml"
COMPOSE_SCHEMA = DATA / "compose_spec" / "compose-spec.json"
INSTALLED_AT = "/opt/consentflow/bin/consentflow"  # the units' example path, absent here


def systemd_analyze() -> str:
    """The path of systemd-analyze; skips without it (fails when CI=true, where it must run)."""
    found = shutil.which("systemd-analyze")
    if found is None:
        message = "systemd-analyze is not installed (apt-get install systemd)"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def verify(units: Path, tmp: Path) -> list[str]:
    """What ``systemd-analyze verify`` says of the unit files in ``units``: a copy whose ExecStart runs this
    environment's ``consentflow`` (verify checks the binary exists), so that only the unit's own text is judged."""
    consentflow = Path(sys.executable).parent / "consentflow"
    assert consentflow.exists(), f"{consentflow}: the project is not installed in this environment"
    copies = []
    for unit in sorted(units.iterdir()):
        copy = tmp / unit.name
        copy.write_text(unit.read_text().replace(INSTALLED_AT, str(consentflow)))
        copies.append(str(copy))
    run = subprocess.run([systemd_analyze(), "verify", *copies], capture_output=True, text=True, timeout=60)
    said = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    if run.returncode != 0:
        said.append(f"exit status {run.returncode}")
    return said


def unit_settings(path: Path) -> dict[str, str]:
    """``Key=value`` lines of a unit file (the last one wins, as in systemd for these keys)."""
    settings = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


def health_port(command: list[str] | str) -> int:
    """The ``--health-port`` of a command line."""
    words = command.split() if isinstance(command, str) else command
    return int(words[words.index("--health-port") + 1])


def seconds(duration: str) -> float:
    """A systemd or Compose duration such as 40, 40s, 1min or 1m30s in seconds."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", duration)
    assert parts, duration
    return sum(float(number) * units[unit] for number, unit in parts)


def compose_errors(document: Any) -> list[str]:
    """Where ``document`` breaks the Compose specification's JSON Schema, one line each."""
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    # Its $schema, "https://json-schema.org/draft-07/schema" without the "#", is not a name jsonschema knows.
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_the_systemd_units_verify_without_a_word(tmp_path: Path) -> None:
    assert verify(UNITS, tmp_path) == []


def test_systemd_verify_fails_on_a_broken_unit(tmp_path: Path) -> None:
    broken = tmp_path / "units"
    shutil.copytree(UNITS, broken)
    worker = broken / "consentflow-worker.service"
    worker.write_text(worker.read_text().replace("Restart=on-failure", "Restart=on-falure"))
    (tmp_path / "checked").mkdir()
    said = verify(broken, tmp_path / "checked")
    assert any("on-falure" in line for line in said), said


def test_the_units_restart_on_failure_and_outlast_the_bounded_stop() -> None:
    worker = unit_settings(UNITS / "consentflow-worker.service")
    sink = unit_settings(UNITS / "consentflow-sink.service")
    for unit in (worker, sink):
        assert unit["Restart"] == "on-failure"
        assert unit["KillSignal"] == "SIGTERM"
        assert unit["ExecStart"].startswith(INSTALLED_AT + " ")
    assert seconds(worker["TimeoutStopSec"]) > STOP_WITHIN, "systemd's SIGKILL must come after the worker's own bound"
    liveness = unit_settings(UNITS / "consentflow-worker-liveness.service")
    assert f"http://127.0.0.1:{health_port(worker['ExecStart'])}/live" in liveness["ExecStart"]
    timer = unit_settings(UNITS / "consentflow-worker-liveness.timer")
    assert seconds(timer["OnUnitActiveSec"]) <= STALE_AFTER, "a stuck worker is found within a minute"


def test_the_compose_file_follows_the_compose_specification() -> None:
    assert compose_errors(yaml.safe_load(COMPOSE.read_text())) == []


def test_the_compose_schema_check_fails_on_a_broken_file() -> None:
    broken = COMPOSE.read_text().replace("      start_period: 60s", "      start_period: 60s\n      start_periods: 60s", 1)
    assert broken != COMPOSE.read_text()
    errors = compose_errors(yaml.safe_load(broken))
    assert any("start_periods" in e for e in errors), errors
    assert compose_errors(yaml.safe_load(COMPOSE.read_text().replace("retries: 3", "retries: [3]", 1)))


def test_the_compose_probes_ask_the_port_the_command_opens() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for name in ("worker", "sink"):
        service = services[name]
        port = health_port(service["command"])
        assert service["healthcheck"]["test"][0] == "CMD"
        assert f"'http://127.0.0.1:{port}/ready'" in " ".join(service["healthcheck"]["test"]), name
        assert seconds(service["stop_grace_period"]) > STOP_WITHIN, name


def test_the_kubernetes_probes_ask_the_port_and_host_the_command_opens() -> None:
    deployments = list(yaml.safe_load_all(KUBERNETES.read_text()))
    assert [d["kind"] for d in deployments] == ["Deployment", "Deployment"]
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] > STOP_WITHIN
        (container,) = pod["containers"]
        args = container["args"]
        assert args[args.index("--health-host") + 1] == "0.0.0.0", "the kubelet probes the pod's IP, not its loopback"
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe, path in (("livenessProbe", "/live"), ("readinessProbe", "/ready")):
            get = container[probe]["httpGet"]
            assert get["path"] == path and ports[get["port"]] == health_port(args), (deployment["metadata"]["name"], probe)
        assert (
            deployment["spec"]["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        )
