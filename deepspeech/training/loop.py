"""The training loop: data, strategy, model, checkpoints, tracking, epochs, reports.

`train` reads as the recipe: `open_data` (manifests checked, feature cache built where
missing), `make_placement`, `build_state` (model, optimizer, counters) and
`restore_or_initialize`, `start_tracking`, then `train_one_epoch` and `end_epoch` (dev report,
early stop, checkpoint) until done, and the test report.

Resume is the normal path: the checkpoint holds the model (its normalisation statistics
included), the optimizer, the global step, the epoch and the position inside it, the dev-loss
history and the time already spent. Each worker's batches are a function of (seed, epoch,
worker), so a resumed run trains on exactly the steps it had not yet trained on. Decisions
that every worker must take together (save now, stop now) are agreed through the strategy, so
multi-worker runs never wait on each other forever. Dev and test sets are evaluated by the
chief alone.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepspeech.data.augment_spec import parse_augmentations
from deepspeech.data.augmented_epoch import AugmentedEpochs
from deepspeech.data.cache import CachedSet, open_cached_set, read_manifests
from deepspeech.data.pipeline import FeatureAugmentation, distributed_dataset, training_plans
from deepspeech.decoding.decoders import Decoder
from deepspeech.decoding.pool import batch_decoder
from deepspeech.errors import ConfigError
from deepspeech.model.birnn import build_birnn, count_parameters
from deepspeech.model.config import ModelConfig
from deepspeech.text import Alphabet
from deepspeech.training.checkpoint import (
    RunInfo,
    check_resumable,
    has_saved_weights,
    read_run_info,
    restore_training_checkpoint,
    save_model_checkpoint,
    write_run_info,
)
from deepspeech.training.config import TrainConfig
from deepspeech.training.evaluate import evaluate_set, make_eval_step
from deepspeech.training.init_from import (
    SOURCE_RUN_TAG,
    SOURCE_TAG,
    FineTuning,
    freeze_bottom_layers,
    initialize_from_source,
    open_init_source,
    plan_fine_tuning,
)
from deepspeech.training.mlflow_store import resolve_tracking_uri
from deepspeech.training.placement import configure_threads, make_placement
from deepspeech.training.precision import mixed_precision, with_loss_scaling
from deepspeech.training.report import WerReport
from deepspeech.training.schedule import LearningRateSchedule
from deepspeech.training.step import make_optimizer, make_train_step
from deepspeech.training.tracking import TEST_METRICS, MlflowCallback, git_commit

logger = logging.getLogger(__name__)

ProgressFactory = Callable[[str, int | None], AbstractContextManager[Callable[..., None]]]
EpochHook = Callable[[int, dict[str, float]], None]  # (epoch from 1, dev and epoch figures)
AGREE_EVERY = 10  # steps between the checks that all workers must agree on (save, time budget)


@dataclass(frozen=True)
class EpochRun:
    """What one call of `Epochs.train_one_epoch` did. The seconds are logged per epoch
    (`epoch_featurize_seconds`, `epoch_train_seconds`) because on a CPU the augmented audio's
    featurizing competes with the steps for the same cores: a run's time is read off them."""

    mean_loss: float  # of the steps run in this call
    out_of_time: bool
    featurize_seconds: float  # waiting for this epoch's augmented features (0: the cache)
    train_seconds: float  # the steps


class BackgroundRelease:
    """Drops the last references to objects on threads of their own, and joins them on demand.

    A spent tf.distribute input iterator takes up to a minute to destroy: its per-device
    prefetch datasets wait for their autotuning thread, which sleeps up to 60 s between runs.
    Destroyed on the training thread, that wait stalled every epoch's end (18-58 s measured).
    The threads are joined before training returns, not left as daemons: a daemon still inside
    the iterator's C++ destructor when the interpreter exits aborts the process (seen in CI as
    `terminate called ...`, exit -6, after a short training run had finished).
    """

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []

    def release(self, holder: list) -> None:
        """Empty `holder` on a new thread; the caller must hold no other reference to its items."""
        thread = threading.Thread(target=holder.clear, name="release-input-iterator")
        thread.start()
        self._threads.append(thread)

    def join(self) -> None:
        for thread in self._threads:
            thread.join()
        self._threads.clear()


