"""The MLflow side of a sweep: one parent run, a child run per trial, the comparison.

The parent run holds the sweep's settings as params (`space.<key>` for each distribution),
and at the end `best_<metric>`, the best trial's settings (`best.<key>`), the table of all
trials (`sweep/trials.csv`) and the metric plotted against each searched key
(`sweep/<metric>_by_setting.png`). A child run is an ordinary training run (the training loop
logs it) tagged with its parent (`mlflow.parentRunId`, so the MLflow UI nests it) and its Tune
trial; a trial the scheduler stopped is tagged `sweep.stopped_early` true and
`sweep.stopped_at_epoch`. Every write is keyed by run id, so a resumed sweep continues the same
runs. MLflow is imported where it is used: `deepspeech sweep --help` stays fast.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepspeech.errors import ConfigError
from deepspeech.files import atomic_write
from deepspeech.sweep.config import EPOCH_METRICS, Sweep
from deepspeech.training.compare import PARENT_TAG, SEARCHED_PARAM_PREFIX, STOPPED_EPOCH_TAG
from deepspeech.training.mlflow_store import artifact_location

logger = logging.getLogger(__name__)

SWEEP_TAG = "sweep.name"
TRIAL_TAG = "sweep.trial_id"
STOPPED_TAG = "sweep.stopped_early"
BEST_RUN_TAG = "sweep.best_run_id"
RESUMED_INTO_TAG = "sweep.resumed_into"  # on a run `mlflow run` made for a resumed sweep
STATE_FILE = "sweep.json"  # in the sweep's folder: its parent run and what it was started with
TABLE_ARTIFACT = "sweep/trials.csv"


@dataclass(frozen=True)
class ParentRun:
    run_id: str
    experiment_id: str
    experiment_name: str
    resumed: bool


@dataclass(frozen=True)
class TrialRow:
    """One trial in the sweep's table: its settings, its last reported epoch, its run."""

    trial_id: str
    run_id: str
    status: str  # Tune's: TERMINATED, ERROR, ...
    settings: dict[str, Any]
    epoch: int | None
    metrics: dict[str, float] = field(default_factory=dict)
    stopped_at_epoch: int | None = None
    error: str = ""
    ended: bool = True  # False: interrupted before it trained all it would

    @property
    def stopped_early(self) -> bool:
        return self.stopped_at_epoch is not None


def client_for(tracking_uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri)


# --- the parent run ---------------------------------------------------------------------------
def open_parent(sweep: Sweep) -> ParentRun:
    """The sweep's parent run: the one its folder names (a resumed sweep), else the run
    `mlflow run` made for it ($MLFLOW_RUN_ID), else a new one. Its settings go in as params."""
    client = client_for(sweep.tracking_uri)
    state_path = sweep.folder / STATE_FILE
    launched = os.environ.get("MLFLOW_RUN_ID")  # `mlflow run . -e sweep`
    if state_path.exists():
        state = json.loads(state_path.read_text(encoding="utf-8"))
        _check_same_sweep(sweep, state, state_path)
        run_id = state["parent_run_id"]
        try:
            run = client.get_run(run_id)
        except Exception as e:  # MlflowException: a store that lost the run
            raise ConfigError(
                f"{state_path}: its parent run {run_id} is not in {sweep.tracking_uri}; delete "
                f"{sweep.folder} to start the sweep afresh"
            ) from e
        client.update_run(run_id, status="RUNNING")
        if launched and launched != run_id:
            client.set_tag(launched, RESUMED_INTO_TAG, run_id)
            logger.warning("resumed sweep %s logs into its parent run %s", sweep.name, run_id)
        experiment_id = run.info.experiment_id
        resumed = True
    else:
        if launched:
            run_id = launched
            experiment_id = client.get_run(run_id).info.experiment_id
        else:
            experiment_id = _experiment_id(client, sweep.experiment_name, sweep.tracking_uri)
            run_id = client.create_run(experiment_id, run_name=f"sweep-{sweep.name}").info.run_id
        with atomic_write(state_path) as stream:
            json.dump({"parent_run_id": run_id, **sweep.identity()}, stream, indent=2)
        resumed = False
    client.set_tag(run_id, SWEEP_TAG, sweep.name)
    _log_new_params(client, run_id, sweep_params(sweep))
    name = client.get_experiment(experiment_id).name
    return ParentRun(run_id, experiment_id, name, resumed)


