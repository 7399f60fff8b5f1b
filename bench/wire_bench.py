"""The platform client's CPU per request: aiohttp (the production wire) beside httpx.

Both sides run the whole `PlatformClient.run_step` (the request built, sent, its answer read
and checked); only the wire differs: `AiohttpWire`, or `HttpxWire` over httpx's own HTTP
transport in eight pools of 32 connections used in turn (the client as it was before). The
platform is a minimal HTTP/1.1 server in a process of its own, so this process's CPU is the
client's alone. Rounds alternate.

    .venv/bin/python bench/wire_bench.py --requests 3000 --c 25 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import socket
import time

import httpx

from regbatch.platform import PlatformClient
from regbatch.steps import StepKey

ACCOUNT = {"success": True, "account_id": "a1", "user_id": "u1", "email": "owner@example.com"}
BODY = json.dumps(ACCOUNT).encode()
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY)
    + BODY
)


def serve(sock: socket.socket) -> None:
    """Answer every request on every connection with ACCOUNT, keeping connections alive."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                writer.write(ANSWER)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, sock=sock)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


async def cpu_per_request(url: str, wire: str, requests: int, c: int) -> float:
    """This process's CPU per request, in microseconds, for `requests` at `c` at once."""
    if wire == "httpx":  # as the client was before: eight pools of 32, used in turn
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32, keepalive_expiry=2)
        clients = [
            PlatformClient(url, "bench-key", transport=httpx.AsyncHTTPTransport(limits=limits))
            for _ in range(8)
        ]
    else:
        clients = [PlatformClient(url, "bench-key")]
    turn = itertools.cycle(clients)
    gate = asyncio.Semaphore(c)

    async def one(number: int) -> None:
        async with gate:
            await next(turn).run_step(
                StepKey.ACCOUNT_REGISTRATION,
                {"email": "owner@example.com", "password": "x" * 16, "name": "Cafe"},
                organisation_id="org-1",
                idempotency_key=f"job-{number}:account_registration",
                timeout_s=30,
            )

    try:
        await asyncio.gather(*(one(i) for i in range(100)))  # warm-up: connections opened
        started = time.process_time()
        await asyncio.gather(*(one(i) for i in range(requests)))
        return (time.process_time() - started) / requests * 1e6
    finally:
        for client in clients:
            await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--c", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    server = multiprocessing.get_context("fork").Process(target=serve, args=(sock,), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    print(f"PlatformClient.run_step, {args.requests} requests, {args.c} at once, CPU per request")
    figures: dict[str, list[float]] = {"aiohttp": [], "httpx": []}
    try:
        for _ in range(args.rounds):
            for wire in ("httpx", "aiohttp"):
                figures[wire].append(asyncio.run(cpu_per_request(url, wire, args.requests, args.c)))
    finally:
        server.terminate()
    for wire, values in figures.items():
        shown = ", ".join(f"{v:.0f}" for v in values)
        print(f"  {wire:8} {shown} us")
    ratio = min(figures["httpx"]) / min(figures["aiohttp"])
    print(f"  httpx / aiohttp (best of each): {ratio:.1f}x")


if __name__ == "__main__":
    main()