@dataclass(frozen=True)
class TrainResult:
    """What a finished (or early-stopped) run reports back to its caller."""

    checkpoint_dir: Path
    mlflow_run_id: str | None
    steps: int
    epochs: int
    stopped_early: bool
    test_report: WerReport | None


def _no_progress(
    description: str, total: int | None
) -> AbstractContextManager[Callable[..., None]]:
    return nullcontext(lambda n=1, info=None: None)


def should_stop_early(dev_losses: Sequence[float], config: TrainConfig) -> bool:
    """DeepSpeech's rule: over the last `es_epochs` dev losses, stop when the newest is worse
    than all before it, or when the losses have flattened (newest near their mean, small std)."""
    if not config.early_stop or len(dev_losses) < config.es_epochs:
        return False
    window = np.asarray(dev_losses[-config.es_epochs :], dtype=np.float64)
    previous, latest = window[:-1], window[-1]
    if latest > previous.max():
        return True
    flat = abs(latest - previous.mean()) < config.es_mean_threshold
    return bool(flat and previous.std() < config.es_std_threshold)


def is_plateau(dev_losses: Sequence[float], patience: int) -> bool:
    """True when none of the last `patience` dev losses beat the best one before them."""
    if len(dev_losses) <= patience:
        return False
    return min(dev_losses[-patience:]) >= min(dev_losses[:-patience])


def open_data(
    config: TrainConfig, alphabet: Alphabet, progress: ProgressFactory
) -> dict[str, CachedSet]:
    """Every set the run names, from the feature cache (built where missing).

    All manifests are checked before any featurizing starts, so a bad dev or test manifest
    fails before hours of training features are computed.
    """
    specs = {"train": config.train_files, "dev": config.dev_files, "test": config.test_files}
    manifests = {name: read_manifests(spec, alphabet) for name, spec in specs.items() if spec}
    cache_dir = Path(config.feature_cache)
    data = {
        name: open_cached_set(
            read, cache_dir, config.features.numcep, alphabet, progress_factory=progress
        )
        for name, read in manifests.items()
    }
    train = data["train"]
    logger.info(
        "feature cache %s: %.2f h of training audio in %.1f MB (%.1f MB per audio hour)",
        cache_dir,
        train.audio_hours,
        train.nbytes / 1e6,
        train.megabytes_per_audio_hour,
    )
    return data


def check_config(config: TrainConfig, alphabet: Alphabet) -> RunInfo | None:
    """Fail fast on options that cannot work; the existing run in the checkpoint folder, if any."""
    if not config.train_files:
        raise ConfigError("no training data: give --train-files (or train_files in --config)")
    if config.lm and not Path(config.lm).is_file():
        raise ConfigError(
            f"language model {config.lm} not found; build one with `deepspeech lm build`"
        )
    checkpoint_dir = Path(config.checkpoint_dir)
    if not (checkpoint_dir / "run.json").exists():
        return None
    existing = read_run_info(checkpoint_dir)
    check_resumable(existing, config.model(alphabet.num_classes), config.features, config.to_dict())
    if existing.alphabet != alphabet:
        raise ConfigError(f"{checkpoint_dir} was trained with another alphabet")
    return existing


@dataclass
class TrainingState:
    """The model, the optimizer and the counters, all saved in each checkpoint."""

    model: Any
    optimizer: Any
    counters: dict[str, Any]  # tf.Variables: step, epoch, epoch_step, evaluated, stopped, ...
    manager: Any  # tf.train.CheckpointManager
    tracker: Any = None  # MlflowCallback on the chief, None elsewhere
    step_fns: dict[bool, Callable] = field(default_factory=dict)

    def value(self, name: str) -> int:
        return int(self.counters[name])


