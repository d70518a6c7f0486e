"""One worker left running across repeated broker restarts: does it keep processing, every time, without help?

Run against a broker of its own, never the shared one (it restarts it):
    KAFKA_PORT=19092 KAFKA_HOME_DIR=/tmp/kafka-soak bash deploy/kafka.sh start
    .venv/bin/python bench/restart_soak.py --port 19092 --home /tmp/kafka-soak [--rounds 10]

Produces a generated dataset in ``rounds + 1`` slices to fresh topics. One worker starts on the first
slice; each round restarts the broker (``deploy/kafka.sh restart``), produces the next slice, and waits
until the worker's group has committed every input. A round counts when the same worker process
caught up; the script prints the count, each round's catch-up time and the lines its worker logged in that
round (the outage, quiet or not: ``consentflow.kafka.quiet_logs``), and exits non-zero on a miss.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from pipeline import worker_command  # shared with the pipeline benchmark

from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.eventfile import read_events
from consentflow.contracts.events import Event
from consentflow.contracts.topics import INPUT_TOPICS
from consentflow.generator import GeneratorConfig, generate
from consentflow.kafka.admin import create_topics
from consentflow.kafka.lag import group_lag
from consentflow.kafka.producer import EventProducer

KAFKA_SH = Path(__file__).resolve().parent.parent / "deploy" / "kafka.sh"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=19092)
    parser.add_argument("--home", required=True, help="the broker's KAFKA_HOME_DIR (its own, not the shared one)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--subjects", type=int, default=300)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a round may take to catch up")
    args = parser.parse_args()
    bootstrap = f"127.0.0.1:{args.port}"
    env = {**os.environ, "KAFKA_PORT": str(args.port), "KAFKA_HOME_DIR": args.home}
    tmp = Path(tempfile.mkdtemp(prefix="restart-soak-"))
    generate(GeneratorConfig(subjects=args.subjects, days=120, seed=5), tmp / "events.avro", None)
    events = list(read_events(tmp / "events.avro"))
    registry = [e for e in events if e[0].compacted]
    rest = [e for e in events if not e[0].compacted]
    slices = [registry + rest[: len(rest) // (args.rounds + 1)]]
    step = len(rest) // (args.rounds + 1)
    slices += [rest[step * i : step * (i + 1) if i < args.rounds else len(rest)] for i in range(1, args.rounds + 1)]
    prefix = f"soak{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, prefix=prefix)
    inputs = [t.name(prefix) for t in INPUT_TOPICS if t.key_field == "subject_id"]

    def produce(part: list[tuple[object, dict[str, object]]]) -> None:
        with EventProducer(bootstrap, codec=SingleObjectCodec(), prefix=prefix) as producer:
            for topic, record in part:
                producer.send(Event(topic, record))  # type: ignore[arg-type]

    def caught_up(worker: subprocess.Popen[bytes]) -> float | None:
        start = time.monotonic()
        while time.monotonic() - start < args.timeout:
            if worker.poll() is not None:
                return None
            try:
                if group_lag(bootstrap, f"{prefix}-w", inputs) == 0:
                    return time.monotonic() - start
            except Exception:  # noqa: BLE001 -- the broker is still coming back: ask again
                pass
            time.sleep(1)
        return None

    produce(slices[0])
    log = open(tmp / "worker.log", "wb")  # noqa: SIM115 -- lives as long as the worker
    worker = subprocess.Popen(
        worker_command(bootstrap, prefix, tmp / "w", "--batch-size", "500"),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    passed = 0
    logged: list[int] = []

    def log_lines() -> int:
        return (tmp / "worker.log").read_bytes().count(b"\n")

    try:
        if caught_up(worker) is None:
            print(f"the worker did not catch up on the first slice; see {tmp}/worker.log")
            return 1
        for round_ in range(1, args.rounds + 1):
            lines_before = log_lines()
            subprocess.run(["bash", str(KAFKA_SH), "restart"], env=env, check=True, capture_output=True, timeout=180)
            produce(slices[round_])
            took = caught_up(worker)
            alive = worker.poll() is None
            logged.append(log_lines() - lines_before)
            outcome = "MISSED" if took is None else f"caught up in {took:.1f} s"
            print(f"round {round_}: {outcome}, worker alive: {alive}, log lines: {logged[-1]}", flush=True)
            if took is None or not alive:
                break
            passed += 1
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(60)
    print(f"{passed} of {args.rounds} restarts survived by the same worker (log: {tmp}/worker.log)")
    if logged:
        print(f"worker log lines per round: {sum(logged) / len(logged):.0f} on average, {max(logged)} at most")
    return 0 if passed == args.rounds else 1


if __name__ == "__main__":
    sys.exit(main())
