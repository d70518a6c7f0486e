"""What a large request body costs ``consentflow serve``: its peak RSS and how long until it answers.

Starts ``consentflow serve`` from ``--source`` (a source tree: compare a branch with main) on an empty chDB path,
announces ``--megabytes`` to ``POST /login`` (no key needed) and sends them as fast as the server takes them, until
it answers or closes. Prints the answer's status, the bytes the client got to send, the seconds until the answer, and
the server's RSS before and at its peak (VmHWM).

    python bench/body_limit.py --source . --megabytes 1000
    python bench/body_limit.py --source /work/main --megabytes 1000
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHUNK = b"k" * (1 << 20)


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid``, in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) // 1024
    return fields


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    """Run the measurement once and print one line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("."), help="the source tree to serve from")
    parser.add_argument("--megabytes", type=int, default=1000, help="the body announced and sent, in MiB")
    args = parser.parse_args()
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(args.source.resolve()), "CONSENTFLOW_API_KEYS": "dpo:bench-key-0123456789abcdef"}
    with tempfile.TemporaryDirectory() as chdb:
        command = [sys.executable, "-m", "consentflow.cli", "serve", "--port", str(port), "--dsn", f"chdb://{chdb}"]
        server = subprocess.Popen([*command, "--log-level", "warning"], env=env, cwd=args.source, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert server.poll() is None and time.monotonic() < deadline, "consentflow serve did not come up"
                    time.sleep(0.2)
            before = _memory(server.pid)["VmRSS"]
            total = args.megabytes * len(CHUNK)
            sent, began, status = 0, time.monotonic(), "closed"
            with socket.create_connection(("127.0.0.1", port)) as sock:
                head = "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                sock.sendall(f"{head}Content-Length: {total}\r\n\r\n".encode())
                sock.settimeout(120)
                answer = b""
                try:
                    while sent < total and not answer:
                        readable, writable, _ = select.select([sock], [sock], [], 120)
                        if readable:  # answered before the body ended
                            answer = sock.recv(4096)
                        elif writable:
                            sent += sock.send(CHUNK)
                    answer = answer or sock.recv(4096)
                except OSError:
                    pass  # the server closed with our bytes unread
                status = answer.split(b" ", 2)[1].decode() if answer else status
            seconds = time.monotonic() - began
            peak = _memory(server.pid)["VmHWM"]
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(
        f"{args.source}: {args.megabytes} MiB announced to /login: answer {status} after {seconds:.2f} s, "
        f"{sent / (1 << 20):,.1f} MiB sent; server RSS {before} MiB before, peak {peak} MiB"
    )


if __name__ == "__main__":
    main()
