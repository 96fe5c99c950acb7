"""`mlflow run . -e main` trains through the MLproject entry point into the run MLflow made;
`-e sweep` sweeps into it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def mlflow_run(
    entry_point: str, experiment: str, parameters: dict, uri: str
) -> subprocess.CompletedProcess:
    """`mlflow run . -e ENTRY_POINT` with `parameters` as -P options, into the store `uri`."""
    command = [sys.executable, "-m", "mlflow", "run", ".", "--env-manager", "local"]
    command += ["-e", entry_point, "--experiment-name", experiment]
    for name, value in parameters.items():
        command += ["-P", f"{name}={value}"]
    return subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        # --env-manager local runs the command in the current environment, as when a user
        # has activated .venv: its bin folder comes first on PATH. An experiment an earlier
        # test made active in this process (mlflow.set_experiment exports it as
        # MLFLOW_EXPERIMENT_ID) must not reach the child: `mlflow run` refuses both.
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_EXPERIMENT")},
            "MLFLOW_TRACKING_URI": uri,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        },
    )


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
    result = mlflow_run("main", "mlproject-test", parameters, uri)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("mlproject-test")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.project.entryPoint"] == "main"
    assert run.data.params["n_hidden"] == "32" and "n_params" in run.data.params
    assert {"test_wer", "dev_loss", "train_loss"} <= set(run.data.metrics)
    assert (tmp_path / "ckpt" / "run.json").exists()


def test_the_sweep_entry_point_defaults_are_the_example_sweep() -> None:
    """`mlflow run . -e sweep` passes its defaults as flags: they must be the sweep file's."""
    from mlflow.projects._project_spec import load_project

    from deepspeech.sweep.config import load_sweep

    entry = load_project(ROOT)._entry_points["sweep"]
    defaults = {p.name: p.default for p in entry.parameters.values()}
    sweep = load_sweep(ROOT / defaults["sweep"])
    assert defaults["trials"] == sweep.settings.trials
    assert defaults["max_concurrent"] == sweep.settings.max_concurrent
    assert defaults["ray_address"] == sweep.settings.ray_address
    assert Path(sweep.base.train_files).parent == Path(defaults["corpus"])
    assert "deepspeech sweep --config {sweep}" in entry.command


def test_mlflow_run_sweep_entry_point_makes_its_run_the_parent(tmp_path: Path) -> None:
    """The entry point makes the corpus, then sweeps into the run MLflow made for it."""
    import yaml
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    corpus = tmp_path / "corpus"
    base = {
        "train_files": str(corpus / "train.csv"),
        "dev_files": str(corpus / "dev.csv"),
        "feature_cache": str(tmp_path / "feature-cache"),
        "n_hidden": 16,
        "feature_stride": 2,
        "batch_size": 8,
        "epochs": 1,
        "report_count": 1,
        "intra_op_threads": 1,
        "inter_op_threads": 1,
    }
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    sweep = {
        "base_config": "base.yaml",
        "space": {"learning_rate": "loguniform(0.0005, 0.005)"},
        "search": "random",
        "scheduler": "none",
        "trials": 2,
        "max_concurrent": 2,
        "sweep_dir": str(tmp_path / "sweeps"),
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    parameters = {
        "sweep": tmp_path / "sweep.yaml",
        "corpus": corpus,
        "utterances": 60,
        "trials": 2,
        "max_concurrent": 2,
    }
    result = mlflow_run("sweep", "mlproject-sweep", parameters, uri)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("mlproject-sweep")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("mlflow.project.entryPoint") == "sweep"]
    children = [r for r in runs if r.info.run_id != parent.info.run_id]
    assert parent.info.status == "FINISHED" and "best_dev_wer" in parent.data.metrics
    assert parent.data.params["space.learning_rate"] == "loguniform(0.0005, 0.005)"
    assert len(children) == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    states = [(c.info.status, "dev_wer" in c.data.metrics) for c in children]
    assert states == [("FINISHED", True)] * 2, states
