"""One sink left running while its broker stops a little longer than the sink's session: does it deliver everything?

Run against a broker of its own, never the shared one (it stops and starts it):
    KAFKA_PORT=19792 KAFKA_HOME_DIR=/tmp/kafka-sinkwedge bash deploy/kafka.sh start
    .venv/bin/python bench/sink_wedge_soak.py --port 19792 --home /tmp/kafka-sinkwedge [--rounds 10] [--code DIR]

Each round creates fresh topics and starts ``--sinks`` ``consentflow sink`` processes, each of a group of its own
(from ``--code``, default this checkout), while the outputs of a generated dataset are produced to them over
``--spread`` seconds, as a worker would; somewhere in that stream the broker stops for 7-12 s (``--stop-min`` .. ``--stop-max``, past the sink's 6 s session) and
starts again. A sink passes when the same process has committed every output within ``--timeout`` seconds of
the last output being sent. A sink that misses gets a py-spy dump (when ``--py-spy`` exists) beside its log.
``--debug`` turns librdkafka's ``cgrp,consumer,topic,fetch`` debug on in the sink, for diagnosis.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient

from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.eventfile import read_events
from consentflow.contracts.topics import OUTPUT_TOPICS
from consentflow.core.processor import Processor
from consentflow.generator import GeneratorConfig, generate
from consentflow.kafka.admin import create_topics
from consentflow.kafka.lag import group_lag
from consentflow.kafka.producer import EventProducer

KAFKA_SH = Path(__file__).resolve().parent.parent / "deploy" / "kafka.sh"
Output = tuple[str, bytes, bytes]  # topic short name, key, value

# The sink with librdkafka's debug contexts on and every client line kept (no once-per-window filter).
DEBUG_SINK = """
import logging, sys
import consentflow.kafka.quiet_logs, consentflow.sinks.consumer as c
logging.getLogger("librdkafka").setLevel(logging.DEBUG)
consentflow.kafka.quiet_logs.quiet_client_logs = lambda *a, **k: None
plain = c.client_config
c.client_config = lambda b, s=None: plain(b, {**(s or {}), "debug": "cgrp,consumer,topic,fetch"})
from consentflow.cli import main
sys.argv[0] = "consentflow"
main()
"""


def dataset_outputs(subjects: int, tmp: Path) -> list[Output]:
    """Every output the processors make of a generated dataset, encoded as a worker sends them."""
    generate(GeneratorConfig(subjects=subjects, days=150, seed=23), tmp / "events.avro", None)
    processor, codec = Processor(), SingleObjectCodec()
    outputs: list[Output] = []
    for topic, record in read_events(tmp / "events.avro"):
        for short, out in processor.process(topic.short_name, record):
            outputs.append((short, str(out["subject_id"]).encode(), codec.encode(short, dict(out), trusted=True)))
    return outputs


def delete_topics(bootstrap: str, prefix: str) -> None:
    """Every topic of ``prefix``."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    mine = [name for name in admin.list_topics(timeout=30).topics if name.startswith(f"{prefix}.")]
    for future in admin.delete_topics(mine, operation_timeout=60).values() if mine else []:
        future.result()


