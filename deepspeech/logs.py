"""Logging set-up: rich log lines on stderr, so that stdout stays for results (transcripts,
reports) a script may parse. The CLI calls it once; a server worker process calls it too."""

from __future__ import annotations

import logging
import os

from rich.console import Console
from rich.logging import RichHandler

stderr_console = Console(stderr=True)
NOISY_LOGGERS = ("tensorflow", "absl", "mlflow", "alembic", "urllib3", "h5py", "tf2onnx")


def configure_logging(debug: bool) -> None:
    """INFO (DEBUG with `debug`) to stderr; the libraries' chatter only with `debug`."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(console=stderr_console, show_path=debug, rich_tracebacks=True)],
        force=True,
    )
    # TensorFlow's C++ log lines (device set-up, dataset notes) drown the progress bars.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if debug else "2")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "DEBUG" if debug else "WARNING")
    if not debug:
        for noisy in NOISY_LOGGERS:
            logging.getLogger(noisy).setLevel(logging.WARNING)