def _check_same_sweep(sweep: Sweep, state: Mapping[str, Any], state_path: Path) -> None:
    """A resumed sweep keeps what it started with (Tune restores its own copy of it)."""
    now = json.loads(json.dumps(sweep.identity()))
    for part in ("settings", "base"):
        before, after = state.get(part, {}), now[part]
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                where = "" if part == "settings" else "the base config's "
                raise ConfigError(
                    f"{state_path}: this sweep started with {where}{key} {before.get(key)!r}, "
                    f"now {after.get(key)!r}; a resumed sweep keeps its settings: give the same "
                    f"ones, or another sweep_dir (or delete {state_path.parent}) to start afresh"
                )


def _experiment_id(client: Any, name: str, tracking_uri: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location(tracking_uri))


def sweep_params(sweep: Sweep) -> dict[str, Any]:
    """The parent run's params: the space, the search, the scheduler, the budget."""
    s = sweep.settings
    params: dict[str, Any] = {
        "base_config": str(sweep.base_path),
        **{f"{SEARCHED_PARAM_PREFIX}{d.key}": d.spec for d in sweep.space},
        "metric": s.metric,
        "mode": "min",
        "search": s.search,
        "scheduler": s.scheduler,
        "trials": s.trials,
        "max_concurrent": s.max_concurrent,
        "cpus_per_trial": s.cpus_per_trial,
        "epochs": sweep.epochs,
        "include_base": s.include_base,
        "seed": s.seed,
    }
    if s.search == "tpe":
        params["startup_trials"] = s.startup_trials
    if s.scheduler == "asha":
        params.update(grace_period=s.grace_period, reduction_factor=s.reduction_factor)
        params["max_t"] = sweep.epochs
    return params


def _log_new_params(client: Any, run_id: str, params: Mapping[str, Any]) -> None:
    """Params are write-once in MLflow: a resumed run logs only the ones it lacks."""
    from mlflow.entities import Param

    existing = client.get_run(run_id).data.params
    new = [Param(k, str(v)) for k, v in params.items() if k not in existing]
    for i in range(0, len(new), 100):
        client.log_batch(run_id, params=new[i : i + 100])


