"""Everything MLflow: the run, params, per-step and per-epoch metrics, reports, plots, histograms.

Training reaches MLflow only through `MlflowCallback`, a Keras callback the training loop calls
like any other. Logging goes through `MlflowClient` with an explicit run id, so a resumed
training run continues the same MLflow run, and epoch metrics already logged before a crash are
not logged twice.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np

from deepspeech.training.checkpoint import CHECKPOINT_ARTIFACT
from deepspeech.training.mlflow_store import artifact_location
from deepspeech.training.report import WerReport

logger = logging.getLogger(__name__)

STEP_FLUSH_EVERY = 25  # buffered per-step metrics are written in batches of this many steps
HISTOGRAM_BINS = 50
EPOCH_METRICS = ("epoch_train_loss", "dev_loss", "dev_wer", "dev_cer")
TEST_METRICS = ("test_loss", "test_wer", "test_cer")
DATASET_ATTEMPTS = 3  # `log_datasets` against runs logging the same datasets at the same moment
SYSTEM_METRICS_SECONDS = 10  # between samples of system/* metrics (MLflow's default)


def git_commit() -> str:
    """The commit of the code that ran, so a run can be reproduced ('unknown' outside git)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def metric_name(variable_path: str) -> str:
    """'birnn/h1/kernel' -> 'h1/kernel': the 2017 layer names, without the model's own name."""
    return variable_path.split("/", 1)[1] if variable_path.startswith("birnn/") else variable_path


