"""Request bodies over the limit, against a real uvicorn server on 127.0.0.1: refused with 413
before they are read (declared or streamed chunked), while other requests keep being answered."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from regbatch.api.rest import create_app
from regbatch.settings import get_settings
from tests.conftest import free_port
from tests.integration.rest_support import bearer

MB = 1_000_000
HUGE = 100 * MB
CHUNK = 64 * 1024


@dataclass
class Server:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@pytest.fixture(scope="module")
def server(pg_url: str) -> Iterator[Server]:
    port = free_port()
    config = uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not running.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield Server("127.0.0.1", port)
    running.should_exit = True
    thread.join(timeout=10)


def _head(path: str, auth: dict[str, str], framing: str) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Authorization: {auth['Authorization']}",
        "Content-Type: application/json",
        framing,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _response(sock: socket.socket, timeout_s: float = 30) -> tuple[int, dict[str, object]]:
    """(status, JSON body) of the response on `sock` (the server closes after it)."""
    sock.settimeout(timeout_s)
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        try:
            piece = sock.recv(65536)
        except ConnectionResetError:
            break
        if not piece:
            break
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    assert head, "no response before the connection closed"
    status = int(head.split()[1])
    return status, json.loads(body[body.index(b"{") :])


def test_a_huge_content_length_is_refused_before_the_body_is_sent(
    server: Server, org_id: uuid.UUID
) -> None:
    auth = bearer(org_id)
    started = time.monotonic()
    with socket.create_connection((server.host, server.port)) as sock:
        sock.sendall(_head("/registration-batches", auth, f"Content-Length: {1000 * HUGE}"))
        status, body = _response(sock)  # not one byte of the body was sent
    elapsed = time.monotonic() - started
    assert status == 413 and body["code"] == "body_too_large"
    limit = get_settings().max_request_body_bytes
    assert body["detail"] == (
        f"the request body of {1000 * HUGE} bytes is over the limit of {limit} bytes "
        "(REGBATCH_MAX_REQUEST_BODY_BYTES); send a smaller body (create large batches in "
        "several requests)"
    )
    assert elapsed < 10  # generous: the refusal needs no byte of the body (bench: ms)


def test_a_chunked_100_mb_body_is_refused_near_the_limit_while_a_get_is_answered(
    server: Server, org_id: uuid.UUID
) -> None:
    auth = bearer(org_id)
    limit = get_settings().max_request_body_bytes
    chunk = f"{CHUNK:x}\r\n".encode() + b" " * CHUNK + b"\r\n"
    with socket.create_connection((server.host, server.port)) as upload:
        upload.sendall(_head("/registration-batches", auth, "Transfer-Encoding: chunked"))
        sent = 0
        while sent + CHUNK < limit // 2:  # half the limit: in flight, not refused yet
            upload.sendall(chunk)
            sent += CHUNK

        # The upload is in flight (no answer yet) and another request is answered meanwhile.
        answered = httpx.get(f"{server.url}/registration-batches", headers=auth, timeout=30)
        assert answered.status_code == 200, answered.text
        assert select.select([upload], [], [], 0)[0] == [], "the upload was answered too soon"

        sent += _send_until_answered(upload, chunk, HUGE - sent)
        status, body = _response(upload)
    assert status == 413 and body["code"] == "body_too_large"
    assert "over the limit of" in str(body["detail"])
    # Far less than 100 MB went out before the refusal (socket buffers hold a few MB at most).
    assert sent < HUGE // 5, f"{sent} bytes sent before the 413"


def _send_until_answered(sock: socket.socket, chunk: bytes, most: int) -> int:
    """Send chunks until the server answers or closes (or `most` bytes); bytes sent."""
    sent = 0
    while sent < most:
        readable, writable, _ = select.select([sock], [sock], [], 5)
        if readable:
            return sent
        if not writable:
            continue
        try:
            sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            return sent
        sent += len(chunk)
    return sent


def test_malformed_json_and_a_body_not_utf8_are_400_malformed_json(
    server: Server, org_id: uuid.UUID
) -> None:
    auth = bearer(org_id)
    bad = httpx.post(
        f"{server.url}/webhooks",
        content=b'{"url": "https://hooks.example.com/x",',
        headers={**auth, "Content-Type": "application/json"},
    )
    assert bad.status_code == 400, bad.text
    assert bad.json()["code"] == "malformed_json"
    assert bad.json()["detail"].startswith("the request body is not valid JSON (")
    latin = httpx.post(
        f"{server.url}/webhooks",
        content='{"url": "https://hooks.example.com/é"}'.encode("latin-1"),
        headers={**auth, "Content-Type": "application/json"},
    )
    assert latin.status_code == 400 and latin.json()["code"] == "malformed_json", latin.text