# --- child runs -------------------------------------------------------------------------------
def child_run(
    tracking_uri: str, parent: ParentRun, sweep_name: str, trial_id: str, run_name: str
) -> tuple[str, int | None]:
    """The trial's child run (found by its tags, else made), and the epoch the scheduler
    stopped it at, if it did (a trial restarted after a resume must not train on)."""
    client = client_for(tracking_uri)
    found = client.search_runs(
        [parent.experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{parent.run_id}' and tags.`{TRIAL_TAG}` = "
        f"'{trial_id}'",
        max_results=1,
    )
    if found:
        stopped = found[0].data.tags.get(STOPPED_EPOCH_TAG)
        return found[0].info.run_id, int(stopped) if stopped else None
    tags = {PARENT_TAG: parent.run_id, TRIAL_TAG: trial_id, SWEEP_TAG: sweep_name}
    run = client.create_run(parent.experiment_id, run_name=run_name, tags=tags)
    return run.info.run_id, None


def mark_stopped(tracking_uri: str, run_id: str, epoch: int) -> None:
    """The scheduler stopped the trial after `epoch`: tagged, and finished (not failed).
    Idempotent: a run already marked so keeps its end time."""
    client = client_for(tracking_uri)
    run = client.get_run(run_id)
    if run.data.tags.get(STOPPED_EPOCH_TAG) != str(epoch):
        client.set_tag(run_id, STOPPED_TAG, "true")
        client.set_tag(run_id, STOPPED_EPOCH_TAG, str(epoch))
    if run.info.status != "FINISHED":
        client.set_terminated(run_id, "FINISHED")


def mark_completed(tracking_uri: str, run_id: str) -> None:
    """A trial that ended without the scheduler stopping it."""
    client = client_for(tracking_uri)
    if STOPPED_TAG not in client.get_run(run_id).data.tags:
        client.set_tag(run_id, STOPPED_TAG, "false")


def epoch_metrics(tracking_uri: str, run_id: str) -> tuple[int | None, dict[str, float]]:
    """The run's last evaluated epoch and its figures (dev and the epoch's training loss),
    with the test figures when there are any: what the run itself logged."""
    client = client_for(tracking_uri)
    history = {
        key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        for key in (*EPOCH_METRICS, "epoch_train_loss")
    }
    if not history[EPOCH_METRICS[0]]:
        return None, {}
    epoch = history[EPOCH_METRICS[0]][-1][0]
    values = {key: dict(series)[epoch] for key, series in history.items() if epoch in dict(series)}
    run_metrics = client.get_run(run_id).data.metrics
    values.update({k: v for k, v in run_metrics.items() if k.startswith("test_")})
    return epoch, values


# --- the end: table, plot, best -----------------------------------------------------------------
def finish_parent(
    sweep: Sweep, parent: ParentRun, rows: Sequence[TrialRow], best: TrialRow | None
) -> None:
    """The table, the plot, the best trial's figure and settings; the parent run finished
    (failed when no trial reported the metric)."""
    client = client_for(sweep.tracking_uri)
    run_id = parent.run_id
    client.log_text(run_id, trials_csv(sweep, rows), TABLE_ARTIFACT)
    figure = plot_trials(sweep, rows, best)
    client.log_figure(run_id, figure, f"sweep/{sweep.settings.metric}_by_setting.png")
    import matplotlib.pyplot as plt

    plt.close(figure)
    if best is not None:
        metric = sweep.settings.metric
        _log_metric_once(client, run_id, f"best_{metric}", best.metrics[metric])
        _log_new_params(client, run_id, {f"best.{k}": v for k, v in best.settings.items()})
        client.set_tag(run_id, BEST_RUN_TAG, best.run_id)
    _log_metric_once(client, run_id, "trials_stopped_early", sum(r.stopped_early for r in rows))
    client.set_terminated(run_id, "FINISHED" if best is not None else "FAILED")


def _log_metric_once(client: Any, run_id: str, key: str, value: float) -> None:
    """A sweep that is run again once finished logs nothing new."""
    if client.get_run(run_id).data.metrics.get(key) != value:
        client.log_metric(run_id, key, value)


def end_unfinished(tracking_uri: str, parent: ParentRun, status: str) -> None:
    """A sweep that ended before its trials did (Ctrl-C, an error): the parent run and the
    trials' runs still running end as `status`; a resumed sweep sets them running again."""
    client = client_for(tracking_uri)
    running = client.search_runs(
        [parent.experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{parent.run_id}' and attributes.status = 'RUNNING'",
    )
    for run in running:
        client.set_terminated(run.info.run_id, status)
    client.set_terminated(parent.run_id, status)


def trials_csv(sweep: Sweep, rows: Sequence[TrialRow]) -> str:
    keys = [d.key for d in sweep.space]
    metrics = sorted({m for r in rows for m in r.metrics})
    columns = ["trial", "run_id", "status", *keys, "epochs", *metrics, "stopped_early"]
    columns += ["stopped_at_epoch", "error"]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for r in rows:
        writer.writerow(
            [
                r.trial_id,
                r.run_id,
                r.status,
                *(r.settings.get(k, "") for k in keys),
                "" if r.epoch is None else r.epoch,
                *(r.metrics.get(m, "") for m in metrics),
                str(r.stopped_early).lower(),
                "" if r.stopped_at_epoch is None else r.stopped_at_epoch,
                r.error,
            ]
        )
    return out.getvalue()


def plot_trials(sweep: Sweep, rows: Sequence[TrialRow], best: TrialRow | None) -> Any:
    """The metric of each trial's last epoch against each searched key, one panel a key:
    circles ran every epoch, crosses were stopped early, the star is the best."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = sweep.settings.metric
    fig, axes = plt.subplots(
        1, len(sweep.space), figsize=(4.5 * len(sweep.space), 3.8), squeeze=False
    )
    shown = [r for r in rows if metric in r.metrics]
    for ax, d in zip(axes[0], sweep.space, strict=True):
        # Words (or a mix) are placed at their index among the choices; numbers at themselves.
        categorical = d.name == "choice" and not all(isinstance(a, (int, float)) for a in d.args)
        for stopped, marker, label in ((False, "o", "all epochs"), (True, "x", "stopped")):
            group = [r for r in shown if r.stopped_early == stopped]
            if group:
                x = [r.settings[d.key] for r in group]
                ax.scatter(
                    [d.args.index(v) for v in x] if categorical else x,
                    [r.metrics[metric] for r in group],
                    marker=marker,
                    label=label,
                )
        if best is not None and metric in best.metrics:
            x_best = best.settings[d.key]
            ax.scatter(
                [d.args.index(x_best) if categorical else x_best],
                [best.metrics[metric]],
                marker="*",
                s=220,
                label="best",
            )
        if categorical:
            ax.set_xticks(range(len(d.args)), [str(a) for a in d.args])
        if d.log_scale:
            ax.set_xscale("log")
            ax.tick_params(axis="x", which="minor", labelbottom=False)  # they overlap
        ax.set(xlabel=f"{d.key}  {d.spec}", ylabel=f"last {metric}", title=d.key)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        axes[0][0].legend(handles, labels, fontsize=8)
    fig.suptitle(f"sweep {sweep.name}: {len(shown)} trials")
    fig.tight_layout()
    return fig
