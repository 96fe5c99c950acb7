"""One trial of a sweep, run by Ray Tune in an actor of its own: the ordinary training loop.

The trial's settings are the base config's with Tune's sampled values over them. It trains
with `deepspeech.training.loop.train` into a child run of the sweep's parent (made here, or
found by its trial tag when Tune restarts the trial) and a checkpoint folder of its own in the
sweep's folder, so a restarted trial resumes where it was, in the same run, logging no epoch
twice: the training loop's own resume.

After each epoch's dev evaluation (logged and checkpointed by then) the trial reports the dev
figures to Tune with `tune.report`, and Tune's scheduler decides. A trial it stops does not
return from `tune.report` (Tune's function API ends it there, by SystemExit); it then waits to
be ended, so that the training loop does not mark its run failed: the sweep's driver tags it
and marks it finished. The last epoch is reported once training has returned (after the test
report and the final weights are logged), when stopping the trial stops nothing.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepspeech.config import build_settings
from deepspeech.logs import NOISY_LOGGERS
from deepspeech.sweep.tracking import ParentRun, child_run, epoch_metrics
from deepspeech.training.config import TrainConfig

logger = logging.getLogger(__name__)

RUN_ID_METRIC = "mlflow_run_id"  # in every result a trial reports: the driver finds its run
ENDED_METRIC = "trial_ended"  # 1 in the report made once training returned
STOPPED_WAIT_SECONDS = 120.0  # a stopped trial's actor is ended within a second or two


@dataclass(frozen=True)
class TrialSetup:
    """What every trial shares, handed to it by `tune.with_parameters`."""

    sweep_name: str
    parent: ParentRun
    tracking_uri: str
    options: dict[str, Any]  # the base config, file paths and the store absolute
    trials_dir: str  # each trial's checkpoints: <trials_dir>/<trial id>/checkpoints
    epochs: int


def trial_config(setup: TrialSetup, trial_id: str, sampled: dict[str, Any]) -> TrainConfig:
    """The trial's training config: the base, the sampled values, the sweep's folder and run."""
    values = {
        **setup.options,
        **{key: _plain(value) for key, value in sampled.items()},
        "checkpoint_dir": str(Path(setup.trials_dir) / trial_id / "checkpoints"),
        "experiment_name": setup.parent.experiment_name,
        "tracking_uri": setup.tracking_uri,
    }
    return build_settings(TrainConfig, values)


def _plain(value: Any) -> Any:
    """A sampled value as a Python number: searchers may hand out NumPy scalars."""
    return value.item() if hasattr(value, "item") and hasattr(value, "dtype") else value


class Reporter:
    """Reports a trial's epochs to Tune."""

    def __init__(self, setup: TrialSetup, run_id: str) -> None:
        self.setup, self.run_id = setup, run_id

    def on_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """The training loop's hook after each evaluated epoch."""
        if epoch < self.setup.epochs:  # the last one once training has returned
            self._report(epoch, metrics, wait_when_stopped=True)

    def report_last(self) -> None:
        """The run's last evaluated epoch, from MLflow (with the test figures), marked as the
        trial's end (again, when training stopped itself early or ran out of time)."""
        epoch, metrics = epoch_metrics(self.setup.tracking_uri, self.run_id)
        if epoch is not None:
            self._report(epoch, {**metrics, ENDED_METRIC: 1}, wait_when_stopped=False)

    def _report(self, epoch: int, metrics: dict[str, float], wait_when_stopped: bool) -> None:
        from ray import tune

        try:
            tune.report({**metrics, "epoch": epoch, RUN_ID_METRIC: self.run_id})
        except SystemExit:
            if wait_when_stopped:
                logger.info("trial stopped after epoch %d; waiting to be ended", epoch)
                time.sleep(STOPPED_WAIT_SECONDS)
            raise


def run_trial(config: dict[str, Any], setup: TrialSetup) -> None:
    """Tune's trainable: train one sampled config, reporting every epoch's dev figures."""
    # As in ray_launch's workers: Ray may ask for Keras 2 through tf.keras; this is Keras 3.
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # trials train on their CPUs (cpus_per_trial)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # as the CLI has it
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from ray import tune

    trial_id = tune.get_context().get_trial_id()
    train_config = trial_config(setup, trial_id, config)
    run_name = f"{setup.sweep_name}-{trial_id.rsplit('_', 1)[-1]}"
    run_id, stopped_at = child_run(
        setup.tracking_uri, setup.parent, setup.sweep_name, trial_id, run_name
    )
    reporter = Reporter(setup, run_id)
    if stopped_at is None:
        # The training loop's tracker logs into the run that $MLFLOW_RUN_ID names (made for
        # `mlflow run`; see training/tracking.py); a resumed one finds it in run.json too.
        os.environ["MLFLOW_RUN_ID"] = run_id
        from deepspeech.training.loop import train  # TensorFlow, in the trial's own process

        train(train_config, on_epoch=reporter.on_epoch)
    else:
        logger.info("trial %s was stopped after epoch %d: not trained on", trial_id, stopped_at)
    reporter.report_last()
