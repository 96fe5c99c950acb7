"""Run a sweep on Ray Tune: `deepspeech sweep --config experiments/sweeps/X.yaml`.

Tune does the searching and the bookkeeping of trials: it samples the space (`tune.choice`,
`tune.uniform`, ...) with the search algorithm (`BasicVariantGenerator` for random,
`OptunaSearch` with Optuna's TPE sampler), runs at most `max_concurrent` trials at once with
`cpus_per_trial` CPUs each, stops trials with `ASHAScheduler` on the per-epoch metric, keeps the
experiment's state in the sweep's folder and resumes it with `Tuner.restore`; its `ResultGrid`
gives the table and the best trial.

What is ours, and why: each trial's MLflow run is the training loop's own (it already logs
params, per-step and per-epoch metrics, reports, plots and the final weights, and resumes
without logging an epoch twice), made a child of the sweep's parent run; Ray's
`MLflowLoggerCallback` or `setup_mlflow` would log each trial a second time, into a run that a
restarted trial does not find again. Each trial keeps its training checkpoints in a folder of
its own (`trials/<trial id>`), not as Tune checkpoints: the loop resumes from them mid-epoch,
and Tune would copy them to its storage after every epoch for nothing. ASHA counts time in the
`epoch` each result carries rather than in Tune's `training_iteration`, which a trial that
Tune restarts without a Tune checkpoint would count from 1 again.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepspeech.errors import DeepSpeechError
from deepspeech.sweep.config import Sweep
from deepspeech.sweep.tracking import (
    STOPPED_EPOCH_TAG,
    ParentRun,
    TrialRow,
    client_for,
    end_unfinished,
    finish_parent,
    mark_completed,
    mark_stopped,
    open_parent,
)
from deepspeech.sweep.trial import ENDED_METRIC, RUN_ID_METRIC, TrialSetup, run_trial
from deepspeech.training.ray_launch import connect_ray

logger = logging.getLogger(__name__)

ProgressFactory = Callable[[str, int], AbstractContextManager[Callable[..., None]]]
TUNE_FOLDER = "tune"  # Tune's experiment in the sweep's folder: its state, each trial's results
TRIALS_FOLDER = "trials"  # each trial's training checkpoints, by trial id
# Seconds between Tune's saves of the experiment state (its default is 10 or more): a killed
# sweep then loses at most this much of what its trials did, and restarts no finished trial.
EXPERIMENT_STATE_SECONDS = "2"


@dataclass(frozen=True)
class SweepResult:
    parent_run_id: str
    folder: Path
    rows: list[TrialRow]
    best: TrialRow | None
    seconds: float
    resumed: bool

    @property
    def stopped_early(self) -> int:
        return sum(r.stopped_early for r in self.rows)


def trial_dirname(trial: Any) -> str:
    """Tune's folder of a trial: its id (which a restored trial keeps)."""
    return trial.trial_id


def _tune_callback(sweep: Sweep) -> Any:
    """A Tune callback on the driver: tags each trial's run with the scheduler's decision."""
    from ray.tune import Callback

    class SweepCallback(Callback):
        def __init__(self, tracking_uri: str, epochs: int) -> None:
            self.tracking_uri, self.epochs = tracking_uri, epochs

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
            # Tune marks a result `done` when the scheduler stops the trial on it. A trial's
            # last report comes once training returned: stopping it there stops nothing.
            epoch = int(result.get("epoch", self.epochs))
            stopped = result.get("done") and not result.get(ENDED_METRIC)
            if stopped and epoch < self.epochs and result.get(RUN_ID_METRIC):
                mark_stopped(self.tracking_uri, result[RUN_ID_METRIC], epoch)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info):
            run_id = (trial.last_result or {}).get(RUN_ID_METRIC)
            if run_id:
                mark_completed(self.tracking_uri, run_id)

    return SweepCallback(sweep.tracking_uri, sweep.epochs)


def _search_algorithm(sweep: Sweep) -> Any:
    s = sweep.settings
    points = [sweep.base_values()] if s.include_base else None
    if s.search == "random":
        from ray.tune.search.basic_variant import BasicVariantGenerator

        # Not a Searcher: it limits concurrency itself (Tune ignores max_concurrent_trials).
        return BasicVariantGenerator(
            points_to_evaluate=points, random_state=s.seed, max_concurrent=s.max_concurrent
        )
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=s.startup_trials)
    return OptunaSearch(points_to_evaluate=points, sampler=sampler)


def _scheduler(sweep: Sweep) -> Any:
    s = sweep.settings
    if s.scheduler == "none":
        from ray.tune.schedulers import FIFOScheduler

        return FIFOScheduler()
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        time_attr="epoch",
        max_t=sweep.epochs,
        grace_period=s.grace_period,
        reduction_factor=s.reduction_factor,
    )


def _tuner(sweep: Sweep, parent: ParentRun) -> Any:
    """A new Tuner, or the sweep's own restored from its folder (finished trials stay so)."""
    from ray import tune

    setup = TrialSetup(
        sweep_name=sweep.name,
        parent=parent,
        tracking_uri=sweep.tracking_uri,
        options=sweep.trial_options(),
        trials_dir=str(sweep.folder / TRIALS_FOLDER),
        epochs=sweep.epochs,
    )
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, setup=setup), {"cpu": sweep.settings.cpus_per_trial}
    )
    path = sweep.folder / TUNE_FOLDER
    if tune.Tuner.can_restore(str(path)):
        logger.info("resuming sweep %s from %s", sweep.name, path)
        return tune.Tuner.restore(
            str(path), trainable=trainable, resume_unfinished=True, resume_errored=True
        )
    s = sweep.settings
    return tune.Tuner(
        trainable,
        param_space={d.key: d.to_tune() for d in sweep.space},
        tune_config=tune.TuneConfig(
            metric=s.metric,
            mode="min",
            search_alg=_search_algorithm(sweep),
            scheduler=_scheduler(sweep),
            num_samples=s.trials,
            max_concurrent_trials=s.max_concurrent if s.search == "tpe" else None,
            reuse_actors=False,  # a fresh process per trial: TensorFlow's state is global
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=TUNE_FOLDER,
            storage_path=str(sweep.folder),
            callbacks=[_tune_callback(sweep)],
            failure_config=tune.FailureConfig(max_failures=0),
            verbose=1,
        ),
    )


