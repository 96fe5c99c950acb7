"""Checkpoint folders: TensorFlow checkpoints plus `run.json`, what is needed to rebuild the model.

`run.json` holds the model and feature configs, the alphabet, the training options and the
MLflow run id. It is written once when a run starts, so `evaluate` and `export` can rebuild the
exact model from the folder alone, and a re-run of `train` resumes the same MLflow run.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepspeech.config import FeatureConfig, ModelConfig
from deepspeech.errors import ConfigError
from deepspeech.files import atomic_write
from deepspeech.text import Alphabet

RUN_INFO_FILE = "run.json"


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


def check_resumable(existing: RunInfo, model: ModelConfig, features: FeatureConfig) -> None:
    """Refuse to resume into a folder whose model differs: the weights would not fit."""
    if existing.model != model or existing.features != features:
        raise ConfigError(
            f"the checkpoint folder holds a model {existing.model} with features "
            f"{existing.features}, but the options ask for {model} with {features}; "
            "use another --checkpoint-dir or the original options"
        )


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
