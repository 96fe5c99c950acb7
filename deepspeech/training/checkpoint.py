"""Checkpoint folders: TensorFlow checkpoints plus `run.json`, what is needed to rebuild the model.

`run.json` holds the model and feature configs, the alphabet, the training options and the
MLflow run id. It is written once when a run starts, so `evaluate` and `export` can rebuild the
exact model from the folder alone, and a re-run of `train` resumes the same MLflow run.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepspeech.audio import FeatureConfig
from deepspeech.errors import ConfigError
from deepspeech.files import atomic_write
from deepspeech.model.config import ModelConfig
from deepspeech.model_uri import canonical_source
from deepspeech.text import Alphabet

RUN_INFO_FILE = "run.json"
# The MLflow artifact of a run's final weights + run.json (a model-only checkpoint folder), so
# `train --init-from runs:/RUN_ID` works on a machine without the folder.
CHECKPOINT_ARTIFACT = "checkpoint"

# Train options whose state each checkpoint holds (the optimizer's slots, the loss scale): under
# other values a resume would restore only part of it and the optimizer would silently start
# afresh mid-run. Other options (epochs, rates, data) may change on resume.
# Frozen layers have no slots either.
OPTIMIZER_STATE_OPTIONS = ("optimizer", "mixed_precision", "freeze_layers")
# Applied once, when a run starts, and not used when it resumes: given again with another
# value, they would be ignored without a word. Left out, the run just goes on.
START_OPTIONS = ("init_from", "drop_layers")


@dataclass(frozen=True)
class RunInfo:
    """What a checkpoint folder needs besides the weights."""

    model: ModelConfig
    features: FeatureConfig
    alphabet: Alphabet
    train_options: dict[str, Any]
    mlflow_run_id: str | None = None
    tracking_uri: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "model": dataclasses.asdict(self.model),
                "features": dataclasses.asdict(self.features),
                "alphabet": list(self.alphabet.labels),
                "train_options": self.train_options,
                "mlflow_run_id": self.mlflow_run_id,
                "tracking_uri": self.tracking_uri,
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> RunInfo:
        data = json.loads(text)
        return cls(
            model=ModelConfig(**data["model"]),
            features=FeatureConfig(**data["features"]),
            alphabet=Alphabet(data["alphabet"]),
            train_options=data["train_options"],
            mlflow_run_id=data.get("mlflow_run_id"),
            tracking_uri=data.get("tracking_uri"),
        )


def write_run_info(checkpoint_dir: Path, info: RunInfo) -> None:
    """Write run.json atomically: a crash mid-write must not leave an unreadable folder."""
    with atomic_write(checkpoint_dir / RUN_INFO_FILE, encoding="utf-8") as f:
        f.write(info.to_json())


def read_run_info(checkpoint_dir: Path) -> RunInfo:
    path = Path(checkpoint_dir) / RUN_INFO_FILE
    if not path.is_file():
        raise ConfigError(
            f"{checkpoint_dir}: not a training checkpoint folder (no {RUN_INFO_FILE}); "
            "pass the --checkpoint-dir that `deepspeech train` wrote"
        )
    try:
        return RunInfo.from_json(path.read_text(encoding="utf-8"))
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path}: unreadable run description: {e}") from e


def check_resumable(
    existing: RunInfo, model: ModelConfig, features: FeatureConfig, options: Mapping[str, Any]
) -> None:
    """Refuse to resume into a folder whose model or optimizer state differs: the weights would
    not fit, or the optimizer's slots would be dropped without a word."""
    if existing.model != model or existing.features != features:
        raise ConfigError(
            f"the checkpoint folder holds a model {existing.model} with features "
            f"{existing.features}, but the options ask for {model} with {features}; "
            "use another --checkpoint-dir or the original options"
        )
    changed = [
        f"{name} {existing.train_options[name]!r} (asked: {options[name]!r})"
        for name in OPTIMIZER_STATE_OPTIONS
        if name in existing.train_options and existing.train_options[name] != options[name]
    ]
    if changed:
        raise ConfigError(
            f"the checkpoint folder's run was trained with {', '.join(changed)}; its checkpoints "
            "hold that optimizer's state, which other values would drop. Resume with the "
            "original options, or start a new run in another --checkpoint-dir"
        )
    started = [
        f"{name} {existing.train_options[name]!r} (asked: {options[name]!r})"
        for name in START_OPTIONS
        if options.get(name)
        and name in existing.train_options
        and not _same_start(name, existing.train_options[name], options[name])
    ]
    if started:
        raise ConfigError(
            f"the checkpoint folder's run started with {', '.join(started)}, and a resumed run "
            "goes on from its own checkpoints, so the new value would be ignored. Leave the "
            "option out (or give the original) to resume; start a new run in another "
            "--checkpoint-dir to fine-tune from another source"
        )


def _same_start(name: str, existing: Any, asked: Any) -> bool:
    if name == "init_from":
        return canonical_source(str(existing)) == canonical_source(str(asked))
    return existing == asked


def restore_training_checkpoint(checkpoint: Any, path: str, info: RunInfo | None) -> None:
    """Restore every value a training checkpoint holds, or fail: a partial restore (another
    optimizer, or loss scaling on one kind of device and not on the other) would go on training
    with fresh optimizer slots as though nothing had happened."""
    status = checkpoint.restore(path)
    try:
        status.assert_consumed()
    except AssertionError as e:
        first = (
            ", ".join(f"{k} {info.train_options.get(k)!r}" for k in OPTIMIZER_STATE_OPTIONS)
            if info
            else "options unknown"
        )
        reason = str(e).splitlines()[0]
        raise ConfigError(
            f"{path} does not match this run's model and optimizer ({reason}). It was "
            f"trained with {first}; mixed precision adds loss scaling on GPUs only, so resume "
            "with the same options on the same kind of device, or use another --checkpoint-dir"
        ) from e


def has_saved_weights(checkpoint_dir: Path) -> bool:
    """Whether TensorFlow saved a checkpoint in the folder (its state file), without TensorFlow."""
    return (Path(checkpoint_dir) / "checkpoint").is_file()


def save_model_checkpoint(model: Any, folder: Path) -> None:
    """The model's weights alone (no optimizer, no counters): with run.json beside them, what
    another machine needs to evaluate, export or fine-tune it (`CHECKPOINT_ARTIFACT`)."""
    import tensorflow as tf

    tf.train.Checkpoint(model=model).save(str(Path(folder) / "model"))


def restore_inference_model(checkpoint_dir: Path) -> tuple[Any, RunInfo]:
    """Rebuild the model from a checkpoint folder with its latest weights (no optimizer)."""
    import tensorflow as tf

    from deepspeech.model.birnn import build_birnn

    info = read_run_info(checkpoint_dir)
    latest = tf.train.latest_checkpoint(str(checkpoint_dir))
    if latest is None:
        raise ConfigError(f"{checkpoint_dir}: no checkpoint saved yet; train first")
    model = build_birnn(info.model)
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    return model, info