def fine_tuning_plan(
    config: TrainConfig, alphabet: Alphabet, stack: ExitStack
) -> FineTuning | None:
    """With --init-from and nothing saved yet: the located source, checked against this run's
    model before any data is read (a download lives as long as `stack`)."""
    if not config.init_from:
        return None
    if has_saved_weights(Path(config.checkpoint_dir)):
        logger.info("%s holds checkpoints: resuming, --init-from not used", config.checkpoint_dir)
        return None
    uri = resolve_tracking_uri(config.tracking_uri or None)
    source = stack.enter_context(open_init_source(config.init_from, uri))
    return plan_fine_tuning(
        source,
        config.model(alphabet.num_classes),
        config.features,
        alphabet,
        config.drop_layers,
        config.freeze_layers,
    )


def build_state(config: TrainConfig, model_config: ModelConfig, placement: Any) -> TrainingState:
    """Model, optimizer and counters in the strategy's scope, and their checkpoint manager.

    Non-chief workers write their (identical) checkpoints into a private subfolder: every
    worker must save for MultiWorkerMirroredStrategy, but only the chief's are read back.
    """
    import tensorflow as tf

    with placement.strategy.scope(), mixed_precision(config.mixed_precision):
        model = build_birnn(model_config)
        freeze_bottom_layers(model, config.freeze_layers)  # before the optimizer's slots exist
        optimizer = make_optimizer(config.optimizer, config.learning_rate)
        optimizer = with_loss_scaling(optimizer, config.mixed_precision)
        optimizer.build(model.trainable_variables)
    counters = {
        name: tf.Variable(0, dtype=tf.int64, trainable=False)
        for name in ("step", "epoch", "epoch_step", "evaluated", "stopped")
    }
    counters["trained_seconds"] = tf.Variable(0.0, dtype=tf.float64, trainable=False)
    # The last finished epoch's mean training loss, for an end of epoch a crash interrupted.
    counters["epoch_train_loss"] = tf.Variable(0.0, dtype=tf.float64, trainable=False)
    counters["dev_losses"] = tf.Variable(
        tf.zeros([0], tf.float32), shape=tf.TensorShape([None]), trainable=False
    )
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, **counters)
    checkpoint_dir = Path(config.checkpoint_dir)
    write_dir = (
        checkpoint_dir
        if placement.is_chief
        else checkpoint_dir / f".worker-{placement.worker_index}"
    )
    manager = tf.train.CheckpointManager(
        checkpoint, str(write_dir), max_to_keep=config.checkpoint_keep
    )
    return TrainingState(model, optimizer, counters, manager)


def restore_or_initialize(
    state: TrainingState,
    config: TrainConfig,
    train_set: CachedSet,
    existing: RunInfo | None,
    fine_tuning: FineTuning | None,
) -> bool:
    """Continue from the latest checkpoint (True), or start (False): from the fine-tuning
    source's weights, else from random ones with normalisation from the training cache."""
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(config.checkpoint_dir)
    if latest:
        restore_training_checkpoint(state.manager.checkpoint, latest, existing)
        logger.info(
            "resuming from %s: epoch %d, step %d",
            latest,
            state.value("epoch"),
            state.value("step"),
        )
        return True
    if fine_tuning:
        initialize_from_source(state.model, fine_tuning)
        return False
    mean, std = train_set.normalization()
    state.model.normalization.set_statistics(mean, std)
    return False


