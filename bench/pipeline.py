"""The pipeline's throughput on one machine, with the raw limit measured in the same run.

Run (the Kafka broker must be up: bash deploy/kafka.sh start):
    .venv/bin/python bench/pipeline.py [--subjects N] [--days D] [--metrics]

``--metrics``: (b)'s worker and sink count their metrics and serve them (``--health-port``), scraped every 15 s as
Prometheus would; run alternately with and without it to see what metrics cost.

Prints:
(a) raw ceiling: confluent-kafka batch consume + fastavro (single-object) decode of the input topics, events/s
    (fastavro's reader itself, as the issue defines the ceiling: the pipeline reads through the codec's faster plan);
(a') faust's ceiling: the same topics through faust agents that only take batches (bench/faust_ceiling.py),
    events/s: what faust's per-message path allows before any of our code runs; with the worker's bypass (its drain
    loop and batches from the agents' queues) and with faust's own path (its per-message race, its stream's
    ``take_events``: ``--no-drain-bypass``), both on uvloop as the worker runs;
(b) the faust worker end to end into ClickHouse (worker + sink processes, until both groups have caught up), events/s,
    and its ratio to (a); with and without the bypass, each with a worker and a sink of their own (topics, groups,
    database),
    and the CPU each used per event beside what the processors alone use (``Processor.process`` in one process);
(c0) the raw limit of (c)'s first stage: the container file decoded alone by fastavro in one process, events/s;
(c) the embedded runner from the container file into chDB, events/s (decoded by a child process, as
    ``consentflow run`` does), and its ratio to (c0); the CPU it used per event, and the rate that CPU allows
    on this machine's cores (what bounds (c) when the cores are busy);
(c') the same file as ``consentflow run`` runs it: (c), and the subjects' states saved beside the tables so that a
    later run continues from them (``streams/continued_run.py``), events/s, and its ratio to (c0);
(d) peak RSS of each (the worker and the sink sampled with psutil; the embedded run in its own process).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import fastavro
import psutil
from confluent_kafka import Consumer
from worker_stages import stage_shares  # bench/, beside this script

from consentflow.contracts.codec import SINGLE_OBJECT_MAGIC, SingleObjectCodec
from consentflow.contracts.eventfile import read_events
from consentflow.contracts.events import Event
from consentflow.contracts.releases import default_store
from consentflow.contracts.topics import INPUT_TOPICS, OUTPUT_TOPICS
from consentflow.generator import GeneratorConfig, generate
from consentflow.kafka.admin import create_topics
from consentflow.kafka.lag import end_offsets, group_lag
from consentflow.kafka.producer import EventProducer
from consentflow.runtime import native


class PeakRss:
    """Samples a process tree's resident memory in the background."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self.process.memory_info().rss + sum(c.memory_info().rss for c in self.process.children(recursive=True))
                self.peak = max(self.peak, rss)
            except psutil.Error:
                return
            time.sleep(0.2)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def worker_command(bootstrap: str, prefix: str, data_dir: Path, *extra: str, app_id: str | None = None) -> list[str]:
    """The command line of one ``consentflow worker`` over ``prefix``'s topics (app id ``app_id``, else ``PREFIX-w``)."""
    return [
        sys.executable,
        "-m",
        "consentflow.cli",
        "worker",
        "--bootstrap",
        bootstrap,
        "--prefix",
        prefix,
        "--app-id",
        app_id or f"{prefix}-w",
        "--data-dir",
        str(data_dir),
        *extra,
    ]


def free_port() -> int:
    """A loopback port nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def health_options(ports: tuple[int, int] | None, which: int) -> list[str]:
    """``--health-port`` for the worker (0) or the sink (1) when metrics are on, else nothing."""
    return [] if ports is None else ["--health-port", str(ports[which])]


class Scraper:
    """GET /metrics of each port every 15 s (Prometheus's default interval), on a thread, until ``stop``."""

    def __init__(self, ports: tuple[int, ...], every: float = 15.0) -> None:
        self._stop = threading.Event()
        self.scrapes = 0
        self._thread = threading.Thread(target=self._run, args=(ports, every), daemon=True)
        self._thread.start()

    def _run(self, ports: tuple[int, ...], every: float) -> None:
        import urllib.request

        while not self._stop.wait(every):
            for port in ports:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
                        answer.read()
                    self.scrapes += 1
                except OSError:
                    pass  # not listening yet

    def stop(self) -> int:
        """Stop scraping; how many scrapes answered."""
        self._stop.set()
        self._thread.join()
        return self.scrapes


def raw_consume_decode(bootstrap: str, topics: dict[str, str], expected: int) -> float:
    """(a): consume every input message in batches and decode it with fastavro; events/s.

    fastavro's reader, as the issue defines the raw ceiling: the pipeline itself reads through the codec's
    plan (``consentflow.contracts.avro_plan``), about twice as fast, which would raise the ceiling it is measured against.
    """
    contracts = {contract.fingerprint: contract.parsed for contract in default_store().all()}
    header = len(SINGLE_OBJECT_MAGIC) + 8
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-raw-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.min.bytes": 1 << 20,
        }
    )
    consumer.subscribe(list(topics))
    seen = 0
    began = None
    while seen < expected:
        batch = consumer.consume(num_messages=10_000, timeout=2.0)
        if began is None and batch:
            began = time.perf_counter()
        for message in batch:
            if message.error() is None:
                value = message.value() or b""
                fastavro.schemaless_reader(io.BytesIO(value[header:]), contracts[value[2:header]], None)
                seen += 1
    elapsed = time.perf_counter() - (began or time.perf_counter())
    consumer.close()
    return seen / elapsed


