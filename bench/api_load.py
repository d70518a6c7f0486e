"""Many readers at once: `consentflow serve` under N concurrent requests of who-has, consent and the access export.

Run: .venv/bin/python bench/api_load.py [--dsn chdb:///abs/path] [--database consentflow]
     [--subjects 5000 --days 365 --seed 1] [--concurrency 1,20,200] [--requests 200] [--readers R] [--raw-only]

Without ``--dsn`` it generates the demo's events (``consentflow generate``) and
runs them (``consentflow run``) into a temporary chDB path, removed after.
Then, for each endpoint and each N: ``--requests`` requests (at least N), fired
N at a time, each burst all at once and the next when the burst is answered,
each on another subject; it prints the throughput and the p50/p95/max latency
of each N, and how many answers differ from the serial ones (N = 1) once the
instant of asking is left out.

The raw limit is measured in the same run, in a child process (chDB opens a path
in one process at a time): the same query functions, called through the
server's ``Server.tables()`` without HTTP, serially and from N threads.
The server runs as ``consentflow serve`` in its own process, one uvicorn worker,
as deployed; the load comes from this process's asyncio client (httpx).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

#: The endpoints measured: name -> path of one subject's answer.
ENDPOINTS: dict[str, str] = {
    "who-has": "/v1/subjects/{s}/recipients",
    "consent": "/v1/subjects/{s}/consent",
    "access-export": "/v1/subjects/{s}/access-export",
}
#: Fields that name the instant of asking: left out when answers are compared.
_MOMENTS = frozenset({"as_of", "generated_at"})
_KEY = "bench-api-load-key-0123456789abcdef"


def main() -> None:
    """Prepare the database, measure the raw limit, then the server under load; print both."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default=None, help="a chdb:///path the demo filled (default: generate one, removed after)")
    parser.add_argument("--database", default="consentflow")
    parser.add_argument("--subjects", type=int, default=5000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", default="1,20,200", help="comma-separated N")
    parser.add_argument("--requests", type=int, default=200, help="requests per endpoint and N (at least N)")
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS), help="comma-separated, of: " + ", ".join(ENDPOINTS))
    parser.add_argument("--no-raw", action="store_true", help="skip the in-process measurement")
    parser.add_argument(
        "--readers", type=int, default=None, help="consentflow serve --readers, and the raw limit's (default: theirs)"
    )
    parser.add_argument("--raw-only", action="store_true", help="measure the raw limit only, not the server")
    parser.add_argument("--raw-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    levels = [int(n) for n in args.concurrency.split(",")]
    endpoints = [e for e in args.endpoints.split(",") if e]
    if args.raw_child:
        _raw_child(args.dsn, args.database, levels, args.requests, endpoints, args.readers)
        return
    tmp = None if args.dsn else Path(tempfile.mkdtemp(prefix="consentflow-api-load-"))
    try:
        dsn = args.dsn or _demo_database(tmp, args.subjects, args.days, args.seed)  # type: ignore[arg-type]
        print(f"dsn={dsn} database={args.database} concurrency={levels} requests={args.requests}", flush=True)
        raw = None if args.no_raw else _raw_limit(dsn, args.database, levels, args.requests, endpoints, args.readers)
        subjects = raw["subjects"] if raw else _subjects_of(dsn, args.database, max([*levels, args.requests]))
        if raw:
            for line in raw["lines"]:
                print(line)
        if args.raw_only:
            return
        serve_options = [] if args.readers is None else ["--readers", str(args.readers)]
        asyncio.run(_measure_server(dsn, args.database, subjects, levels, args.requests, endpoints, serve_options))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _consentflow() -> list[str]:
    return [sys.executable, "-m", "consentflow.cli"]


def _demo_database(tmp: Path, subjects: int, days: int, seed: int) -> str:
    """The demo's events run into a chDB path under ``tmp``: its DSN."""
    events = tmp / "demo.avro"
    began = time.perf_counter()
    generate = [*_consentflow(), "generate", "--subjects", str(subjects), "--days", str(days), "--seed", str(seed)]
    subprocess.run([*generate, "--out", str(events)], check=True, stdout=subprocess.DEVNULL)
    dsn = f"chdb://{tmp / 'chdb'}"
    subprocess.run([*_consentflow(), "run", str(events), "--dsn", dsn], check=True, stdout=subprocess.DEVNULL)
    print(f"generated and ran {subjects:,} subjects over {days} days in {time.perf_counter() - began:.0f} s", flush=True)
    return dsn


def _subjects_of(dsn: str, database: str, n: int) -> list[str]:
    """``n`` subject ids the ledger names, spread over the table, read in a child process."""
    code = (
        "import json,sys;from consentflow.sinks.reading import open_tables as o;"
        "r=o(sys.argv[1],sys.argv[2]);n=int(sys.argv[3]);"
        "s=[x[0] for x in r.query('SELECT DISTINCT subject_id FROM {db:Identifier}.ledger ORDER BY subject_id')];"
        "print(json.dumps(s[::max(1,len(s)//n)][:n]))"
    )
    out = subprocess.run([sys.executable, "-c", code, dsn, database, str(n)], check=True, capture_output=True, text=True)
    subjects: list[str] = json.loads(out.stdout)
    return subjects


# -- the raw limit: the query functions in-process, without HTTP -----------------------------------


def _raw_limit(
    dsn: str, database: str, levels: list[int], requests: int, endpoints: list[str], readers: int | None
) -> dict[str, Any]:
    command = [sys.executable, __file__, "--raw-child", "--dsn", dsn, "--database", database]
    command += ["--concurrency", ",".join(map(str, levels)), "--requests", str(requests), "--endpoints", ",".join(endpoints)]
    command += [] if readers is None else ["--readers", str(readers)]
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    parsed: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return parsed


def _raw_child(dsn: str, database: str, levels: list[int], requests: int, endpoints: list[str], readers: int | None) -> None:
    from datetime import UTC, datetime

    from consentflow.http.api_keys import KeyRing
    from consentflow.http.context import Server, ServerSettings
    from consentflow.sinks import consent_queries, lineage_queries
    from consentflow.sinks.answers import jsonable
    from consentflow.sinks.subject_access import subject_access_export

    subjects = _subjects_in_process(dsn, database, max([*levels, requests]))
    # Main's ServerSettings has no ``readers``: the same bench measures both sides.
    server = Server(ServerSettings(dsn, database, KeyRing(()), **({} if readers is None else {"readers": readers})))
    calls: dict[str, Callable[[Any, str], Any]] = {
        "who-has": lambda sink, s: lineage_queries.who_has(sink, s, datetime.now(UTC)),
        "consent": lambda sink, s: consent_queries.consent(sink, s, None, datetime.now(UTC)),
        "access-export": lambda sink, s: subject_access_export(sink, s, datetime.now(UTC)),
    }

    def ask(endpoint: str, subject: str) -> float:
        began = time.perf_counter()
        with server.tables() as sink:
            jsonable(calls[endpoint](sink, subject))
        return time.perf_counter() - began

    lines = []
    for endpoint in endpoints:
        ask(endpoint, subjects[-1])  # warm: the first query loads indexes and marks
        for n in levels:
            total = max(n, requests)
            latencies: list[float] = []
            began = time.perf_counter()
            with ThreadPoolExecutor(n) as pool:
                for start in range(0, total, n):
                    burst = [subjects[i % len(subjects)] for i in range(start, min(start + n, total))]
                    latencies += pool.map(lambda s, e=endpoint: ask(e, s), burst)
            wall = time.perf_counter() - began
            lines.append(_line("raw", endpoint, n, latencies, wall, 0, None))
    print(json.dumps({"subjects": subjects, "lines": lines}))


def _subjects_in_process(dsn: str, database: str, n: int) -> list[str]:
    from consentflow.sinks.reading import open_tables

    reader = open_tables(dsn, database)
    every = [row[0] for row in reader.query("SELECT DISTINCT subject_id FROM {db:Identifier}.ledger ORDER BY subject_id")]
    return every[:: max(1, len(every) // n)][:n]


# -- the server under load ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _measure_server(
    dsn: str, database: str, subjects: list[str], levels: list[int], requests: int, endpoints: list[str], options: list[str]
) -> None:
    port = _free_port()
    env = {**os.environ, "CONSENTFLOW_API_KEYS": f"dpo:{_KEY}"}
    command = [*_consentflow(), "serve", "--dsn", dsn, "--database", database, "--port", str(port), "--log-level", "warning"]
    command += options
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        limits = httpx.Limits(max_connections=max(levels) + 10, max_keepalive_connections=max(levels) + 10)
        async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": _KEY}, limits=limits, timeout=600) as client:
            await _wait_started(client, server)
            for endpoint in endpoints:
                await _get(client, ENDPOINTS[endpoint].format(s=subjects[-1]))  # warm
                serial: dict[str, Any] = {}
                for n in levels:
                    total = max(n, requests)
                    latencies: list[float] = []
                    errors = differ = 0
                    began = time.perf_counter()
                    for start in range(0, total, n):
                        burst = [subjects[i % len(subjects)] for i in range(start, min(start + n, total))]
                        answers = await asyncio.gather(*(_get(client, ENDPOINTS[endpoint].format(s=s)) for s in burst))
                        for subject, (status, seconds, body) in zip(burst, answers, strict=True):
                            latencies.append(seconds)
                            if status != 200:
                                errors += 1
                            elif n == levels[0]:
                                serial[subject] = body
                            elif subject in serial and serial[subject] != body:
                                differ += 1
                    wall = time.perf_counter() - began
                    print(_line("http", endpoint, n, latencies, wall, errors, None if n == levels[0] else differ), flush=True)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


async def _wait_started(client: httpx.AsyncClient, server: subprocess.Popen[str]) -> None:
    for _ in range(600):
        if server.poll() is not None:
            raise SystemExit(f"consentflow serve ended with {server.returncode}: {server.stderr.read() if server.stderr else ''}")
        try:
            if (await client.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("consentflow serve did not answer /health within 60 s")


async def _get(client: httpx.AsyncClient, path: str) -> tuple[int, float, Any]:
    began = time.perf_counter()
    response = await client.get(path)
    seconds = time.perf_counter() - began
    body = _without_moments(response.json()) if response.status_code == 200 else None
    return response.status_code, seconds, body


def _without_moments(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_moments(v) for k, v in value.items() if k not in _MOMENTS}
    if isinstance(value, list):
        return [_without_moments(v) for v in value]
    return value


def _line(kind: str, endpoint: str, n: int, latencies: Sequence[float], wall: float, errors: int, differ: int | None) -> str:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    compared = "" if differ is None else f", {differ} differ from serial"
    return (
        f"{kind:4} {endpoint:13} N={n:<3} {len(ordered):4} requests in {wall:6.2f} s: {len(ordered) / wall:7.1f}/s, "
        f"p50 {statistics.median(ordered) * 1000:7.1f} ms, p95 {p95 * 1000:7.1f} ms, max {ordered[-1] * 1000:7.1f} ms"
        f"{'' if kind == 'raw' else f', {errors} errors'}{compared}"
    )


if __name__ == "__main__":
    main()