def start_tracking(
    config: TrainConfig,
    state: TrainingState,
    placement: Any,
    data: dict[str, CachedSet],
    existing: RunInfo | None,
    alphabet: Alphabet,
    steps_per_epoch: int,
    fine_tuning: FineTuning | None,
) -> None:
    """On the chief: open (or continue) the MLflow run, log the params, the manifests as
    datasets and the fine-tuning source; start the system metrics; write run.json."""
    if not placement.is_chief:
        return
    import tensorflow as tf

    checkpoint_dir = Path(config.checkpoint_dir)
    uri = resolve_tracking_uri(config.tracking_uri or None)
    run_id = existing.mlflow_run_id if existing and existing.tracking_uri == uri else None
    run_name = "/".join(checkpoint_dir.resolve().parts[-2:])  # e.g. "sample/checkpoints"
    tracker = MlflowCallback(uri, config.experiment_name, run_id, run_name=run_name)
    tracker.set_model(state.model)
    train = data["train"]
    tracker.log_params(
        {
            **config.to_dict(),
            "n_params": count_parameters(state.model),
            "tf_version": tf.__version__,
            "devices": placement.description,
            "git_commit": git_commit(),
            "global_batch_size": config.batch_size * placement.num_replicas,
            "steps_per_epoch": steps_per_epoch,
            "train_audio_hours": round(train.audio_hours, 4),
            "feature_cache_mb": round(train.nbytes / 1e6, 2),
            "feature_cache_mb_per_audio_hour": round(train.megabytes_per_audio_hour, 2),
            **{f"n_{name}_utterances": len(d) for name, d in data.items()},
        }
    )
    tracker.log_datasets(
        {"train": config.train_files, "dev": config.dev_files, "test": config.test_files}
    )
    if fine_tuning:
        tracker.set_tags(
            {SOURCE_TAG: fine_tuning.source.spec, SOURCE_RUN_TAG: fine_tuning.source.run_id or ""}
        )
    tracker.start_system_metrics(resumed=run_id is not None)
    write_run_info(
        checkpoint_dir,
        RunInfo(
            config.model(alphabet.num_classes),
            config.features,
            alphabet,
            config.to_dict(),
            tracker.run_id,
            uri,
        ),
    )
    state.tracker = tracker


def agree_any(strategy: Any, flag: bool) -> bool:
    """True on every worker when any worker's flag is true."""
    import tensorflow as tf

    value = strategy.run(lambda: tf.constant(1.0 if flag else 0.0))
    return bool(strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None) > 0)