def produce_over(bootstrap: str, prefix: str, outputs: list[Output], seconds: float) -> None:
    """``outputs`` to ``prefix``'s output topics in 48 even slices over ``seconds``, as a worker sends them."""
    names = {t.short_name: t.name(prefix) for t in OUTPUT_TOPICS}
    with EventProducer(bootstrap, codec=SingleObjectCodec(), prefix=prefix) as producer:
        chunk = max(1, len(outputs) // 48)
        for i in range(0, len(outputs), chunk):
            for short, key, value in outputs[i : i + chunk]:
                producer.send_bytes(names[short], key, value)
            time.sleep(seconds / 48)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=19792)
    parser.add_argument("--home", required=True, help="the broker's KAFKA_HOME_DIR (its own, not the shared one)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--subjects", type=int, default=400)
    parser.add_argument("--spread", type=float, default=24.0, help="seconds over which the outputs are produced")
    parser.add_argument("--stop-min", type=float, default=7.0)
    parser.add_argument("--stop-max", type=float, default=12.0)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds after the last output to catch up")
    parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parent.parent, help="checkout to run")
    parser.add_argument("--debug", action="store_true", help="librdkafka debug lines in the sink's log")
    parser.add_argument("--py-spy", default="/tmp/spy/bin/py-spy")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--sinks", type=int, default=1, help="sinks per round, each of a group of its own")
    args = parser.parse_args()
    logging.getLogger("librdkafka").setLevel(logging.CRITICAL)  # this script's producer: the broker away is expected
    rng = random.Random(args.seed)
    bootstrap = f"127.0.0.1:{args.port}"
    kafka_env = {**os.environ, "KAFKA_PORT": str(args.port), "KAFKA_HOME_DIR": args.home}
    # The sink runs in tmp: ``python -c`` puts the working directory before PYTHONPATH, which must choose the code.
    sink_env = {**os.environ, "PYTHONPATH": str(args.code), "CONSENTFLOW_PURE_PYTHON": "1"}
    tmp = Path(tempfile.mkdtemp(prefix="sink-wedge-"))
    outputs = dataset_outputs(args.subjects, tmp)
    print(f"{len(outputs)} outputs; logs in {tmp}", flush=True)

    def kafka(*command: str) -> None:
        subprocess.run(["bash", str(KAFKA_SH), *command], env=kafka_env, check=True, capture_output=True, timeout=180)

    passed = 0
    for round_ in range(1, args.rounds + 1):
        prefix = f"wedge{uuid.uuid4().hex[:8]}"
        create_topics(bootstrap, prefix=prefix)
        names = [t.name(prefix) for t in OUTPUT_TOPICS]
        head = [sys.executable, "-c", DEBUG_SINK] if args.debug else [sys.executable, "-m", "consentflow.cli"]
        sinks: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
        for n in range(args.sinks):  # each of a group of its own: as many chances of a stuck consumer per outage
            group, log_path = f"{prefix}-sink{n}", tmp / f"round{round_}-sink{n}.log"
            cli = ["sink", "--bootstrap", bootstrap, "--prefix", prefix, "--dsn", f"chdb://{tmp / f'chdb{round_}-{n}'}"]
            cli += ["--database", prefix, "--group-id", group]
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    [*head, *cli], stdout=log, stderr=subprocess.STDOUT, env=sink_env, cwd=tmp, start_new_session=True
                )
            sinks.append((group, log_path, process))
        producing = threading.Thread(target=produce_over, args=(bootstrap, prefix, outputs, args.spread), daemon=True)
        producing.start()
        stop_at = rng.uniform(3.0, args.spread - 6.0)
        stop_for = rng.uniform(args.stop_min, args.stop_max)
        time.sleep(stop_at)
        kafka("stop")
        time.sleep(stop_for)
        kafka("start")
        back = time.monotonic()
        producing.join()
        deadline = time.monotonic() + args.timeout
        for n, (group, log_path, process) in enumerate(sinks):
            lag = -1
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    lag = group_lag(bootstrap, group, names)
                except Exception:  # noqa: BLE001 -- the broker still coming back: ask again
                    lag = -1
                if lag == 0:
                    break
                time.sleep(1)
            took = time.monotonic() - back
            ok = lag == 0 and process.poll() is None
            text = log_path.read_text(errors="replace")
            notes = [f"SESSTMOUT {text.count('SESSTMOUT')}", f"recreated {text.count('recreating its consumer')}"]
            if not ok and Path(args.py_spy).exists() and process.poll() is None:
                dump = subprocess.run([args.py_spy, "dump", "--pid", str(process.pid)], capture_output=True, text=True)
                log_path.with_suffix(".py-spy").write_text(dump.stdout + dump.stderr)
            outcome = (
                f"caught up within {took:.1f} s of the broker's return" if ok else f"MISSED (lag {lag}, exit {process.poll()})"
            )
            print(
                f"round {round_} sink {n}: stop at {stop_at:.1f} s for {stop_for:.1f} s: {outcome}; {', '.join(notes)}",
                flush=True,
            )
            passed += ok
        for _group, _log, process in sinks:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for _group, _log, process in sinks:
            try:
                process.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        delete_topics(bootstrap, prefix)  # a broker holding thousands of partitions restarts slowly
    total = args.rounds * args.sinks
    print(f"{passed} of {total} sinks delivered everything across their outage, each the same process (logs: {tmp})")
    return 0 if passed == total else 1


if __name__ == "__main__":
    sys.exit(main())
