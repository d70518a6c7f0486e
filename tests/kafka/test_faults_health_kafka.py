"""Health probes on a real broker that goes away: a worker and a sink say not-ready, stay live, and are ready again.

Both run as subprocesses with ``--health-port`` on the fault tests' own broker (``tests/support/fault_broker.py``), idle:
the case where only the broker check would notice the broker gone.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fault_broker import kafka_sh
from tests.support.kafka_topics import fresh_topics

pytestmark = pytest.mark.kafka

PARTITIONS = 3
#: Seconds the probe may take to follow the broker (the brief: within about 10 s, with a margin for a busy machine).
FOLLOWS_WITHIN = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def probe(port: int, path: str) -> tuple[int, str]:
    """Status and reason of ``GET path`` (0 when nothing answers)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as response:
            return response.status, ""
    except urllib.error.HTTPError as error:
        return error.code, str(json.loads(error.read()).get("reason"))
    except OSError:
        return 0, "no answer"


class Probed:
    """A ``consentflow`` subprocess answering health probes on a port of its own."""

    def __init__(self, name: str, arguments: list[str], tmp: Path) -> None:
        self.name = name
        self.port = free_port()
        self.log = tmp / f"{name}.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "consentflow.cli", *arguments, "--health-port", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.live_answers: list[int] = []

    def ask(self, path: str) -> tuple[int, str]:
        assert self.process.poll() is None, f"{self.name} exited with {self.process.returncode}; see {self.log}"
        answer = probe(self.port, path)
        if path == "/live":
            self.live_answers.append(answer[0])
        return answer

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(40)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


def wait_ready(processes: list[Probed], want: int, timeout: float) -> dict[str, tuple[float, str]]:
    """Until every process's /ready answers ``want``: the seconds each took and its last reason; /live asked too."""
    start = time.monotonic()
    took: dict[str, tuple[float, str]] = {}
    while len(took) < len(processes):
        for p in processes:
            p.ask("/live")
            status, reason = p.ask("/ready")
            if status == want and p.name not in took:
                took[p.name] = (time.monotonic() - start, reason)
        waited = time.monotonic() - start
        assert waited < timeout, f"/ready not {want} within {timeout:.0f} s: only {sorted(took)}; see the logs"
        time.sleep(0.5)
    return took


@pytest.fixture
def topics(fault_bootstrap: str) -> Iterator[str]:
    with fresh_topics(fault_bootstrap, "health", partitions=PARTITIONS) as prefix:
        yield prefix


def test_worker_and_sink_not_ready_while_the_broker_is_stopped_and_live_throughout(
    fault_bootstrap: str, topics: str, tmp_path: Path
) -> None:
    common = ["--bootstrap", fault_bootstrap, "--prefix", topics]
    state = ["--data-dir", str(tmp_path / "w"), "--store", "memory", "--partitions", str(PARTITIONS)]
    worker = Probed("worker", ["worker", *common, "--app-id", f"{topics}-worker", *state, "--loglevel", "info"], tmp_path)
    sink = Probed(
        "sink",
        ["sink", *common, "--dsn", f"chdb://{tmp_path / 'chdb'}", "--database", f"{topics}_sink", "--group-id", f"{topics}-sink"],
        tmp_path,
    )
    both = [worker, sink]
    try:
        wait_ready(both, 200, timeout=90)
        for p in both:
            p.live_answers.clear()  # from here on: before, the endpoint may not have been listening yet
        kafka_sh("stop")
        try:
            away = wait_ready(both, 503, timeout=FOLLOWS_WITHIN)
            for name, (_, reason) in away.items():
                assert reason.startswith(f"Kafka at {fault_bootstrap} not answering for "), (name, reason)
            time.sleep(3)
            assert all(p.ask("/ready")[0] == 503 for p in both), "not ready for as long as the broker is away"
        finally:
            kafka_sh("start")
        back = wait_ready(both, 200, timeout=30)
        for p in both:
            assert set(p.live_answers) == {200}, f"{p.name} was not live at some point: {p.live_answers}"
        print(f"not ready after the stop: {away}; ready after the start: {back}")
    finally:
        for p in both:
            p.stop()
