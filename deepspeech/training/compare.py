"""Compare training runs from an MLflow store: one table of their figures, curves overlaid.

The MLflow UI compares runs too; this is the same view from a terminal or a script, and the PNG
can go into a report or pull request. A run with child runs (a sweep's parent, `deepspeech
sweep`) stands for its children: its trials side by side, with the keys it searched (its
`space.<key>` params) as columns and the epoch the scheduler stopped each trial at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepspeech.errors import ConfigError

COMPARED_PARAMS = ("n_hidden", "learning_rate", "dropout_rate", "batch_size", "feature_stride")
COMPARED_METRICS = ("dev_wer", "dev_cer", "test_wer", "test_cer", "test_loss")
CURVES = ("train_loss", "dev_loss", "dev_wer")
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: a child run names its parent with it
SEARCHED_PARAM_PREFIX = "space."  # a sweep's parent run: `space.<key>` for each searched key
STOPPED_EPOCH_TAG = "sweep.stopped_at_epoch"  # a sweep's trial its scheduler stopped


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    name: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    curves: dict[str, list[tuple[int, float]]]
    tags: dict[str, str] = field(default_factory=dict)
    searched: tuple[str, ...] = ()  # a sweep's trial: the keys its parent searched


def load_runs(
    tracking_uri: str, experiment_name: str | None, run_ids: list[str] | None
) -> list[RunSummary]:
    """The named runs (a run with children, such as a sweep's parent, stands for them, oldest
    first), or every run of the experiment (newest first)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri)
    searched: dict[str, tuple[str, ...]] = {}  # child run id -> the keys its parent searched
    if run_ids:
        try:
            named = [client.get_run(run_id) for run_id in run_ids]
        except MlflowException as e:
            raise ConfigError(f"{tracking_uri}: {e.message}") from e
        runs = []
        for run in named:
            children = client.search_runs(
                [run.info.experiment_id],
                filter_string=f"tags.`{PARENT_TAG}` = '{run.info.run_id}'",
                order_by=["start_time ASC"],
            )
            keys = tuple(
                k.removeprefix(SEARCHED_PARAM_PREFIX)
                for k in run.data.params
                if k.startswith(SEARCHED_PARAM_PREFIX)
            )
            searched.update({child.info.run_id: keys for child in children})
            runs.extend(children or [run])
    else:
        experiment = client.get_experiment_by_name(experiment_name or "")
        if experiment is None:
            names = [e.name for e in client.search_experiments()]
            raise ConfigError(
                f"{tracking_uri}: no experiment {experiment_name!r}; experiments there: {names}"
            )
        runs = client.search_runs([experiment.experiment_id], order_by=["start_time DESC"])
    if not runs:
        raise ConfigError(f"{tracking_uri}: no runs to compare")
    return [
        RunSummary(
            run_id=run.info.run_id,
            name=run.info.run_name or run.info.run_id[:8],
            status=run.info.status,
            params=dict(run.data.params),
            metrics=dict(run.data.metrics),
            curves={
                key: sorted(
                    (m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)
                )
                for key in CURVES
            },
            tags=dict(run.data.tags),
            searched=searched.get(run.info.run_id, ()),
        )
        for run in runs
    ]


def comparison_table(runs: list[RunSummary]) -> list[dict[str, Any]]:
    """One row per run: id, name, status, the compared params (and any key a sweep searched)
    and final metrics; for a sweep's trials, the epoch its scheduler stopped it at."""
    searched = [k for run in runs for k in run.searched]
    params = list(dict.fromkeys([*COMPARED_PARAMS, *searched]))
    stopped = any(run.searched for run in runs)
    return [
        {
            "run": run.run_id[:8],
            "name": run.name,
            "status": run.status,
            **{p: run.params.get(p, "") for p in params},
            **{m: run.metrics.get(m) for m in COMPARED_METRICS},
            **({"stopped at": run.tags.get(STOPPED_EPOCH_TAG, "")} if stopped else {}),
        }
        for run in runs
    ]


def plot_comparison(runs: list[RunSummary], output: Path) -> Path:
    """Training loss, dev loss and dev WER of every run, overlaid, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CURVES), figsize=(5 * len(CURVES), 4))
    for ax, key in zip(axes, CURVES, strict=True):
        for run in runs:
            if run.curves[key]:
                steps, values = zip(*run.curves[key], strict=True)
                ax.plot(steps, values, marker="" if key == "train_loss" else "o", label=run.name)
        ax.set(title=key, xlabel="step" if key == "train_loss" else "epoch")
        if key.endswith("loss"):
            ax.set_yscale("log")
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output