def tensor_statistics(prefix: str, arrays: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The 2017 `log_variable` scalars: mean, std, min, max of each tensor."""
    stats: dict[str, float] = {}
    for name, value in arrays.items():
        v = np.asarray(value, dtype=np.float64)
        key = f"{prefix}/{metric_name(name)}"
        stats[f"{key}/mean"] = float(v.mean())
        stats[f"{key}/std"] = float(v.std())
        stats[f"{key}/min"] = float(v.min())
        stats[f"{key}/max"] = float(v.max())
    return stats


class MlflowCallback(keras.callbacks.Callback):
    """Logs one training run to MLflow; create it on the chief worker only."""

    def __init__(
        self,
        tracking_uri: str,
        experiment_name: str,
        run_id: str | None = None,
        run_name: str | None = None,
    ) -> None:
        super().__init__()
        import mlflow
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        mlflow.set_tracking_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri)
        # Launched by `mlflow run`: log into the run MLflow made for this entry point.
        run_id = run_id or os.environ.get("MLFLOW_RUN_ID")
        if run_id is None:
            experiment = self.client.get_experiment_by_name(experiment_name)
            experiment_id = (
                experiment.experiment_id
                if experiment
                else self.client.create_experiment(
                    experiment_name, artifact_location=artifact_location(tracking_uri)
                )
            )
            run_id = self.client.create_run(experiment_id, run_name=run_name).info.run_id
        else:
            self.client.update_run(run_id, status="RUNNING")
        self.run_id = run_id
        self._pending: list[Any] = []
        self._monitor: Any = None
        self._histograms: dict[str, dict[str, Any]] = {}

    # --- params -----------------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params once; on resume keep the first values and warn about changed ones."""
        from mlflow.entities import Param

        existing = self.client.get_run(self.run_id).data.params
        changed = sorted(k for k, v in params.items() if k in existing and existing[k] != str(v))
        if changed:
            logger.warning("resumed run keeps its first values for changed options: %s", changed)
        new = [Param(k, str(v)) for k, v in params.items() if k not in existing]
        for i in range(0, len(new), 100):
            self.client.log_batch(self.run_id, params=new[i : i + 100])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, value)

    # --- inputs, system metrics, the final weights ------------------------------------------
    def log_datasets(self, manifests: Mapping[str, str]) -> None:
        """Each manifest CSV as an MLflow dataset with its digest, in context train, dev or
        test (`manifests`: {context: comma-separated paths}). A resumed run logs none twice:
        MLflow keeps one input per dataset and context."""
        import mlflow
        import pandas as pd
        from mlflow.data.sources import LocalArtifactDatasetSource
        from mlflow.entities import DatasetInput, InputTag

        inputs = []
        for context, spec in manifests.items():
            for path in (Path(p) for p in spec.split(",") if p):
                with warnings.catch_warnings():  # MLflow's hints on inferring a schema
                    warnings.simplefilter("ignore")
                    dataset = mlflow.data.from_pandas(
                        pd.read_csv(path, keep_default_na=False),
                        source=LocalArtifactDatasetSource(str(path.resolve())),
                        name=path.name,
                    )._to_mlflow_entity()
                tags = [InputTag("mlflow.data.context", context)]
                inputs.append(DatasetInput(dataset, tags=tags))
        for attempt in range(DATASET_ATTEMPTS if inputs else 0):
            try:
                self.client.log_inputs(self.run_id, datasets=inputs)
                return
            except mlflow.exceptions.MlflowException as error:
                # Runs logging the same dataset at once (a sweep's concurrent trials) race in
                # the store: both insert it, and the second fails on its unique key. It exists
                # then, so the next attempt only links it to this run.
                if "UNIQUE constraint failed" not in str(error) or attempt + 1 == DATASET_ATTEMPTS:
                    raise
                logger.info("dataset logged by another run at the same moment; logging again")

    def start_system_metrics(self, resumed: bool) -> None:
        """CPU, memory, disk, network (and GPU where nvidia-ml-py finds one) as `system/*`
        metrics every SYSTEM_METRICS_SECONDS, until the run ends."""
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        self._monitor = SystemMetricsMonitor(
            self.run_id,
            sampling_interval=SYSTEM_METRICS_SECONDS,
            resume_logging=resumed,
            tracking_uri=self.tracking_uri,
        )
        self._monitor.start()

    def log_checkpoint(self, folder: Path) -> None:
        """The final weights and run.json as the `checkpoint` artifact, so that `train
        --init-from runs:/RUN_ID` works on a machine without the checkpoint folder."""
        self.client.log_artifacts(self.run_id, str(folder), CHECKPOINT_ARTIFACT)

    # --- per-step metrics -------------------------------------------------------------------
    def on_train_batch_end(self, batch: int, logs: Mapping[str, float] | None = None) -> None:
        """`batch` is the global step; logs carry train_loss, learning_rate, grad_global_norm."""
        self._queue(logs or {}, step=batch)
        if len(self._pending) >= STEP_FLUSH_EVERY * 3:
            self.flush()

    def log_statistics(
        self, step: int, variables: Mapping[str, np.ndarray], gradients: Mapping[str, np.ndarray]
    ) -> None:
        """The 2017 `log_grads_and_vars`: scalars now, histograms kept for the epoch's artifact."""
        self._queue(tensor_statistics("var", variables), step=step)
        self._queue(tensor_statistics("grad", gradients), step=step)
        for prefix, arrays in (("var", variables), ("grad", gradients)):
            for name, value in arrays.items():
                counts, edges = np.histogram(np.asarray(value), bins=HISTOGRAM_BINS)
                self._histograms[f"{prefix}/{metric_name(name)}"] = {
                    "step": step,
                    "counts": counts.tolist(),
                    "edges": edges.tolist(),
                }
        self.flush()

    def _queue(self, values: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending.extend(Metric(k, float(v), now, int(step)) for k, v in values.items())

    def flush(self) -> None:
        for i in range(0, len(self._pending), 1000):
            self.client.log_batch(self.run_id, metrics=self._pending[i : i + 1000])
        self._pending = []

    # --- per-epoch --------------------------------------------------------------------------
    def logged_steps(self, key: str) -> set[int]:
        return {m.step for m in self.client.get_metric_history(self.run_id, key)}

    def history(self, key: str) -> list[tuple[int, float]]:
        return sorted((m.step, m.value) for m in self.client.get_metric_history(self.run_id, key))

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        """`epoch` counts from 1; values already logged for it (before a crash) are kept."""
        self.flush()
        fresh = {k: v for k, v in (logs or {}).items() if epoch not in self.logged_steps(k)}
        self._queue(fresh, step=epoch)
        self.flush()
        self._log_histograms(epoch)
        self.log_plots()

    def log_report(self, report: WerReport, epoch: int | None = None) -> None:
        """reports/<set>_epoch<N>.{json,txt}; the final test report is named by its epoch too."""
        stem = f"reports/{report.set_name}_epoch{epoch}" if epoch is not None else "reports/report"
        self.client.log_text(self.run_id, report.to_text(), f"{stem}.txt")
        self.client.log_dict(self.run_id, report.to_dict(), f"{stem}.json")

    def _log_histograms(self, epoch: int) -> None:
        if not self._histograms:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self.client.log_dict(self.run_id, self._histograms, f"histograms/epoch{epoch}.json")
        names = sorted(self._histograms)
        cols = 4
        rows = -(-len(names) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.2 * rows), squeeze=False)
        for ax, name in zip(axes.flat, names, strict=False):
            h = self._histograms[name]
            edges = np.asarray(h["edges"])
            ax.stairs(h["counts"], edges, fill=True)
            ax.set_title(f"{name} (step {h['step']})", fontsize=7)
            ax.tick_params(labelsize=6)
        for ax in list(axes.flat)[len(names) :]:
            ax.axis("off")
        fig.tight_layout()
        self.client.log_figure(self.run_id, fig, f"histograms/epoch{epoch}.png")
        plt.close(fig)

    def log_plots(self) -> None:
        """plots/loss.png and plots/wer.png, redrawn from the run's own history each epoch."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        train = self.history("train_loss")
        epoch_train = self.history("epoch_train_loss")
        dev = self.history("dev_loss")
        fig, (ax_step, ax_epoch) = plt.subplots(1, 2, figsize=(11, 4))
        if train:
            steps, values = zip(*train, strict=True)
            ax_step.plot(steps, values, lw=0.6, alpha=0.5, label="train_loss")
            window = max(1, len(values) // 50)
            smooth = np.convolve(values, np.ones(window) / window, mode="valid")
            ax_step.plot(steps[window - 1 :], smooth, lw=1.5, label=f"mean of {window}")
            ax_step.set_yscale("log")
        ax_step.set(xlabel="step", ylabel="CTC loss", title="training loss per step")
        for series, label in ((epoch_train, "epoch_train_loss"), (dev, "dev_loss")):
            if series:
                ax_epoch.plot(*zip(*series, strict=True), marker="o", label=label)
        ax_epoch.set(xlabel="epoch", ylabel="CTC loss", title="loss per epoch")
        for ax in (ax_step, ax_epoch):
            if ax.lines:
                ax.legend()
        fig.tight_layout()
        self.client.log_figure(self.run_id, fig, "plots/loss.png")
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(6, 4))
        for key in ("dev_wer", "dev_cer"):
            series = self.history(key)
            if series:
                ax.plot(*zip(*series, strict=True), marker="o", label=key)
        ax.set(xlabel="epoch", ylabel="error rate", title="dev WER / CER", ylim=(0, None))
        if ax.lines:
            ax.legend()
        fig.tight_layout()
        self.client.log_figure(self.run_id, fig, "plots/wer.png")
        plt.close(fig)

    # --- end ----------------------------------------------------------------------------------
    def on_train_end(self, logs: Mapping[str, float] | None = None) -> None:
        """Final test metrics (logged once) and the run marked finished."""
        self.flush()
        fresh = {k: v for k, v in (logs or {}).items() if not self.logged_steps(k)}
        self._queue(fresh, step=0)
        self.flush()
        self._stop_system_metrics()
        self.client.set_terminated(self.run_id, "FINISHED")

    def mark_failed(self) -> None:
        self.flush()
        self._stop_system_metrics()
        self.client.set_terminated(self.run_id, "FAILED")

    def _stop_system_metrics(self) -> None:
        if self._monitor is not None:
            self._monitor.finish()
            self._monitor = None


def log_tuning_run(
    tracking_uri: str,
    experiment_name: str,
    params: Mapping[str, Any],
    rows: list[dict[str, float]],
    best: Mapping[str, float],
    figure: Any,
) -> str:
    """One MLflow run for an alpha/beta search: the grid as a table, the best point as
    metrics, the WER heatmap as `plots/tuning.png`. Returns the run id."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment(
            experiment_name, artifact_location=artifact_location(tracking_uri)
        )
    )
    run_id = client.create_run(experiment_id, run_name="lm-tune").info.run_id
    for key, value in params.items():
        client.log_param(run_id, key, str(value))
    for key, value in best.items():
        client.log_metric(run_id, key, float(value))
    client.log_dict(run_id, {"grid": rows}, "tuning/grid.json")
    client.log_figure(run_id, figure, "plots/tuning.png")
    client.set_terminated(run_id, "FINISHED")
    return run_id
