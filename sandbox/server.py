"""Run the sandbox over real HTTP: in a background thread (tests, benchmarks) or in the foreground.

with SandboxServer("key", account_spacing_s=0) as sandbox:
    client = PlatformClient(sandbox.url, "key")
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn

from regbatch.sandbox.app import create_app

DEFAULT_SERVICE_KEY = "sandbox-service-key"


class SandboxServer:
    """The sandbox app served by uvicorn in a daemon thread; `port=0` picks a free port."""

    def __init__(
        self,
        service_key: str = DEFAULT_SERVICE_KEY,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0,
        account_spacing_s: float = 60.0,
        image_processing_s: float = 0.2,
        log_level: str = "warning",
    ) -> None:
        self.service_key = service_key
        self.host = host
        self._port = port
        self.app = create_app(
            service_key,
            latency_ms=latency_ms,
            account_spacing_s=account_spacing_s,
            image_processing_s=image_processing_s,
        )
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the sandbox server is not started; call start() first")
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> SandboxServer:
        """Bind, serve in a background thread, and return once it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("the sandbox server is already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        self._socket = sock
        config = uvicorn.Config(
            self.app,
            log_level=self._log_level,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the sandbox server on {self.host} did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask uvicorn to exit and wait for its thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    service_key: str = DEFAULT_SERVICE_KEY,
    latency_ms: float = 0,
    account_spacing_s: float = 60.0,
) -> None:
    """Serve the sandbox in the foreground until interrupted (`regbatch sandbox serve`)."""
    app = create_app(service_key, latency_ms=latency_ms, account_spacing_s=account_spacing_s)
    uvicorn.run(app, host=host, port=port, log_level="info")
