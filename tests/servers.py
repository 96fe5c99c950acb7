"""`deepspeech serve` child processes on a free loopback port, for tests and benchmarks.

They must measure the real thing (uvicorn, sockets, signals), not an in-process client, and
must always stop what they start: the context manager sends SIGTERM (the clean shutdown path)
and kills only if the server does not stop in time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rss import status_bytes

LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 20.0


@dataclass
class ServerProcess:
    """A running server: its base URL, process and log file (stdout and stderr)."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    returncode: int | None = None  # set once stopped

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_bytes(self) -> int:
        """The server's resident memory now (Linux /proc), to check that it stays bounded."""
        return status_bytes(self.process.pid)


def free_port() -> int:
    """A TCP port nobody listens on right now (the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _wait_healthy(server: ServerProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.log()}")
        try:
            with urllib.request.urlopen(f"{server.url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not healthy after {timeout:.0f} s:\n{server.log()}")


@contextmanager
def run_server_process(
    model: str | os.PathLike[str],
    *options: str,
    startup_timeout: float = STARTUP_TIMEOUT_SECONDS,
    host: str | None = LOOPBACK,
) -> Iterator[ServerProcess]:
    """Start `python -m deepspeech serve --model MODEL OPTIONS...` on 127.0.0.1, yield it
    once /healthz answers 200, then stop it with SIGTERM and record its exit code.

    `host=None` leaves `--host` out, to test the server's own default."""
    port = free_port()
    with tempfile.NamedTemporaryFile(prefix="deepspeech-serve-", suffix=".log", delete=False) as f:
        log_path = Path(f.name)
    command = [
        sys.executable,
        "-m",
        "deepspeech",
        "serve",
        "--model",
        os.fspath(model),
        *(["--host", host] if host is not None else []),
        "--port",
        str(port),
        *options,
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    server = ServerProcess(f"http://{LOOPBACK}:{port}", process, log_path)
    try:
        _wait_healthy(server, startup_timeout)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        server.returncode = process.returncode


@contextmanager
def clean_server(
    model: Path, *options: str, host: str | None = "127.0.0.1"
) -> Iterator[ServerProcess]:
    """A `deepspeech serve` process that, once stopped with SIGTERM, must have shut down
    gracefully and logged no traceback."""
    with run_server_process(model, *options, host=host) as process:
        yield process
    log = process.log()
    assert process.returncode in (0, -15), log  # uvicorn re-raises SIGTERM after shutting down
    assert "Application shutdown complete" in log and "stopped" in log, log
    assert "Traceback" not in log, log