def chief_value(placement: Any, value: float) -> float:
    """The chief's `value`, on every worker (the others' `value` is ignored)."""
    import tensorflow as tf

    local = value if placement.is_chief else 0.0
    strategy = placement.strategy
    total = strategy.reduce(
        tf.distribute.ReduceOp.SUM,
        strategy.run(lambda: tf.constant(local, tf.float32)),
        axis=None,
    )
    return float(total) / (placement.num_replicas // placement.num_workers)


class Epochs:
    """Runs the epochs of one training run; holds what the steps share."""

    def __init__(
        self,
        config: TrainConfig,
        state: TrainingState,
        placement: Any,
        data: dict[str, CachedSet],
        alphabet: Alphabet,
        progress: ProgressFactory,
        on_report: Callable[[WerReport], None] | None,
        on_epoch: EpochHook | None = None,
    ) -> None:

        self.config, self.state, self.placement = config, state, placement
        self.data, self.alphabet = data, alphabet
        self.progress, self.on_report, self.on_epoch = progress, on_report, on_epoch
        self.global_batch = config.batch_size * placement.num_replicas
        self.eval_step = make_eval_step(state.model, config.features.numcep)
        self.decoder: Decoder | None = None  # the chief's, while `run` runs
        self.budget_seconds = config.max_train_minutes * 60
        self.steps_per_epoch = self.plans(0)[0].steps
        self.spent_iterators = BackgroundRelease()
        self.augmented = self._augmented_epochs()
        self.schedule = LearningRateSchedule(
            config.lr_schedule,
            config.learning_rate,
            config.warmup_steps,
            config.epochs * self.steps_per_epoch,
        )

    def plans(self, epoch: int) -> list:
        """Every worker's plan for `epoch`, cut to the same number of steps."""

        return training_plans(
            self.data["train"],
            batch_size=self.config.batch_size,
            replicas_per_worker=self.placement.num_replicas // self.placement.num_workers,
            stride=self.config.feature_stride,
            seed=self.config.seed,
            epoch=epoch,
            num_workers=self.placement.num_workers,
        )

    def save(self) -> None:
        """Metrics first, then the checkpoint: a resumed run must not have lost the logged
        steps that the checkpoint says are done."""
        if self.state.tracker:
            self.state.tracker.flush()
        self.state.manager.save(checkpoint_number=self.state.value("step"))

    def out_of_time(self) -> bool:
        spent = float(self.state.counters["trained_seconds"])
        return bool(self.budget_seconds) and spent >= self.budget_seconds

    def evaluate(self, name: str, epoch: int | None) -> WerReport | None:
        """The WER report of set `name`, on the chief (None on other workers)."""

        if not self.placement.is_chief:
            return None
        cached = self.data[name]
        with self.progress(f"evaluate {name}", len(cached)) as advance:
            report = evaluate_set(
                self.eval_step,
                cached,
                self.config.feature_stride,
                self.alphabet,
                name,
                self.config.report_count,
                decoder=self.decoder,
                progress=advance,
            )
        logger.info(
            "%s: WER %.2f%%, CER %.2f%%, loss %.3f",
            name,
            100 * report.wer,
            100 * report.cer,
            report.mean_loss,
        )
        if self.on_report:
            self.on_report(report)
        if self.state.tracker:
            self.state.tracker.log_report(report, epoch)
        return report

    def train_one_epoch(self, epoch: int) -> EpochRun:
        """Train the rest of `epoch`."""

        state, strategy, counters = self.state, self.placement.strategy, self.state.counters
        start = state.value("epoch_step")
        plans = [plan.skip(start) for plan in self.plans(epoch)]
        steps_per_epoch = start + plans[0].steps
        featurize_start = time.monotonic()
        train_set = self.augmented_train_set(epoch)
        train_start = time.monotonic()
        dataset = distributed_dataset(
            strategy,
            train_set,
            plans,
            self.config.feature_stride,
            self.feature_augmentation(epoch),
        )
        self._compile(dataset.element_spec)
        variables = state.model.trainable_variables
        loss_sum, loss_steps, out_of_time = 0.0, 0, False
        last_save = last_tick = time.monotonic()
        iterator = iter(dataset)
        with self.progress(f"epoch {epoch + 1}/{self.config.epochs}", steps_per_epoch) as advance:
            advance(start)
            for element in iterator:
                step = state.value("step") + 1
                with_gradients = step % self.config.stats_every == 0
                if self.schedule.kind != "constant":  # constant: the rate plateaus may cut
                    state.optimizer.learning_rate.assign(self.schedule(step))
                loss, norm, grads = state.step_fns[with_gradients](element)
                loss = float(loss)
                counters["step"].assign(step)
                counters["epoch_step"].assign_add(1)
                now = time.monotonic()
                counters["trained_seconds"].assign_add(now - last_tick)
                last_tick = now
                loss_sum, loss_steps = loss_sum + loss, loss_steps + 1
                if state.tracker:
                    state.tracker.on_train_batch_end(
                        step,
                        {
                            "train_loss": loss,
                            "learning_rate": float(state.optimizer.learning_rate.numpy()),
                            "grad_global_norm": float(norm),
                        },
                    )
                    if with_gradients:
                        state.tracker.log_statistics(
                            step,
                            {v.path: v.numpy() for v in variables},
                            {v.path: g.numpy() for v, g in zip(variables, grads, strict=True)},
                        )
                advance(1, f"loss {loss:.2f}")
                if step % AGREE_EVERY == 0:
                    out_of_time = agree_any(strategy, self.out_of_time())
                    save_due = now - last_save >= self.config.checkpoint_secs
                    if agree_any(strategy, save_due) or out_of_time:
                        self.save()
                        last_save = now
                    if out_of_time:
                        logger.info("time budget spent during epoch %d", epoch + 1)
                        break
        spent = [iterator, dataset]
        del iterator, dataset
        self.spent_iterators.release(spent)
        return EpochRun(
            loss_sum / max(loss_steps, 1),
            out_of_time,
            featurize_seconds=train_start - featurize_start,
            train_seconds=time.monotonic() - train_start,
        )

    def augmented_train_set(self, epoch: int) -> CachedSet:
        """The training set this epoch reads: the cache, or (with waveform augmentations) this
        worker's shards featurized anew from this epoch's augmented audio."""
        return self.augmented.epoch_set(epoch) if self.augmented else self.data["train"]

    def _augmented_epochs(self) -> AugmentedEpochs | None:

        waveform = [a for a in parse_augmentations(self.config.augment) if a.domain == "waveform"]
        if not waveform:
            return None
        placement, train = self.placement, self.data["train"]
        return AugmentedEpochs(
            train,
            np.arange(placement.worker_index, len(train.shards), placement.num_workers),
            waveform,
            self.alphabet,
            seed=self.config.seed,
            stride=self.config.feature_stride,
            epochs=self.config.epochs,
            folder=Path(self.config.checkpoint_dir)
            / ".augmented"
            / f"worker-{placement.worker_index}",
            progress=self.progress,
        )

    def feature_augmentation(self, epoch: int) -> FeatureAugmentation | None:
        """SpecAugment for this epoch's batches, if any feature-domain augmentation is asked."""

        specs = tuple(a for a in parse_augmentations(self.config.augment) if a.domain == "feature")
        if not specs:
            return None
        normalization = self.state.model.normalization
        return FeatureAugmentation(
            specs,
            normalization.mean.numpy(),
            normalization.std.numpy(),
            self.config.seed,
            epoch,
        )

    def _compile(self, element_spec: object) -> None:
        """The compiled steps, once per run (every epoch's dataset has the same spec)."""

        if self.state.step_fns:
            return
        for with_gradients in (False, True):
            self.state.step_fns[with_gradients] = make_train_step(
                self.placement.strategy,
                self.state.model,
                self.state.optimizer,
                self.global_batch,
                self.config.grad_clip_norm,
                element_spec,
                with_gradients=with_gradients,
            )

    def end_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        """After `epoch` epochs: dev report, early-stop and plateau decisions, checkpoint."""
        state, config = self.state, self.config
        if "dev" not in self.data:
            if state.tracker:
                state.tracker.on_epoch_end(epoch, logs)
            return
        evaluate_start = time.monotonic()
        report = self.evaluate("dev", epoch)
        dev_seconds = time.monotonic() - evaluate_start
        dev_loss = chief_value(self.placement, report.mean_loss if report else 0.0)
        losses = [*state.counters["dev_losses"].numpy().tolist(), dev_loss]
        state.counters["dev_losses"].assign(losses)
        if state.tracker and report:
            dev = {"dev_loss": dev_loss, "dev_wer": report.wer, "dev_cer": report.cer}
            state.tracker.on_epoch_end(epoch, {**dev, "dev_seconds": dev_seconds, **logs})
        if should_stop_early(losses, config):
            logger.info(
                "early stop after epoch %d: dev loss %s", epoch, losses[-config.es_epochs :]
            )
            state.counters["stopped"].assign(1)
        if config.reduce_lr_on_plateau and is_plateau(losses, config.plateau_epochs):
            new_lr = float(state.optimizer.learning_rate.numpy()) * config.plateau_factor
            state.optimizer.learning_rate.assign(new_lr)
            logger.info("dev loss plateaued: learning rate now %.3g", new_lr)
        state.counters["evaluated"].assign(epoch)
        self.save()
        if self.on_epoch and report:  # logged and saved: the hook may end the process
            self.on_epoch(
                epoch, {"dev_loss": dev_loss, "dev_wer": report.wer, "dev_cer": report.cer, **logs}
            )

    def run(self) -> WerReport | None:
        """Epochs until done, stopped early or out of time; then the test report.

        The chief's decoder lives as long as the run: with `--lm`, beam search's worker
        processes read the LM once, not at every epoch's report.
        """

        decoding: AbstractContextManager[Decoder | None] = (
            batch_decoder(self.config.decoder(), self.alphabet, kind="logits")
            if self.placement.is_chief
            else nullcontext(None)
        )
        try:
            with decoding as self.decoder:
                self._run_epochs()
                if "test" not in self.data:
                    return None
                return self.evaluate("test", self.state.value("epoch"))
        finally:
            if self.augmented:
                self.augmented.close()
            self.spent_iterators.join()

    def _run_epochs(self) -> None:
        state, config = self.state, self.config
        # An epoch whose training finished before a crash, but whose dev evaluation did not.
        if "dev" in self.data and state.value("evaluated") < state.value("epoch"):
            loss = float(state.counters["epoch_train_loss"])
            self.end_epoch(state.value("epoch"), {"epoch_train_loss": loss})
        while state.value("epoch") < config.epochs and not state.value("stopped"):
            if self.out_of_time():
                logger.info("time budget of %.1f min spent", config.max_train_minutes)
                break
            epoch = state.value("epoch")
            run = self.train_one_epoch(epoch)
            state.counters["epoch"].assign(epoch + 1)
            state.counters["epoch_step"].assign(0)
            state.counters["epoch_train_loss"].assign(run.mean_loss)
            self.save()
            logs = {
                "epoch_train_loss": run.mean_loss,
                "epoch_featurize_seconds": run.featurize_seconds,
                "epoch_train_seconds": run.train_seconds,
            }
            self.end_epoch(epoch + 1, logs)
            if run.out_of_time:
                break


def train(
    config: TrainConfig,
    progress: ProgressFactory | None = None,
    on_report: Callable[[WerReport], None] | None = None,
    on_epoch: EpochHook | None = None,
) -> TrainResult:
    """Train (or resume, or fine-tune) the BiRNN as `config` says; evaluate dev each epoch and
    test at the end.

    `progress` draws bars (the CLI's `progress_bar`); `on_report` receives each WER report;
    `on_epoch(epoch, figures)` (a sweep's trial) each evaluated epoch's dev and training
    figures, on the chief, once they are logged and checkpointed.
    """
    progress = progress or _no_progress
    alphabet = config.read_alphabet()
    existing = check_config(config, alphabet)
    with ExitStack() as stack:
        fine_tuning = fine_tuning_plan(config, alphabet, stack)
        data = open_data(config, alphabet, progress)

        # TensorFlow starts here: devices must be configured before its first operation.
        import keras

        configure_threads(config.intra_op_threads, config.inter_op_threads)
        placement = make_placement(config.devices, shared_gpu=0 < config.gpus_per_worker < 1)
        keras.utils.set_random_seed(config.seed)
        state = build_state(config, config.model(alphabet.num_classes), placement)
        resumed = restore_or_initialize(state, config, data["train"], existing, fine_tuning)
    epochs = Epochs(config, state, placement, data, alphabet, progress, on_report, on_epoch)
    steps_per_epoch = epochs.steps_per_epoch
    if steps_per_epoch == 0:
        raise ConfigError(
            f"{len(data['train'])} training utterances do not fill one global batch of "
            f"{epochs.global_batch} ({config.batch_size} x {placement.num_replicas} replicas) "
            "on every worker; lower --batch-size"
        )
    start_tracking(config, state, placement, data, existing, alphabet, steps_per_epoch, fine_tuning)
    if not resumed:  # the initial weights, so a run can be replayed from its very first step
        state.manager.save(checkpoint_number=0)
    try:
        test_report = epochs.run()
        finish_tracking(state, config, test_report)
    except BaseException:
        if state.tracker:
            state.tracker.mark_failed()
        raise
    return TrainResult(
        checkpoint_dir=Path(config.checkpoint_dir),
        mlflow_run_id=state.tracker.run_id if state.tracker else None,
        steps=state.value("step"),
        epochs=state.value("epoch"),
        stopped_early=bool(state.value("stopped")),
        test_report=test_report,
    )


def finish_tracking(
    state: TrainingState, config: TrainConfig, test_report: WerReport | None
) -> None:
    """The final weights as the run's `checkpoint` artifact, the test metrics, the run closed.

    Every worker saves the weights (a multi-worker strategy's variables are saved by all
    workers together); only the chief's copy is logged.
    """
    with tempfile.TemporaryDirectory(prefix="deepspeech-final-") as folder:
        save_model_checkpoint(state.model, Path(folder))
        if state.tracker is None:
            return
        write_run_info(Path(folder), read_run_info(Path(config.checkpoint_dir)))
        state.tracker.log_checkpoint(Path(folder))
    values = (test_report.mean_loss, test_report.wer, test_report.cer) if test_report else ()
    state.tracker.on_train_end(dict(zip(TEST_METRICS, values, strict=False)))
