"""The REST API's request-body limit under load: how fast a 100 MB body is refused, the API's
memory while three arrive at once, and how long a small GET waits meanwhile.

Starts the API with uvicorn in a subprocess, on a PostgreSQL schema of its own (migrated, with
one organisation and an API key; dropped at the end), and prints its figures:

    .venv/bin/python bench/rest_limits.py [--database-url URL] [--size-mb 100] [--uploads 3]

Each upload is a raw socket sending the body in 64 KiB pieces as fast as the server takes them,
until the server answers; "sent" is what left the client before the answer (socket buffers
included), not what the server read.
"""

from __future__ import annotations

import argparse
import os
import secrets
import select
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

PIECE = 64 * 1024
MB = 1_000_000


@dataclass
class Upload:
    status: int | None
    seconds: float
    sent: int


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def bench_schema(base_url: str) -> Iterator[str]:
    """A migrated schema of its own; REGBATCH_DATABASE_URL points at it."""
    schema = f"regbatch_bench_limits_{os.getpid()}"
    engine = create_engine(base_url)
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base_url else "?"
    url = f"{base_url}{separator}options=-csearch_path%3D{schema}"
    try:
        yield url
    finally:
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def api_key(url: str) -> str:
    """A new organisation's API key in the schema at `url` (migrated first)."""
    from regbatch.db import migrate
    from regbatch.db.engine import session_scope
    from regbatch.db.organisations import create_organisation
    from regbatch.services.api_keys import create_api_key

    migrate.upgrade(url)
    with session_scope() as session:
        org_id = create_organisation(session, f"bench-{secrets.token_hex(3)}").id
    return create_api_key(org_id, "bench").api_key


@contextmanager
def api_server(env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    command = [
        sys.executable, "-m", "uvicorn", "regbatch.api.rest:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


def upload(port: int, key: str, size: int, chunked: bool) -> Upload:
    """POST a `size`-byte body; the status and seconds until the answer, bytes sent by then."""
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    head = (
        "POST /registration-batches HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
    ).encode()
    piece = (f"{PIECE:x}\r\n".encode() + b" " * PIECE + b"\r\n") if chunked else b" " * PIECE
    started = time.monotonic()
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head)
        while sent < size:
            readable, writable, _ = select.select([sock], [sock], [], 30)
            if readable:
                break
            if writable:
                try:
                    sent += sock.send(piece)
                except OSError:
                    break
        status = _status(sock)
    return Upload(status, time.monotonic() - started, sent)


def _status(sock: socket.socket) -> int | None:
    sock.settimeout(60)
    try:
        first = sock.recv(64)
    except OSError:
        return None
    return int(first.split()[1]) if first.startswith(b"HTTP/") else None


def small_gets(
    port: int, key: str, stop: threading.Event, times: list[tuple[float, float]]
) -> None:
    """GET /registration-batches?limit=1 in a loop until `stop`: (start, seconds) of each."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as http:
        while not stop.is_set():
            started = time.monotonic()
            http.get("/registration-batches", params={"limit": 1}).raise_for_status()
            times.append((started, time.monotonic() - started))
            time.sleep(0.005)


def sample_rss(pid: int, stop: threading.Event, peak: list[float]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss_mb(pid))
        time.sleep(0.005)


def largest_body(limit: int) -> bytes:
    """A JSON batch request just under `limit` bytes, of the smallest values (the most work per
    byte for the parser and the validators)."""
    head = b'{"restaurant_ids":["00000000-0000-4000-8000-000000000000"],"common_config":{"x":['
    count = (limit - len(head) - 4) // 2
    return head + b",".join([b"0"] * count) + b"]}}"


def post_largest(port: int, key: str, body: bytes) -> Upload:
    """POST `body` with httpx; its status and seconds."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    started = time.monotonic()
    response = httpx.post(
        f"http://127.0.0.1:{port}/registration-batches", content=body, headers=headers, timeout=60
    )
    return Upload(response.status_code, time.monotonic() - started, len(body))


def concurrent_uploads(
    port: int,
    key: str,
    pid: int,
    count: int,
    rounds: int,
    send: Callable[[], Upload],
) -> tuple[list[Upload], list[float], float]:
    """`count` clients each making `rounds` requests (`send`) back to back, all at once, with
    small GETs and an RSS sampler beside; the uploads, the GETs made while they ran, the peak."""
    stop = threading.Event()
    times: list[tuple[float, float]] = []
    peak = [rss_mb(pid)]
    helpers = [
        threading.Thread(target=small_gets, args=(port, key, stop, times)),
        threading.Thread(target=sample_rss, args=(pid, stop, peak)),
    ]
    for helper in helpers:
        helper.start()
    time.sleep(0.2)
    results: list[Upload] = []

    def client() -> None:
        for _ in range(rounds):
            results.append(send())

    workers = [threading.Thread(target=client) for _ in range(count)]
    began = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    ended = time.monotonic()
    stop.set()
    for helper in helpers:
        helper.join()
    during = [seconds for started, seconds in times if began <= started <= ended]
    return results, during, peak[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--uploads", type=int, default=3, help="clients uploading at once")
    parser.add_argument("--rounds", type=int, default=20, help="uploads per client")
    args = parser.parse_args()
    size = args.size_mb * MB
    os.environ.setdefault("REGBATCH_SECRET_KEY", Fernet.generate_key().decode())
    with bench_schema(args.database_url) as url:
        os.environ["REGBATCH_DATABASE_URL"] = url
        key = api_key(url)
        port = free_port()
        with api_server(dict(os.environ), port) as server:
            report(server.pid, port, key, size, args.uploads, args.rounds)


def report(pid: int, port: int, key: str, size: int, count: int, rounds: int) -> None:
    idle: list[tuple[float, float]] = []
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    small_gets(port, key, stop, idle)
    alone = statistics.median(seconds for _, seconds in idle) * 1000
    print(f"API RSS at rest: {rss_mb(pid):.0f} MB; small GET alone: median {alone:.1f} ms")
    for label, chunked in (("Content-Length", False), ("chunked", True)):
        one = upload(port, key, size, chunked)
        print(f"{size // MB} MB body ({label}): answered {one.status} after "
              f"{one.seconds * 1000:.0f} ms, {one.sent / MB:.1f} MB sent by then")  # fmt: skip
    results, during, peak = concurrent_uploads(
        port, key, pid, count, rounds, lambda: upload(port, key, size, True)
    )
    _print_round(
        f"{count} clients x {rounds} chunked {size // MB} MB uploads", results, during, peak
    )
    body = largest_body(get_limit())
    results, during, peak = concurrent_uploads(
        port, key, pid, count, 3, lambda: post_largest(port, key, body)
    )
    label = f"{count} clients x 3 bodies of {len(body) / MB:.2f} MB of zeros (the largest accepted)"
    _print_round(label, results, during, peak)


def get_limit() -> int:
    from regbatch.settings import get_settings

    return get_settings().max_request_body_bytes


def _print_round(label: str, results: list[Upload], during: list[float], peak: float) -> None:
    statuses = sorted({str(r.status) for r in results})
    slowest = max(r.seconds for r in results) * 1000
    print(
        f"{label} at once: all answered {', '.join(statuses)}, each within {slowest:.0f} ms; "
        f"API peak RSS {peak:.0f} MB"
    )
    if during:
        median, most = statistics.median(during) * 1000, max(during) * 1000
        print(f"  small GETs meanwhile: {len(during)}, median {median:.1f} ms, max {most:.0f} ms")


if __name__ == "__main__":
    main()
