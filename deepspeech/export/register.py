"""What an exported file says about its registry version and training run, before it is
registered: the version number it will get and the run's commit and test WER.

Registering itself (the deployable bundle: ONNX file, decoder settings, LM) is
`deepspeech.registry`, a stage after serving, because the bundle's pyfunc is the serving
stage's recognizer. MLflow is imported where it is used: an export that registers nothing
does not pay for it.
"""

from __future__ import annotations

import logging
from typing import Any

from deepspeech.training.checkpoint import RunInfo
from deepspeech.training.tracking import git_commit

logger = logging.getLogger(__name__)


def run_facts(info: RunInfo, tracking_uri: str | None) -> dict[str, Any]:
    """Commit and test WER from the training run in MLflow; the current commit otherwise."""
    facts: dict[str, Any] = {"git_commit": git_commit(), "test_wer": None}
    if not info.mlflow_run_id or not tracking_uri:
        return facts
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        run = MlflowClient(tracking_uri).get_run(info.mlflow_run_id)
    except MlflowException as e:
        logger.warning("MLflow run %s not readable (%s): no test WER", info.mlflow_run_id, e)
        return facts
    facts["git_commit"] = run.data.params.get("git_commit", facts["git_commit"])
    test_wer = run.data.metrics.get("test_wer")
    facts["test_wer"] = float(test_wer) if test_wer is not None else None
    return facts


def next_registered_version(name: str, tracking_uri: str | None) -> int:
    """The version number registering `name` will get, to write into the model beforehand."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    versions = client.search_model_versions(f"name = '{_quote(name)}'")
    return max((int(v.version) for v in versions), default=0) + 1


def _quote(name: str) -> str:
    return name.replace("'", "\\'")
