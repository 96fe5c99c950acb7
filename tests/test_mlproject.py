"""`mlflow run . -e main` trains through the MLproject entry point into the run MLflow made."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_mlflow_run_main_entry_point_logs_into_its_own_run(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parameters = {
        "config": "experiments/tiny.yaml",
        "train_files": tiny_corpus / "train.csv",
        "dev_files": tiny_corpus / "dev.csv",
        "test_files": tiny_corpus / "test.csv",
        "checkpoint_dir": tmp_path / "ckpt",
        "feature_cache": tmp_path / "feature-cache",
        "epochs": 1,
        "batch_size": 8,
        "n_hidden": 32,
        "learning_rate": 0.001,
        "dropout_rate": 0.0,
        "max_train_minutes": 0,
        "seed": 3,
    }
    command = [sys.executable, "-m", "mlflow", "run", ".", "--env-manager", "local", "-e", "main"]
    command += ["--experiment-name", "mlproject-test"]
    for name, value in parameters.items():
        command += ["-P", f"{name}={value}"]
    result = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        # --env-manager local runs the command in the current environment, as when a user
        # has activated .venv: its bin folder comes first on PATH.
        env={
            **os.environ,
            "MLFLOW_TRACKING_URI": uri,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("mlproject-test")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.project.entryPoint"] == "main"
    assert run.data.params["n_hidden"] == "32" and "n_params" in run.data.params
    assert {"test_wer", "dev_loss", "train_loss"} <= set(run.data.metrics)
    assert (tmp_path / "ckpt" / "run.json").exists()