def featurize(sweep: Sweep, progress: ProgressFactory | None) -> None:
    """Check the manifests and build their feature cache once, before Ray starts: a bad
    manifest fails here in one line, and the trials do not featurize side by side."""
    from deepspeech.data.cache import open_cached_set, read_manifests

    base = sweep.base
    alphabet = base.read_alphabet()
    if base.lm and not Path(base.lm).is_file():
        raise DeepSpeechError(f"language model {base.lm} not found; build one with `lm build`")
    read = [read_manifests(spec, alphabet) for spec in (base.train_files, base.dev_files)]
    if base.test_files:
        read.append(read_manifests(base.test_files, alphabet))
    for manifests in read:
        open_cached_set(
            manifests,
            Path(base.feature_cache),
            base.features.numcep,
            alphabet,
            progress_factory=progress,
        )


def run_sweep(sweep: Sweep, progress: ProgressFactory | None = None) -> SweepResult:
    """Run (or resume) the sweep; returns its trials, best first."""
    started = time.monotonic()
    featurize(sweep, progress)
    sweep.folder.mkdir(parents=True, exist_ok=True)
    parent = open_parent(sweep)
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", EXPERIMENT_STATE_SECONDS)
    import ray

    s = sweep.settings
    # ray_launch's start-up: joins `ray_address`, or starts a one-machine Ray on 127.0.0.1
    # with a CPU for each of the trials that may run at once.
    connect_ray(
        dataclasses.replace(
            sweep.base,
            ray_address=s.ray_address,
            workers=s.max_concurrent,
            cpus_per_worker=s.cpus_per_trial,
        )
    )
    try:
        results = _tuner(sweep, parent).fit()
        rows = trial_rows(sweep, results)
    except BaseException as e:
        status = "KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED"
        end_unfinished(sweep.tracking_uri, parent, status)
        raise
    finally:
        ray.shutdown()
    # On Ctrl-C Tune saves its state, ends its loop and returns, every trial marked ended:
    # each trial's own last report tells.
    ended = sum(r.ended for r in rows)
    if ended < s.trials:
        end_unfinished(sweep.tracking_uri, parent, "KILLED")
        raise DeepSpeechError(
            f"sweep {sweep.name} interrupted with {ended} of {s.trials} trials ended; the same "
            "command resumes it"
        )
    best = _best(sweep, results, rows)
    for row in rows:  # Tune has ended every actor: no stopped trial's process writes any more
        if row.stopped_early:
            mark_stopped(sweep.tracking_uri, row.run_id, row.stopped_at_epoch or 0)
    finish_parent(sweep, parent, rows, best)
    if best is None:
        errors = [r.error for r in rows if r.error]
        raise DeepSpeechError(
            f"no trial of sweep {sweep.name} reported {s.metric}"
            + (f"; the first error: {errors[0]}" if errors else "")
        )
    metric = s.metric
    rows.sort(key=lambda r: (metric not in r.metrics, r.metrics.get(metric, 0.0)))
    return SweepResult(
        parent.run_id, sweep.folder, rows, best, time.monotonic() - started, parent.resumed
    )


def trial_rows(sweep: Sweep, results: Any) -> list[TrialRow]:
    """Every trial of Tune's ResultGrid, with what its run says about an early stop."""
    client = client_for(sweep.tracking_uri)
    rows = []
    for result in results:
        metrics = dict(result.metrics or {})
        run_id = str(metrics.get(RUN_ID_METRIC, ""))
        stopped = client.get_run(run_id).data.tags.get(STOPPED_EPOCH_TAG) if run_id else None
        error = " ".join(str(result.error).split())[:300] if result.error else ""
        rows.append(
            TrialRow(
                trial_id=str(metrics.get("trial_id") or Path(result.path).name),
                run_id=run_id,
                status="ERROR" if result.error else "TERMINATED",
                settings={d.key: (result.config or {}).get(d.key) for d in sweep.space},
                epoch=int(metrics["epoch"]) if "epoch" in metrics else None,
                metrics={
                    k: float(v)
                    for k, v in metrics.items()
                    if k.startswith(("dev_", "test_", "epoch_train_loss"))
                    and isinstance(v, (int, float))
                },
                stopped_at_epoch=int(stopped) if stopped else None,
                error=error,
                ended=bool(error or stopped or metrics.get(ENDED_METRIC)),
            )
        )
    return rows


def _best(sweep: Sweep, results: Any, rows: list[TrialRow]) -> TrialRow | None:
    """Tune's best trial: the lowest metric at its last reported epoch."""
    metric = sweep.settings.metric
    if not any(metric in r.metrics for r in rows):
        return None
    best = results.get_best_result(metric=metric, mode="min", scope="last")
    run_id = (best.metrics or {}).get(RUN_ID_METRIC)
    return next(r for r in rows if r.run_id == run_id)
