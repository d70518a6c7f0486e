"""Hand-over time: how long a stopped worker's or sink's partitions go unowned before its replacement takes them.

    python bench/handover.py --role worker|sink --stop sigterm|kill9 [--rounds 3] [--bootstrap HOST:PORT]
    python bench/handover.py --port 19192 --home /tmp/kafka-handover ...   # a broker of its own, started if down

Each round, in a consumer group of its own over the same fresh topics (a generated dataset; for the sink, the
outputs the processors make of it): process A starts and is waited for until it owns every partition and its group
has committed everything; process B starts in the same group and the two share the partitions; then A is stopped
(SIGTERM, or SIGKILL as a crash) and the clock runs until B alone owns every partition.

"Owns" is the broker's word, read with ``AdminClient.describe_consumer_groups``: the group is Stable and its one
member's assignment holds every partition of the topics the role reads (the worker's input topics, the sink's
output topics and registry). That is exactly the part the stop can change (session expiry or LeaveGroup, then the
rebalance), polled every 0.1 s, and cheap. Waiting for committed offsets to move on newly produced input would add
what follows the hand-over and does not depend on it (a worker's table recovery, a batch's processing) and
needs input produced at the right moment.

Two references from the same run: "start", a process's first assignment in a fresh group (from its launch, so
interpreter and faust start-up included), and "join", the rebalance when B joins (from the first poll that sees
the group leave Stable to Stable with both owning partitions), the floor of a hand-over that starts with a
LeaveGroup. Prints each round and the medians.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # this tree's consentflow, whatever --code runs
from pipeline import worker_command  # shared with the pipeline benchmark

from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.eventfile import read_events
from consentflow.contracts.events import Event
from consentflow.contracts.topics import INPUT_TOPICS, OUTPUT_TOPICS, RECIPIENTS
from consentflow.core.processor import Processor
from consentflow.generator import GeneratorConfig, generate
from consentflow.kafka.admin import create_topics
from consentflow.kafka.group_membership import GroupView, group_view
from consentflow.kafka.lag import group_lag
from consentflow.kafka.producer import EventProducer

KAFKA_SH = Path(__file__).resolve().parent.parent / "deploy" / "kafka.sh"
POLL = 0.1


@dataclass
class Round:
    """One round's figures, in seconds."""

    start: float  # A's launch to its first full assignment
    join: float  # the rebalance when B joins
    handover: float  # A stopped to B owning everything
    a_exited: float | None  # A stopped to A's exit (SIGTERM only)