#: (a') and (b) are measured with the worker's drain bypass and with faust's own per-message race.
DRAINS = ("bypass", "faust")
DRAIN_NAMES = {"bypass": "bypass", "faust": "faust's own path"}


def faust_ceiling(bootstrap: str, prefix: str, expected: int, drain: str) -> float:
    """(a'): the input topics through faust agents that only take batches (bench/faust_ceiling.py), events/s."""
    ceiling = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("faust_ceiling.py")), prefix, str(expected), "worker", "-l", "warning"],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "BOOTSTRAP": bootstrap, "CEILING_DRAIN": drain},
    )
    # faust redirects stdout into its log (stderr), with escape codes: find our line.
    (report,) = [line[line.index("{") :] for line in (ceiling.stdout + ceiling.stderr).splitlines() if '"events"' in line]
    return expected / float(json.loads(report)["seconds"])


@dataclass(frozen=True)
class PipelineRun:
    """(b) once: events/s from the first output (and from the worker's start), CPU seconds per event, peak RSS."""

    rate: float
    with_startup: float
    scrapes: int | None
    worker_cpu: float
    sink_cpu: float
    peak_worker: int
    peak_sink: int
    stages: dict[str, float] | None  # share of the worker's CPU samples per stage (--profile-worker)


def tree_cpu(process: psutil.Process) -> float:
    """CPU seconds a process and its children used so far (user and system, every thread)."""
    total = 0.0
    for each in (process, *process.children(recursive=True)):
        try:
            times = each.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def worker_and_sink(
    bootstrap: str,
    prefix: str,
    tmp: Path,
    worker_inputs: list[str],
    worker_events: int,
    drain: str,
    metrics: bool,
    profile: Path | None = None,
) -> PipelineRun:
    """(b): a worker (app id ``PREFIX-w-DRAIN``) and a sink (its own group and database) until both caught up."""
    cli = [sys.executable, "-m", "consentflow.cli"]
    app_id, group = f"{prefix}-w-{drain}", f"{prefix}-sink-{drain}"
    began = time.perf_counter()
    ports = (free_port(), free_port()) if metrics else None
    extra = [*(["--no-drain-bypass"] if drain == "faust" else []), *health_options(ports, 0)]
    worker = subprocess.Popen(
        worker_command(bootstrap, prefix, tmp / f"worker-{drain}", *extra, app_id=app_id),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    sink = subprocess.Popen(
        [*cli, "sink", "--bootstrap", bootstrap, "--prefix", prefix, "--dsn", f"chdb://{tmp / f'kafka-chdb-{drain}'}",
         "--group-id", group, *health_options(ports, 1)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    scraping = Scraper(ports) if ports is not None else None
    worker_rss, sink_rss = PeakRss(worker.pid), PeakRss(sink.pid)
    raw = (profile or tmp) / f"worker-{drain}.raw"
    spy = None
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        spy_command = [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(worker.pid)]
        spy_command += ["--format", "raw", "--threads", "--rate", "250", "--nonblocking", "-o", str(raw)]
        spy = subprocess.Popen(spy_command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    outputs = [t.name(prefix) for t in OUTPUT_TOPICS]
    first_output = None
    before = sum(end_offsets(bootstrap, outputs).values())  # an earlier run's outputs are on the topics already
    while True:
        time.sleep(0.5)
        if first_output is None and sum(end_offsets(bootstrap, outputs).values()) > before:
            first_output = time.perf_counter()
        if group_lag(bootstrap, app_id, worker_inputs) == 0 and group_lag(bootstrap, group, outputs) == 0:
            break
    done = time.perf_counter()
    worker_cpu, sink_cpu = tree_cpu(psutil.Process(worker.pid)), tree_cpu(psutil.Process(sink.pid))
    scrapes = scraping.stop() if scraping is not None else None
    for process in (worker, sink):
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)
    if spy is not None:
        spy.wait(60)  # py-spy writes its file once the worker has exited
    return PipelineRun(
        rate=worker_events / (done - (first_output or began)),
        with_startup=worker_events / (done - began),
        scrapes=scrapes,
        worker_cpu=worker_cpu / worker_events,
        sink_cpu=sink_cpu / worker_events,
        peak_worker=worker_rss.stop(),
        peak_sink=sink_rss.stop(),
        stages=stage_shares(raw) if spy is not None and raw.exists() else None,
    )


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bootstrap", default=os.environ.get("CONSENTFLOW_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--metrics", action="store_true", help="(b) with /metrics served and scraped every 15 s")
    parser.add_argument(
        "--profile-worker",
        metavar="DIR",
        type=Path,
        help="(b)'s worker sampled by py-spy: its CPU per event split by stage (bench/worker_stages.py); the samples "
        "(py-spy's raw format, one file per drain) are kept in DIR",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        events_file = tmp / "events.avro"
        generate(GeneratorConfig(args.subjects, args.days, args.seed), events_file, None)
        # One set of topics per (b) run: a run's sink reads its output topics from the start, and another run's
        # outputs there would be its work too. (a) and (a') read the first set's inputs.
        prefixes = {drain: f"bench{uuid.uuid4().hex[:6]}" for drain in DRAINS}
        for prefix in prefixes.values():
            create_topics(args.bootstrap, prefix=prefix)
            with EventProducer(args.bootstrap, codec=SingleObjectCodec(), prefix=prefix) as producer:
                total = producer.send_all(Event(t, r) for t, r in read_events(events_file))
        subject_inputs = [t for t in INPUT_TOPICS if not t.compacted]
        prefix = prefixes[DRAINS[0]]
        input_names = {t.name(prefix): t.short_name for t in INPUT_TOPICS}
        worker_events = sum(end_offsets(args.bootstrap, [t.name(prefix) for t in subject_inputs]).values())

        raw_rate = raw_consume_decode(args.bootstrap, input_names, total)
        ceilings = {drain: faust_ceiling(args.bootstrap, prefix, worker_events, drain) for drain in DRAINS}
        runs = {
            drain: worker_and_sink(
                args.bootstrap,
                prefixes[drain],
                tmp,
                [t.name(prefixes[drain]) for t in subject_inputs],
                worker_events,
                drain,
                args.metrics,
                args.profile_worker,
            )
            for drain in DRAINS
        }
        processors_cpu = float(
            subprocess.run([sys.executable, "-c", _PROCESSORS_ONLY, str(events_file)], check=True, capture_output=True, text=True)
            .stdout.strip()
            .splitlines()[-1]
        )

        embedded = subprocess.Popen(
            [sys.executable, "-c", _EMBEDDED, str(events_file), f"chdb://{tmp / 'embedded-chdb'}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        embedded_tree_rss = PeakRss(embedded.pid)  # the runner and its decoding process, sampled like the worker's
        embedded_out, _ = embedded.communicate()
        if embedded.returncode != 0:
            raise SystemExit(f"embedded run failed with code {embedded.returncode}")
        embedded_rate, embedded_rss, embedded_cpu_per_event = json.loads(embedded_out.strip().splitlines()[-1])
        peak_embedded_tree = embedded_tree_rss.stop()
        continued = subprocess.run(
            [sys.executable, "-c", _CONTINUED, str(events_file), f"chdb://{tmp / 'continued-chdb'}"],
            check=True,
            capture_output=True,
            text=True,
        )
        continued_rate = float(continued.stdout.strip().splitlines()[-1])
        decode_only = subprocess.run(
            [sys.executable, "-c", _DECODE_ONLY, str(events_file)], check=True, capture_output=True, text=True
        )
        decode_rate = float(decode_only.stdout.strip().splitlines()[-1])

    print(f"subjects={args.subjects} days={args.days} input events={total:,} (subject topics {worker_events:,})")
    print(f"processors in the worker and the embedded runner: {native.described()}")
    print(f"(a) raw consume + decode (confluent-kafka + fastavro): {raw_rate:10,.0f} events/s")
    for drain in DRAINS:
        ceiling_rate = ceilings[drain]
        print(
            f"(a') faust's ceiling, {DRAIN_NAMES[drain]}: agents that only take batches: {ceiling_rate:10,.0f} events/s "
            f"(ratio to (a): {ceiling_rate / raw_rate:.2f})"
        )
    for drain in DRAINS:
        run = runs[drain]
        print(
            f"(b) faust worker + sink into chDB, end to end, {DRAIN_NAMES[drain]}: {run.rate:10,.0f} events/s "
            f"(ratio to (a): {run.rate / raw_rate:.2f}, to its (a'): {run.rate / ceilings[drain]:.2f}; "
            f"{run.with_startup:,.0f} events/s counting worker start-up; "
            f"{'metrics on, ' + str(run.scrapes) + ' scrapes' if run.scrapes is not None else 'metrics off'})"
        )
        print(
            f"    CPU per event: worker {run.worker_cpu * 1e6:.1f} µs, sink {run.sink_cpu * 1e6:.1f} µs; "
            f"the processors alone {processors_cpu * 1e6:.1f} µs; peak RSS worker {run.peak_worker / 2**20:,.0f} MiB, "
            f"sink {run.peak_sink / 2**20:,.0f} MiB"
        )
        if run.stages is not None:
            print(
                "    the worker's CPU per event by stage (py-spy samples): "
                + "; ".join(f"{stage} {share * run.worker_cpu * 1e6:.1f} µs" for stage, share in run.stages.items())
            )
    print(f"(c0) the container file decoded alone (fastavro):     {decode_rate:10,.0f} events/s")
    print(
        f"(c) embedded runner, container file into chDB:         {embedded_rate:10,.0f} events/s (ratio to (c0): {embedded_rate / decode_rate:.2f})"
    )
    print(
        f"(c') consentflow run's whole work (states saved too):  {continued_rate:10,.0f} events/s (ratio to (c0): {continued_rate / decode_rate:.2f})"
    )
    cores = os.cpu_count() or 1
    print(
        f"    (c) used {embedded_cpu_per_event * 1e6:.1f} µs of CPU per event over its processes and threads: "
        f"on {cores} cores, at most {cores / embedded_cpu_per_event:,.0f} events/s even if none waited for another"
    )
    print(
        f"(d) peak RSS: worker and sink under (b); "
        f"embedded {embedded_rss:,.0f} MiB (with its decoding process {peak_embedded_tree / 2**20:,.0f} MiB)"
    )
    print(f"peak RSS of this driver process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")


_EMBEDDED = """
import json, resource, sys, time
from consentflow.streams.decoding_process import read_events_in_child
from consentflow.runtime.gc_tuning import tune_for_streaming
from consentflow.core.processor import Processor
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.streams.embedded import run_events
tune_for_streaming()  # as every consentflow command does
events = read_events_in_child(sys.argv[1])  # as consentflow run reads: the decoding process starts while chDB opens
sink = ClickHouseSink(sys.argv[2], "bench")
def cpu(who):
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime
cpu_before = cpu(resource.RUSAGE_SELF)
began = time.perf_counter()
stats = run_events(events, Processor(), sink)
rate = stats.events / (time.perf_counter() - began)
# CPU of the run's threads (chDB's merges included) and of the decoding child, which has exited and been waited for.
cpu_seconds = cpu(resource.RUSAGE_SELF) - cpu_before + cpu(resource.RUSAGE_CHILDREN)
print(json.dumps([rate, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, cpu_seconds / stats.events]))
"""

# The raw limit of (c)'s first stage, in one process: the container file decoded and nothing else.
# fastavro's container reader itself, as (a) decodes: ``read_events`` now also passes every event through the gate,
# which is (c)'s work, not the limit it is measured against.
_DECODE_ONLY = """
import sys, time, fastavro
import consentflow.contracts.releases  # the project's logical readers (canonical UUID text, UTC instants), as every reader has them
began = time.perf_counter()
with open(sys.argv[1], "rb") as handle:
    count = sum(1 for _ in fastavro.reader(handle, return_record_name=True))
print(count / (time.perf_counter() - began))
"""

# (c') what ``consentflow run`` runs: the same events, continuing from the database's saved states (none, a fresh
# one) and saving every subject's state after the sink holds the outputs, so that the next run goes on from them.
_CONTINUED = """
import sys, time
from consentflow.streams.decoding_process import read_events_in_child
from consentflow.runtime.gc_tuning import tune_for_streaming
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.streams.continued_run import run_continued
tune_for_streaming()
events = read_events_in_child(sys.argv[1])
sink = ClickHouseSink(sys.argv[2], "bench")
began = time.perf_counter()
stats = run_continued(events, sink)
print(stats.events / (time.perf_counter() - began))
"""


# The processors' own CPU per event: the decoded events through ``Processor.process`` in one process, nothing else.
_PROCESSORS_ONLY = """
import sys, time
from consentflow.contracts.eventfile import read_events
from consentflow.core.processor import Processor
events = [(t.short_name, r) for t, r in read_events(sys.argv[1])]
processor = Processor()
began = time.process_time()
for topic, record in events:
    processor.process(topic, record)
print((time.process_time() - began) / len(events))
"""


if __name__ == "__main__":
    main()
