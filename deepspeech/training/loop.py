"""The training loop: features, strategy, compiled step, checkpoints, resume, epochs, reports.

Resume is the normal path: the checkpoint holds the model, the optimizer, the global step, the
epoch and the position inside it, the dev-loss history and the time already spent. Batch order
is a function of (seed, epoch), so a resumed run trains on exactly the batches it had not yet
trained on. Decisions that every worker must take together (save now, stop now) are agreed
through the strategy, so multi-worker runs never wait on each other forever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepspeech.config import TrainConfig
from deepspeech.data.manifest import Utterance, read_manifests
from deepspeech.errors import ConfigError
from deepspeech.text import Alphabet
from deepspeech.training.checkpoint import RunInfo, check_resumable, read_run_info, write_run_info
from deepspeech.training.report import WerReport

logger = logging.getLogger(__name__)

ProgressFactory = Callable[[str, int | None], AbstractContextManager[Callable[..., None]]]
AGREE_EVERY = 10  # steps between the checks that all workers must agree on (save, time budget)


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


def load_alphabet(path: str) -> Alphabet:
    return Alphabet.from_file(Path(path)) if path else Alphabet.default()


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


def train(
    config: TrainConfig,
    progress: ProgressFactory | None = None,
    on_report: Callable[[WerReport], None] | None = None,
) -> TrainResult:
    """Train (or resume) the BiRNN as `config` says; evaluate dev each epoch and test at the end.

    `progress` draws bars (the CLI's `progress_bar`); `on_report` receives each WER report.
    """
    progress = progress or _no_progress
    alphabet = load_alphabet(config.alphabet)
    if not config.train_files:
        raise ConfigError("no training data: give --train-files (or train_files in --config)")
    if config.lm and not Path(config.lm).is_file():
        raise ConfigError(
            f"language model {config.lm} not found; build one with `deepspeech lm build`"
        )
    # Validate every manifest before anything slow starts.
    sets: dict[str, list[Utterance]] = {"train": read_manifests(config.train_files, alphabet)}
    for name, spec in (("dev", config.dev_files), ("test", config.test_files)):
        if spec:
            sets[name] = read_manifests(spec, alphabet)

    checkpoint_dir = Path(config.checkpoint_dir)
    model_config = config.model(alphabet.num_classes)
    existing = read_run_info(checkpoint_dir) if (checkpoint_dir / "run.json").exists() else None
    if existing is not None:
        check_resumable(existing, model_config, config.features)
        if existing.alphabet != alphabet:
            raise ConfigError(f"{checkpoint_dir} was trained with another alphabet")

    # TensorFlow starts here: devices must be configured before its first operation.
    import keras
    import tensorflow as tf

    from deepspeech.data.batching import featurize, global_batches
    from deepspeech.data.pipeline import distributed_dataset
    from deepspeech.decoding.decoders import make_decoder
    from deepspeech.model.birnn import build_birnn, count_parameters
    from deepspeech.training.evaluate import evaluate_set, make_eval_step
    from deepspeech.training.mlflow_store import resolve_tracking_uri
    from deepspeech.training.placement import make_placement
    from deepspeech.training.precision import mixed_precision, with_loss_scaling
    from deepspeech.training.step import make_train_step
    from deepspeech.training.tracking import MlflowCallback, git_commit

    placement = make_placement(config.devices)
    strategy = placement.strategy
    keras.utils.set_random_seed(config.seed)

    data = {}
    for name, utterances in sets.items():
        with progress(f"features {name}", len(utterances)) as advance:
            data[name] = featurize(utterances, config.features, alphabet, progress=advance)
    train_set = data["train"]
    global_batch = config.batch_size * placement.num_replicas
    steps_per_epoch = len(train_set) // global_batch
    if steps_per_epoch == 0:
        raise ConfigError(
            f"{len(train_set)} training utterances do not fill one global batch of "
            f"{global_batch} ({config.batch_size} x {placement.num_replicas} replicas); "
            "lower --batch-size"
        )

    with strategy.scope(), mixed_precision(config.mixed_precision):
        model = build_birnn(model_config)
        optimizer = (
            keras.optimizers.SGD(learning_rate=config.learning_rate)
            if config.optimizer == "sgd"
            else keras.optimizers.Adam(learning_rate=config.learning_rate)
        )
        optimizer = with_loss_scaling(optimizer, config.mixed_precision)
        optimizer.build(model.trainable_variables)
    state = {
        "step": tf.Variable(0, dtype=tf.int64, trainable=False),
        "epoch": tf.Variable(0, dtype=tf.int64, trainable=False),
        "epoch_step": tf.Variable(0, dtype=tf.int64, trainable=False),
        "evaluated": tf.Variable(0, dtype=tf.int64, trainable=False),
        "stopped": tf.Variable(0, dtype=tf.int64, trainable=False),
        "trained_seconds": tf.Variable(0.0, dtype=tf.float64, trainable=False),
        "dev_losses": tf.Variable(
            tf.zeros([0], tf.float32), shape=tf.TensorShape([None]), trainable=False
        ),
    }
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, **state)
    write_dir = (
        checkpoint_dir
        if placement.is_chief
        else checkpoint_dir / f".worker-{placement.worker_index}"
    )
    manager = tf.train.CheckpointManager(
        checkpoint, str(write_dir), max_to_keep=config.checkpoint_keep
    )
    latest = tf.train.latest_checkpoint(str(checkpoint_dir))
    if latest:
        checkpoint.restore(latest)
        logger.info(
            "resuming from %s: epoch %d, step %d", latest, int(state["epoch"]), int(state["step"])
        )

    tracker: MlflowCallback | None = None
    if placement.is_chief:
        uri = resolve_tracking_uri(config.tracking_uri or None)
        run_id = existing.mlflow_run_id if existing and existing.tracking_uri == uri else None
        run_name = "/".join(checkpoint_dir.resolve().parts[-2:])  # e.g. "sample/checkpoints"
        tracker = MlflowCallback(uri, config.experiment_name, run_id, run_name=run_name)
        tracker.set_model(model)
        tracker.log_params(
            {
                **config.to_dict(),
                "n_params": count_parameters(model),
                "tf_version": tf.__version__,
                "devices": placement.description,
                "git_commit": git_commit(),
                "global_batch_size": global_batch,
                "steps_per_epoch": steps_per_epoch,
                **{f"n_{name}_utterances": len(d) for name, d in data.items()},
            }
        )
        write_run_info(
            checkpoint_dir,
            RunInfo(model_config, config.features, alphabet, config.to_dict(), tracker.run_id, uri),
        )

    variables = model.trainable_variables

    def save_checkpoint() -> None:
        """Metrics first, then the checkpoint: a resumed run must not have lost the logged
        steps that the checkpoint says are done."""
        if tracker:
            tracker.flush()
        manager.save(checkpoint_number=int(state["step"]))

    def agree_any(flag: bool) -> bool:
        """True on every worker when any worker's flag is true."""
        value = strategy.run(lambda: tf.constant(1.0 if flag else 0.0))
        return bool(strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None) > 0)

    eval_step = make_eval_step(model, model_config.n_input)
    decoder = make_decoder(config.decoder(), alphabet, kind="logits")

    def evaluate(name: str, epoch: int | None) -> WerReport:
        with progress(f"evaluate {name}", len(data[name])) as advance:
            report = evaluate_set(
                eval_step,
                data[name],
                alphabet,
                name,
                config.report_count,
                decoder=decoder,
                progress=advance,
            )
        logger.info(
            "%s: WER %.2f%%, CER %.2f%%, loss %.3f",
            name,
            100 * report.wer,
            100 * report.cer,
            report.mean_loss,
        )
        if on_report:
            on_report(report)
        if tracker:
            tracker.log_report(report, epoch)
        return report

    def evaluate_dev(epoch: int, epoch_logs: dict[str, float]) -> None:
        """Dev report for a finished epoch; then the early-stop and plateau decisions."""
        report = evaluate("dev", epoch)
        dev_loss = float(
            strategy.reduce(
                tf.distribute.ReduceOp.MEAN,
                strategy.run(lambda: tf.constant(report.mean_loss, tf.float32)),
                axis=None,
            )
        )
        losses = [*state["dev_losses"].numpy().tolist(), dev_loss]
        state["dev_losses"].assign(losses)
        if tracker:
            tracker.on_epoch_end(
                epoch,
                {
                    "dev_loss": dev_loss,
                    "dev_wer": report.wer,
                    "dev_cer": report.cer,
                    **epoch_logs,
                },
            )
        if should_stop_early(losses, config):
            logger.info(
                "early stop after epoch %d: dev loss %s", epoch, losses[-config.es_epochs :]
            )
            state["stopped"].assign(1)
        if config.reduce_lr_on_plateau and is_plateau(losses, config.plateau_epochs):
            new_lr = float(optimizer.learning_rate.numpy()) * config.plateau_factor
            optimizer.learning_rate.assign(new_lr)
            logger.info("dev loss plateaued: learning rate now %.3g", new_lr)
        state["evaluated"].assign(epoch)
        save_checkpoint()

    budget_seconds = config.max_train_minutes * 60
    # An epoch whose training finished before a crash, but whose dev evaluation did not.
    if "dev" in data and int(state["evaluated"]) < int(state["epoch"]):
        evaluate_dev(int(state["epoch"]), {})

    dataset_spec = None
    step_fns: dict[bool, Callable] = {}
    try:
        while int(state["epoch"]) < config.epochs and not int(state["stopped"]):
            if budget_seconds and float(state["trained_seconds"]) >= budget_seconds:
                logger.info("time budget of %.1f min spent", config.max_train_minutes)
                break
            epoch = int(state["epoch"])
            start = int(state["epoch_step"])
            batches = global_batches(train_set.frame_counts, global_batch, config.seed, epoch)
            dataset = distributed_dataset(strategy, train_set, batches, start)
            if dataset_spec is None:
                dataset_spec = dataset.element_spec
                for with_gradients in (False, True):
                    step_fns[with_gradients] = make_train_step(
                        strategy,
                        model,
                        optimizer,
                        global_batch,
                        config.grad_clip_norm,
                        dataset_spec,
                        with_gradients=with_gradients,
                    )
            loss_sum, loss_steps = 0.0, 0
            last_save = last_tick = time.monotonic()
            out_of_time = False
            with progress(f"epoch {epoch + 1}/{config.epochs}", steps_per_epoch) as advance:
                advance(start)
                for element in dataset:
                    step = int(state["step"]) + 1
                    with_gradients = step % config.stats_every == 0
                    loss, norm, grads = step_fns[with_gradients](element)
                    loss = float(loss)
                    state["step"].assign(step)
                    state["epoch_step"].assign_add(1)
                    now = time.monotonic()
                    state["trained_seconds"].assign_add(now - last_tick)
                    last_tick = now
                    loss_sum, loss_steps = loss_sum + loss, loss_steps + 1
                    lr = float(optimizer.learning_rate.numpy())
                    if tracker:
                        tracker.on_train_batch_end(
                            step,
                            {
                                "train_loss": loss,
                                "learning_rate": lr,
                                "grad_global_norm": float(norm),
                            },
                        )
                        if with_gradients:
                            tracker.log_statistics(
                                step,
                                {v.path: v.numpy() for v in variables},
                                {v.path: g.numpy() for v, g in zip(variables, grads, strict=True)},
                            )
                    advance(1, f"loss {loss:.2f}")
                    if step % AGREE_EVERY == 0:
                        save_due = now - last_save >= config.checkpoint_secs
                        out_of_time = bool(budget_seconds) and agree_any(
                            float(state["trained_seconds"]) >= budget_seconds
                        )
                        if agree_any(save_due) or out_of_time:
                            save_checkpoint()
                            last_save = now
                        if out_of_time:
                            logger.info("time budget spent during epoch %d", epoch + 1)
                            break
            epoch_logs = {"epoch_train_loss": loss_sum / max(loss_steps, 1)}
            state["epoch"].assign(epoch + 1)
            state["epoch_step"].assign(0)
            save_checkpoint()
            if "dev" in data:
                evaluate_dev(epoch + 1, epoch_logs)
            elif tracker:
                tracker.on_epoch_end(epoch + 1, epoch_logs)
            if out_of_time:
                break
        test_report = None
        if "test" in data:
            test_report = evaluate("test", int(state["epoch"]))
        if tracker:
            final = (
                {
                    "test_loss": test_report.mean_loss,
                    "test_wer": test_report.wer,
                    "test_cer": test_report.cer,
                }
                if test_report
                else {}
            )
            tracker.on_train_end(final)
    except BaseException:
        if tracker:
            tracker.mark_failed()
        raise
    return TrainResult(
        checkpoint_dir=checkpoint_dir,
        mlflow_run_id=tracker.run_id if tracker else None,
        steps=int(state["step"]),
        epochs=int(state["epoch"]),
        stopped_early=bool(int(state["stopped"])),
        test_report=test_report,
    )