def wait_for(admin: AdminClient, group_id: str, condition: Callable[[GroupView], bool], timeout: float, what: str) -> float:
    """Poll the group every ``POLL`` seconds until ``condition``; the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition(group_view(admin, group_id)):
            return time.monotonic()
        time.sleep(POLL)
    raise TimeoutError(f"{group_id}: not {what} within {timeout:.0f} s")


def produce_dataset(bootstrap: str, prefix: str, dataset: Path, *, outputs: bool) -> None:
    """The dataset's events to the input topics; with ``outputs``, what the processors make of them to the output
    topics too (the sink's input, without running a worker)."""
    codec = SingleObjectCodec()
    processor = Processor()
    with EventProducer(bootstrap, codec=codec, prefix=prefix) as producer:
        for topic, record in read_events(dataset):
            producer.send(Event(topic, record))
            if outputs:
                for out_topic, out_record in processor.process(topic.short_name, record).records:
                    value = codec.encode(out_topic, out_record, trusted=True)
                    producer.send_bytes(f"{prefix}.{out_topic}", out_record["subject_id"].encode(), value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--port", type=int, help="a broker of its own on this port (started if down, left running)")
    parser.add_argument("--home", help="that broker's KAFKA_HOME_DIR")
    parser.add_argument("--role", choices=["worker", "sink"], required=True)
    parser.add_argument("--stop", choices=["sigterm", "kill9"], required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--subjects", type=int, default=200)
    parser.add_argument("--code", type=Path, help="the tree whose consentflow the processes run (default: this one)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds any one wait may take")
    args = parser.parse_args()
    bootstrap = args.bootstrap
    if args.port is not None:
        bootstrap = f"127.0.0.1:{args.port}"
        try:
            AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=3)
        except KafkaException:
            env = {**os.environ, "KAFKA_PORT": str(args.port), "KAFKA_HOME_DIR": args.home or ""}
            subprocess.run(["bash", str(KAFKA_SH), "start"], env=env, check=True, timeout=180)
    tmp = Path(tempfile.mkdtemp(prefix="handover-"))
    generate(GeneratorConfig(subjects=args.subjects, days=60, seed=7), tmp / "events.avro", None)
    prefix = f"ho{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, prefix=prefix)
    produce_dataset(bootstrap, prefix, tmp / "events.avro", outputs=args.role == "sink")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if args.role == "worker":
        topics = [t.name(prefix) for t in INPUT_TOPICS if t.key_field == "subject_id"]
    else:
        topics = [t.name(prefix) for t in (*OUTPUT_TOPICS, RECIPIENTS)]
    metadata = admin.list_topics(timeout=10).topics
    partitions = {(topic, p) for topic in topics for p in metadata[topic].partitions}

    def launch(group_id: str, name: str) -> subprocess.Popen[bytes]:
        if args.role == "worker":
            command = worker_command(bootstrap, prefix, tmp / name, "--batch-size", "500", "--loglevel", "info")
            command[command.index("--app-id") + 1] = group_id
        else:
            command = [sys.executable, "-m", "consentflow.cli", "sink", "--bootstrap", bootstrap, "--prefix", prefix]
            command += ["--dsn", f"chdb://{tmp / (name + '-chdb')}", "--database", "handover", "--group-id", group_id]
        log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115 -- lives as long as the process
        code = (args.code or Path(__file__).resolve().parent.parent).resolve()
        env = {**os.environ, "PYTHONPATH": str(code)}  # and run there: ``-m`` puts the working directory first
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env, cwd=code)

    rounds: list[Round] = []
    running: list[subprocess.Popen[bytes]] = []
    try:
        for n in range(1, args.rounds + 1):
            group_id = f"{prefix}-{args.role}-{n}"

            def until(condition: Callable[[GroupView], bool], what: str) -> float:
                return wait_for(admin, group_id, condition, args.timeout, what)  # noqa: B023 -- called in this round

            launched = time.monotonic()
            a = launch(group_id, f"a{n}")
            running.append(a)
            start = until(lambda view: view.shared_by(1, partitions), "owned by A") - launched
            deadline = time.monotonic() + args.timeout
            while group_lag(bootstrap, group_id, topics) > 0:
                if time.monotonic() > deadline or a.poll() is not None:
                    raise TimeoutError(f"A did not catch up (exit {a.poll()}); see {tmp}/a{n}.log")
                time.sleep(0.5)
            b = launch(group_id, f"b{n}")
            running.append(b)
            left_stable = until(lambda view: not view.stable or len(view.shares) == 2, "rebalancing")
            join = until(lambda view: view.shared_by(2, partitions), "shared by A and B") - left_stable
            time.sleep(2)  # B settled: its first batches or inserts done
            stopped = time.monotonic()
            os.killpg(a.pid, signal.SIGTERM if args.stop == "sigterm" else signal.SIGKILL)
            handover = until(lambda view: view.shared_by(1, partitions), "owned by B") - stopped
            a.wait(60)
            a_exited = time.monotonic() - stopped if args.stop == "sigterm" else None
            if args.stop == "sigterm" and a.returncode != 0:
                print(f"round {n}: A exited {a.returncode} after SIGTERM; see {tmp}/a{n}.log")
            os.killpg(b.pid, signal.SIGTERM)
            b.wait(60)
            running.clear()
            figures = Round(start, join, handover, a_exited)
            rounds.append(figures)
            exited = "" if a_exited is None else f", A exited after {a_exited:.1f} s"
            print(f"round {n}: hand-over {handover:.1f} s{exited} (start {start:.1f} s, join {join:.1f} s)", flush=True)
    finally:
        for process in running:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        mine = [name for name in admin.list_topics(timeout=10).topics if name.startswith((f"{prefix}.", f"{prefix}-"))]
        if mine:
            admin.delete_topics(mine, operation_timeout=30)
    if rounds:
        median = statistics.median
        print(
            f"{args.role} {args.stop}, {len(rounds)} rounds: hand-over median {median(r.handover for r in rounds):.1f} s "
            f"(range {min(r.handover for r in rounds):.1f}-{max(r.handover for r in rounds):.1f}); "
            f"references: start {median(r.start for r in rounds):.1f} s, join {median(r.join for r in rounds):.1f} s "
            f"(logs: {tmp})"
        )
    return 0 if len(rounds) == args.rounds else 1


if __name__ == "__main__":
    sys.exit(main())
