"""Where the MLflow store is: one rule for training, export, serving and `runs compare`.

Kept apart from `tracking.py` (which subclasses a Keras callback) so that the server and
the light CLI commands find the store without importing Keras or TensorFlow.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def resolve_tracking_uri(flag: str | None) -> str:
    """The contract's order: the flag, else MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here."""
    return flag or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def artifact_location(tracking_uri: str) -> str | None:
    """Keep artifacts beside a SQLite store instead of in whatever folder MLflow picks."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    db_path = Path(tracking_uri[len(prefix) :]).resolve()
    return (db_path.parent / "mlartifacts").as_uri()
