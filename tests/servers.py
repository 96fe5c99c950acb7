"""Servers started by tests: real `deepspeech serve` processes that must stop cleanly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from serving.process import ServerProcess, run_server_process


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
