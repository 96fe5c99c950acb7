"""Launch `train(config)` on a Ray cluster: `deepspeech train --ray-address ADDR|local --workers N`.

Ray Train's `TensorflowTrainer` (Ray 2.60 ships it, in its Train V2 form) starts N worker
actors, gives each a `TF_CONFIG` naming all of them, and runs `_worker_main` in each: the
same `deepspeech.training.loop.train` that a single machine runs. `TF_CONFIG` makes it build a
`MultiWorkerMirroredStrategy` (`placement.py`); the chief (rank 0) logs the one MLflow run and
writes the checkpoints into `checkpoint_dir`, a folder every worker must reach (local disk
for `local`, a shared file system on a real cluster).

A lost worker (its process killed, its node gone) fails the whole group; with
`max_failures` K, Ray starts a new group up to K times, and each new worker's `train` resumes
from the latest checkpoint in `checkpoint_dir` and the same MLflow run, as a re-run does.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepspeech.data.manifest import read_manifests
from deepspeech.errors import ConfigError, DeepSpeechError
from deepspeech.model_uri import canonical_source
from deepspeech.training.config import TrainConfig
from deepspeech.training.mlflow_store import resolve_tracking_uri

logger = logging.getLogger(__name__)

LOCAL = "local"
OUTCOME_FILE = "outcome.json"
LOOPBACK = "127.0.0.1"  # a `local` Ray and TensorFlow's worker addresses stay on this machine
# Options naming files: made absolute here, because Ray workers run in folders of their own.
PATH_OPTIONS = (
    "train_files",
    "dev_files",
    "test_files",
    "alphabet",
    "lm",
    "checkpoint_dir",
    "feature_cache",
)


@dataclass(frozen=True)
class RayTrainResult:
    """What the chief reported when the run ended (the fields of `loop.TrainResult` that cross
    the process boundary)."""

    checkpoint_dir: Path
    mlflow_run_id: str | None
    steps: int
    epochs: int
    stopped_early: bool
    test_wer: float | None
    test_cer: float | None


def absolute_options(config: TrainConfig) -> dict[str, Any]:
    """The config as a dict whose file options (an --init-from folder too) and SQLite tracking
    store are absolute paths."""
    options = config.to_dict()
    for name in PATH_OPTIONS:
        if options.get(name):
            options[name] = ",".join(
                str(Path(part).expanduser().resolve()) for part in options[name].split(",")
            )
    options["init_from"] = canonical_source(config.init_from)
    uri = resolve_tracking_uri(config.tracking_uri or None)
    sqlite = "sqlite:///"
    if uri.startswith(sqlite) and not uri[len(sqlite) :].startswith("/"):
        uri = sqlite + str(Path(uri[len(sqlite) :]).resolve())
    options["tracking_uri"] = uri
    return options


def _worker_main(options: dict[str, Any]) -> None:
    """One Ray worker: the same training as a single machine, joined to the others by the
    TF_CONFIG that Ray Train set; reports the chief's outcome back to the driver."""
    # Ray's TensorFlow backend asks for Keras 2 through tf.keras; this project uses Keras 3.
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
    if not options["gpus_per_worker"]:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # a CPU worker leaves the node's GPUs alone
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import ray.train

    from deepspeech.training.loop import train

    context = ray.train.get_context()
    logger.info(
        "ray worker %d of %d (pid %d)",
        context.get_world_rank(),
        context.get_world_size(),
        os.getpid(),
    )
    result = train(TrainConfig(**options))
    report = result.test_report
    outcome = {
        "steps": result.steps,
        "epochs": result.epochs,
        "stopped_early": result.stopped_early,
        "mlflow_run_id": result.mlflow_run_id or "",
        "test_wer": report.wer if report else None,
        "test_cer": report.cer if report else None,
    }
    if context.get_world_rank() != 0:
        ray.train.report(outcome)  # every rank reports: it is a collective
        return
    # Ray Train keeps only metrics that come with a checkpoint: the chief's outcome is one
    # small file (the model's checkpoints stay in checkpoint_dir, written by `train`).
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / OUTCOME_FILE).write_text(json.dumps(outcome), encoding="utf-8")
        ray.train.report(outcome, checkpoint=ray.train.Checkpoint.from_directory(folder))


