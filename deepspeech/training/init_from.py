"""Fine-tuning: start a run from a trained model's weights (`train --init-from`).

The source is a checkpoint folder, `runs:/RUN_ID` (the final checkpoint every training run logs
as its `checkpoint` artifact) or a registry version, `models:/NAME@ALIAS` or
`models:/NAME/VERSION` (the training run it was registered from). Only the weights come across:
the optimizer, the schedule and the counters start afresh, in a new MLflow run tagged with the
source run.

What a speech engineer changes when fine-tuning, and what happens to each layer
(`WEIGHT_LAYERS`, input to output):
- `--drop-layers N`: the top N are re-initialised (DeepSpeech's `--drop_source_layers`);
- `--freeze-layers N`: the bottom N keep the source's values (not trained at all);
- another `--alphabet`: the output layer h6 changes shape, so it is re-initialised, except
  the weights of the characters both alphabets share (and of the CTC blank), which are
  carried over column by column: a superset alphabet then starts knowing every old character
  (said in the log; `--drop-layers 1` re-initialises all of h6);
- anything else with another shape (width, LSTM kind, features) is a one-line error naming
  the layer and both shapes, found before any data is read.

The feature normalisation statistics come from the source: its weights were learnt on inputs
normalised that way.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepspeech.audio import FeatureConfig
from deepspeech.errors import ConfigError, ModelLoadError
from deepspeech.model.config import WEIGHT_LAYERS, ModelConfig
from deepspeech.model_uri import (
    REGISTRY_SCHEME,
    RUNS_SCHEME,
    find_model_version,
    parse_registry_uri,
    parse_runs_uri,
)
from deepspeech.text import Alphabet
from deepspeech.training.checkpoint import (
    CHECKPOINT_ARTIFACT,
    RUN_INFO_FILE,
    RunInfo,
    has_saved_weights,
    read_run_info,
)

logger = logging.getLogger(__name__)

OUTPUT_LAYER = WEIGHT_LAYERS[-1]
SOURCE_RUN_TAG = "deepspeech.init_from_run"  # the MLflow run the weights came from
SOURCE_TAG = "deepspeech.init_from"  # the --init-from value as given


@dataclass(frozen=True)
class InitSource:
    """A located fine-tuning source: its checkpoint folder (local or downloaded) and its run."""

    spec: str
    folder: Path
    info: RunInfo
    run_id: str | None  # the MLflow run that trained it, when known


@dataclass(frozen=True)
class FineTuning:
    """What to do with the source's layers: the options, checked against the run's model."""

    source: InitSource
    drop_layers: int
    freeze_layers: int
    alphabet: Alphabet  # this run's
    new_alphabet: bool  # the output layer changes: only the shared characters carry over

    @property
    def shared_columns(self) -> list[tuple[int, int]]:
        """(source column, this run's column) of h6 for each character both alphabets have,
        and the blank; none when the whole layer is dropped."""
        if OUTPUT_LAYER in self.dropped:
            return []
        theirs = self.source.info.alphabet
        pairs = [
            (theirs.labels.index(char), label)
            for label, char in enumerate(self.alphabet.labels)
            if char in theirs.labels
        ]
        return [*pairs, (theirs.blank_index, self.alphabet.blank_index)]

    @property
    def dropped(self) -> tuple[str, ...]:
        """The top layers `--drop-layers` re-initialises."""
        return WEIGHT_LAYERS[len(WEIGHT_LAYERS) - self.drop_layers :] if self.drop_layers else ()

    @property
    def reinitialised(self) -> tuple[str, ...]:
        """The layers that do not take the source's weights as they are."""
        return tuple(dict.fromkeys(self.dropped + ((OUTPUT_LAYER,) if self.new_alphabet else ())))

    def describe(self) -> str:
        """One line for the log: where from, and what each option did."""
        parts = [f"initialised from {self.source.spec}"]
        if self.source.run_id:
            parts.append(f"(run {self.source.run_id})")
        if self.new_alphabet:
            kept = len(self.shared_columns)
            parts.append(
                f"; new alphabet ({self.source.info.alphabet.num_classes} -> "
                f"{self.alphabet.num_classes} classes): output layer {OUTPUT_LAYER} "
                f"re-initialised, keeping {kept} shared characters' and the blank's columns"
                if kept
                else f"; new alphabet: output layer {OUTPUT_LAYER} re-initialised"
            )
        if self.drop_layers:
            parts.append(f"; re-initialised {', '.join(self.dropped)}")
        if self.freeze_layers:
            parts.append(f"; frozen {', '.join(WEIGHT_LAYERS[: self.freeze_layers])}")
        return " ".join(parts)


@contextmanager
def open_init_source(spec: str, tracking_uri: str) -> Iterator[InitSource]:
    """Locate `spec` (a folder, `runs:/RUN_ID`, `models:/NAME@ALIAS|/VERSION`); a download
    lives as long as the context."""
    if spec.startswith((RUNS_SCHEME, REGISTRY_SCHEME)):
        run_id = _source_run(spec, tracking_uri)
        scratch = Path(tempfile.mkdtemp(prefix="deepspeech-init-"))
        try:
            folder = _download_checkpoint(spec, run_id, tracking_uri, scratch)
            yield InitSource(spec, folder, _read_source_info(spec, folder), run_id)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    folder = Path(spec)
    if not folder.is_dir():
        raise ConfigError(
            f"--init-from {spec}: no such folder; give a checkpoint folder, runs:/RUN_ID or "
            "models:/NAME@ALIAS"
        )
    info = _read_source_info(spec, folder)
    yield InitSource(spec, folder, info, info.mlflow_run_id)


def _read_source_info(spec: str, folder: Path) -> RunInfo:
    if not (folder / RUN_INFO_FILE).is_file():
        raise ConfigError(
            f"--init-from {spec}: not a trained model ({folder} has no {RUN_INFO_FILE}); "
            "give a folder `deepspeech train` wrote"
        )
    info = read_run_info(folder)
    if not has_saved_weights(folder):
        raise ConfigError(f"--init-from {spec}: {folder} holds no saved weights yet")
    return info


def _source_run(spec: str, tracking_uri: str) -> str:
    """The MLflow run whose checkpoint artifact holds the weights."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri)
    try:
        if spec.startswith(RUNS_SCHEME):
            run_id = parse_runs_uri(spec)
            client.get_run(run_id)
            return run_id
        version = find_model_version(parse_registry_uri(spec), client)
    except (MlflowException, ModelLoadError) as e:
        reason = str(e).splitlines()[0]
        raise ConfigError(f"--init-from {spec}: not found in {tracking_uri}: {reason}") from e
    if not version.run_id:
        raise ConfigError(f"--init-from {spec}: the model version names no training run")
    return str(version.run_id)


def _download_checkpoint(spec: str, run_id: str, tracking_uri: str, scratch: Path) -> Path:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id,
            artifact_path=CHECKPOINT_ARTIFACT,
            dst_path=str(scratch),
            tracking_uri=tracking_uri,
        )
    except (MlflowException, OSError) as e:
        raise ConfigError(
            f"--init-from {spec}: run {run_id} has no '{CHECKPOINT_ARTIFACT}' artifact (runs "
            "log it when they finish; give its checkpoint folder instead)"
        ) from e
    return Path(local)


def plan_fine_tuning(
    source: InitSource,
    model: ModelConfig,
    features: FeatureConfig,
    alphabet: Alphabet,
    drop_layers: int,
    freeze_layers: int,
) -> FineTuning:
    """Check that the source's layers fit this run's model; say what happens to each."""
    plan = FineTuning(
        source, drop_layers, freeze_layers, alphabet, source.info.alphabet != alphabet
    )
    if source.info.features != features:
        raise ConfigError(
            f"--init-from {source.spec}: its features {source.info.features} differ from this "
            f"run's {features}; train with the source's feature options"
        )
    theirs, ours = source.info.model.layer_shapes(), model.layer_shapes()
    for layer in WEIGHT_LAYERS:
        if layer not in plan.reinitialised and theirs[layer] != ours[layer]:
            raise ConfigError(
                f"--init-from {source.spec}: layer {layer} has shapes {theirs[layer]} in the "
                f"source but {ours[layer]} in this run's model; use the source's --n-hidden "
                "and --rnn, or --drop-layers to re-initialise it"
            )
    if source.info.model.rnn != model.rnn:  # same shapes, another graph: still another model
        raise ConfigError(
            f"--init-from {source.spec}: the source's LSTM is {source.info.model.rnn}, this "
            f"run's {model.rnn}"
        )
    frozen_and_new = set(WEIGHT_LAYERS[:freeze_layers]) & set(plan.reinitialised)
    if frozen_and_new:
        raise ConfigError(
            f"--freeze-layers {freeze_layers} would freeze re-initialised layer(s) "
            f"{', '.join(sorted(frozen_and_new))}: random weights that never train"
        )
    return plan


def freeze_bottom_layers(model: Any, count: int) -> None:
    """Keep the first `count` weight layers fixed; call before the optimizer is built."""
    for name in WEIGHT_LAYERS[:count]:
        model.get_layer(name).trainable = False


def initialize_from_source(model: Any, plan: FineTuning) -> None:
    """Copy the source's weights into `model` (built, freshly initialised), except the layers
    the plan re-initialises; the normalisation statistics come along."""
    import tensorflow as tf

    from deepspeech.model.birnn import build_birnn

    folder = plan.source.folder
    latest = tf.train.latest_checkpoint(str(folder))
    if latest is None:
        raise ConfigError(f"--init-from {plan.source.spec}: {folder} has no checkpoint index")
    source = build_birnn(plan.source.info.model)
    tf.train.Checkpoint(model=source).restore(latest).expect_partial()
    for name in ("normalization", *WEIGHT_LAYERS):
        if name not in plan.reinitialised:
            model.get_layer(name).set_weights(source.get_layer(name).get_weights())
    if plan.new_alphabet and plan.shared_columns:
        fresh = model.get_layer(OUTPUT_LAYER).get_weights()  # [kernel (h, classes), bias]
        old = source.get_layer(OUTPUT_LAYER).get_weights()
        theirs, ours = (list(side) for side in zip(*plan.shared_columns, strict=True))
        for new, carried in zip(fresh, old, strict=True):
            new[..., ours] = carried[..., theirs]
        model.get_layer(OUTPUT_LAYER).set_weights(fresh)
    logger.info("%s", plan.describe())
