"""Registering an exported model in MLflow, and the training run's facts it carries.

`register_model` logs the model into its training run with `mlflow.onnx` and registers it as a
new version of a name, served as models:/NAME/VERSION. MLflow is imported where it is used:
an export that registers nothing does not pay for it.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import onnx

from deepspeech.errors import ExportError
from deepspeech.runtime.graph import FEATURES_INPUT, LENGTHS_INPUT, PROBABILITIES_OUTPUT
from deepspeech.training.checkpoint import RunInfo
from deepspeech.training.tracking import git_commit

logger = logging.getLogger(__name__)

MLFLOW_ARTIFACT_NAME = "onnx-model"  # name of the logged model inside the training run
EXTERNAL_DATA_BYTES = 1 << 30  # above this, MLflow stores weights beside the graph (2 GB limit)


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


def register_model(
    proto: onnx.ModelProto,
    name: str,
    run_id: str | None,
    tracking_uri: str | None,
    expected_version: str,
) -> str:
    """Log the model into the training run with `mlflow.onnx` and register a version of `name`.

    Returns the `models:/NAME/VERSION` URI that `deepspeech serve --model` accepts. Without a
    training run (tracking was off), a new run in the experiment 'deepspeech-export' holds it.
    """
    import mlflow
    import mlflow.onnx
    from mlflow.exceptions import MlflowException
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    uri = mlflow.get_tracking_uri()
    numcep = int(proto.graph.input[0].type.tensor_type.shape.dim[2].dim_value)
    n_classes = int(proto.graph.output[0].type.tensor_type.shape.dim[2].dim_value)
    signature = ModelSignature(
        inputs=Schema(
            [
                TensorSpec(np.dtype(np.float32), (-1, -1, numcep), FEATURES_INPUT),
                TensorSpec(np.dtype(np.int32), (-1,), LENGTHS_INPUT),
            ]
        ),
        outputs=Schema(
            [TensorSpec(np.dtype(np.float32), (-1, -1, n_classes), PROBABILITIES_OUTPUT)]
        ),
    )
    if run_id is not None:
        try:
            mlflow.MlflowClient().get_run(run_id)
        except MlflowException:
            logger.warning("training run %s is not in %s; logging into a new run", run_id, uri)
            run_id = None
    if run_id is None:
        mlflow.set_experiment("deepspeech-export")
    try:
        with mlflow.start_run(run_id=run_id):
            info = mlflow.onnx.log_model(
                proto,
                name=MLFLOW_ARTIFACT_NAME,
                registered_model_name=name,
                signature=signature,
                save_as_external_data=proto.ByteSize() > EXTERNAL_DATA_BYTES,
            )
    except MlflowException as e:
        raise ExportError(f"registering {name!r} in MLflow ({uri}) failed: {e}") from e
    version = str(info.registered_model_version)
    if version != expected_version:
        logger.warning(
            "registered %s version %s, but the model's metadata says %s (another export "
            "registered meanwhile)",
            name,
            version,
            expected_version,
        )
    return f"models:/{name}/{version}"