def _check_manifests(config: TrainConfig) -> None:
    """A bad manifest fails here, with its file and line, before Ray starts (in a worker it
    would fail every attempt that `max_failures` allows)."""

    if not config.train_files:
        raise ConfigError("no training data: give --train-files (or train_files in --config)")
    alphabet = config.read_alphabet()
    for spec in (config.train_files, config.dev_files, config.test_files):
        if spec:
            read_manifests(spec, alphabet)


def connect_ray(config: TrainConfig) -> None:
    """Join the cluster at `ray_address`, or start a one-machine Ray bound to 127.0.0.1."""
    import ray

    if config.ray_address != LOCAL:
        ray.init(address=config.ray_address, log_to_driver=True)
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    needed = config.workers * config.cpus_per_worker
    ray.init(
        address=LOCAL,
        num_cpus=max(os.cpu_count() or 1, int(needed + 0.999)),
        include_dashboard=False,
        _node_ip_address=LOOPBACK,
    )


def _check_resources(config: TrainConfig) -> None:
    """Fail fast where Ray would otherwise wait forever for resources that do not exist."""
    import ray

    total = ray.cluster_resources()
    for kind, each in (("CPU", config.cpus_per_worker), ("GPU", config.gpus_per_worker)):
        needed = config.workers * each
        if needed > total.get(kind, 0.0):
            raise ConfigError(
                f"{config.workers} workers x {each:g} {kind} need {needed:g} {kind}s, but the "
                f"Ray cluster at {config.ray_address} has {total.get(kind, 0.0):g}; lower "
                f"--workers or --{kind.lower()}s-per-worker"
            )


def train_on_ray(config: TrainConfig) -> RayTrainResult:
    """Run `train(config)` on `config.workers` Ray workers; returns what the chief reported.

    Raises ConfigError for a cluster too small for the request, and DeepSpeechError when the
    run failed more often than `config.max_failures` allows.
    """
    if not config.ray_address:
        raise ConfigError("train_on_ray needs a ray_address (a cluster address or 'local')")
    _check_manifests(config)
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.tensorflow import TensorflowTrainer

    options = absolute_options(config)
    checkpoint_dir = Path(options["checkpoint_dir"])
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    connect_ray(config)
    try:
        _check_resources(config)
        resources = {"CPU": config.cpus_per_worker}
        if config.gpus_per_worker:
            resources["GPU"] = config.gpus_per_worker
        trainer = TensorflowTrainer(
            _worker_main,
            train_loop_config=options,
            scaling_config=ScalingConfig(
                num_workers=config.workers,
                use_gpu=bool(config.gpus_per_worker),
                resources_per_worker=resources,
            ),
            run_config=RunConfig(
                name="deepspeech-train",
                storage_path=str(checkpoint_dir / "ray"),
                failure_config=FailureConfig(max_failures=config.max_failures),
            ),
        )
        try:
            result = trainer.fit()
        except Exception as e:  # Ray wraps the workers' errors in its own types
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            raise DeepSpeechError(
                f"Ray training failed with --max-failures {config.max_failures}: "
                f"{' '.join(lines[:3])[:300]} (the workers' log is above); the same command "
                "resumes from the last checkpoint"
            ) from e
    finally:
        ray.shutdown()
    metrics = result.metrics or {}
    return RayTrainResult(
        checkpoint_dir=checkpoint_dir,
        mlflow_run_id=metrics.get("mlflow_run_id") or None,
        steps=int(metrics.get("steps", 0)),
        epochs=int(metrics.get("epochs", 0)),
        stopped_early=bool(metrics.get("stopped_early", False)),
        test_wer=metrics.get("test_wer"),
        test_cer=metrics.get("test_cer"),
    )
