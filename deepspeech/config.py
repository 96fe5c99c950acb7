"""Frozen configuration dataclasses and the one loader for `experiments/*.yaml`.

The YAML keys are the `deepspeech train` flag names with underscores, flat, so a config file and
a command line say the same thing; flags override the file. Unknown keys are rejected by name,
because a misspelt key that silently falls back to a default wastes a training run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from deepspeech.audio import N_CEPSTRUM, N_CONTEXT
from deepspeech.data.augment_spec import parse_augmentations
from deepspeech.decoding.decoders import DecoderConfig
from deepspeech.errors import ConfigError
from deepspeech.training.schedule import LR_SCHEDULES

OPTIMIZERS = ("adam", "sgd")
RNN_KINDS = ("bidirectional", "unidirectional")  # 2017 BiRNN; DeepSpeech 0.6-0.9's streaming LSTM
DEFAULT_FEATURE_CACHE = "runs/feature-cache"  # beside the default checkpoints, under runs/


@dataclass(frozen=True)
class FeatureConfig:
    """How audio becomes model input; stored with checkpoints and in the ONNX metadata.

    The model reads `numcep` MFCC per kept frame and builds the context windows itself.
    """

    numcep: int = N_CEPSTRUM
    numcontext: int = N_CONTEXT
    stride: int = 1  # keep every stride-th MFCC frame (the 2017 "BiRNN stride")

    @property
    def n_input(self) -> int:
        return self.numcep * (2 * self.numcontext + 1)


@dataclass(frozen=True)
class ModelConfig:
    """The BiRNN's shape: everything needed to rebuild it for export or evaluation."""

    n_classes: int  # alphabet size + 1 for the CTC blank (last)
    numcep: int = N_CEPSTRUM  # MFCC per input frame
    numcontext: int = N_CONTEXT  # frames of context each side, stacked inside the model
    n_hidden: int = 2048
    dropout_rate: float = 0.05
    relu_clip: float = 20.0
    rnn: str = "bidirectional"  # or "unidirectional": forward-only, future context from windows
    # 0: normalise with the training set's mean (2017). N > 0: with the utterance's running
    # mean, the training set's counting as N frames (`FeatureNormalization` says why).
    running_mean_frames: float = 0.0
    running_variance: bool = False  # with a running mean: the running standard deviation too

    @property
    def n_input(self) -> int:
        """Width of the context windows the first dense layer reads."""
        return self.numcep * (2 * self.numcontext + 1)


@dataclass(frozen=True)
class TrainConfig:
    """Every option of `deepspeech train`; all of it is logged to MLflow as params."""

    train_files: str = ""
    dev_files: str = ""
    test_files: str = ""
    alphabet: str = ""  # alphabet file; empty = space, a-z, apostrophe
    epochs: int = 10
    batch_size: int = 16  # per replica; the global batch is this times the replica count
    n_hidden: int = 256
    learning_rate: float = 1e-3  # the peak rate under a schedule
    lr_schedule: str = "constant"  # "constant" (2017) or "cosine" (warm-up, then decay)
    warmup_steps: int = 0  # linear warm-up steps of the cosine schedule
    optimizer: str = "adam"  # "adam" (the 2017 choice) or "sgd" (plain: checks gradient sums)
    rnn: str = "bidirectional"  # "unidirectional" = forward-only LSTM, the one that streams
    dropout_rate: float = 0.05
    relu_clip: float = 20.0
    feature_stride: int = 1
    running_mean_frames: float = 0.0  # 0: the training set's mean (2017); see ModelConfig
    running_variance: bool = False  # needs running_mean_frames > 0
    grad_clip_norm: float = 0.0  # 0 disables clipping by global norm
    checkpoint_dir: str = "runs/checkpoints"
    feature_cache: str = DEFAULT_FEATURE_CACHE  # MFCC shards on disk, built where missing
    checkpoint_secs: int = 600  # also saved at every epoch end
    checkpoint_keep: int = 5
    devices: str = "1"  # a count of devices, or "all"
    intra_op_threads: int = 0  # threads inside one TensorFlow op; 0 = TensorFlow's choice
    inter_op_threads: int = 0  # ops run side by side (an LSTM's two directions); 0 = its choice
    report_count: int = 10
    lm: str = ""  # ARPA file: dev/test reports use beam search with it (greedy when empty)
    beam_width: int = 64
    lm_alpha: float = 0.75  # LM weight
    lm_beta: float = 1.0  # word bonus
    early_stop: bool = True
    es_epochs: int = 4  # 2017 rule: window of dev losses examined
    es_mean_threshold: float = 0.5
    es_std_threshold: float = 0.5
    reduce_lr_on_plateau: bool = False
    plateau_epochs: int = 2
    plateau_factor: float = 0.5
    stats_every: int = 50  # steps between variable/gradient statistics
    max_train_minutes: float = 0.0  # 0 = no time budget; otherwise stop epochs when it is spent
    seed: int = 0
    augment: tuple[str, ...] = ()  # SPECs (`deepspeech.data.augment_spec`), applied in order
    experiment_name: str = "deepspeech"
    tracking_uri: str = ""
    mixed_precision: bool = False  # float16 + loss scaling on GPU, bfloat16 on CPU
    ray_address: str = ""  # "" = no Ray; "local" = start one here; else a cluster's address
    workers: int = 1  # Ray workers, joined by TF_CONFIG into one MultiWorkerMirroredStrategy
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    max_failures: int = 0  # lost workers Ray replaces (training resumes); -1 = no limit

    def __post_init__(self) -> None:
        _check_positive(self, "epochs", "batch_size", "n_hidden", "feature_stride", "report_count")
        _check_positive(self, "learning_rate", "checkpoint_keep", "es_epochs", "plateau_epochs")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ConfigError(f"dropout_rate {self.dropout_rate} must be in [0, 1)")
        if not 0.0 < self.plateau_factor < 1.0:
            raise ConfigError(f"plateau_factor {self.plateau_factor} must be in (0, 1)")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"optimizer {self.optimizer!r} must be one of {', '.join(OPTIMIZERS)}"
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"lr_schedule {self.lr_schedule!r} must be one of {', '.join(LR_SCHEDULES)}"
            )
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps {self.warmup_steps} must be >= 0")
        if self.running_mean_frames < 0:
            raise ConfigError(
                f"running_mean_frames {self.running_mean_frames} must be >= 0 (0: the "
                "training set's mean)"
            )
        if self.running_variance and self.running_mean_frames == 0:
            raise ConfigError(
                "running_variance needs running_mean_frames > 0: the running deviation is "
                "taken around the running mean, with the same prior"
            )
        if self.lr_schedule != "constant" and self.reduce_lr_on_plateau:
            raise ConfigError(
                "reduce_lr_on_plateau needs lr_schedule constant: a schedule sets the rate "
                "of every step, and would undo the plateau's cuts"
            )
        if self.rnn not in RNN_KINDS:
            raise ConfigError(f"rnn {self.rnn!r} must be one of {', '.join(RNN_KINDS)}")
        if self.devices != "all" and not (self.devices.isdigit() and int(self.devices) > 0):
            raise ConfigError(f"devices {self.devices!r} must be a positive count or 'all'")
        _check_positive(self, "workers")
        if self.intra_op_threads < 0 or self.inter_op_threads < 0:
            raise ConfigError(
                "intra_op_threads and inter_op_threads must be >= 0 (0: TensorFlow's choice)"
            )
        if self.workers > 1 and not self.ray_address:
            raise ConfigError(f"workers {self.workers} needs --ray-address (an address or local)")
        if self.gpus_per_worker < 0 or self.cpus_per_worker < 0 or self.max_failures < -1:
            raise ConfigError(
                "gpus_per_worker and cpus_per_worker must be >= 0, max_failures >= -1"
            )
        parse_augmentations(self.augment)  # a bad SPEC fails now, not after hours of set-up

    @property
    def features(self) -> FeatureConfig:
        return FeatureConfig(stride=self.feature_stride)

    def model(self, n_classes: int) -> ModelConfig:
        return ModelConfig(
            n_classes=n_classes,
            numcep=self.features.numcep,
            numcontext=self.features.numcontext,
            n_hidden=self.n_hidden,
            dropout_rate=self.dropout_rate,
            relu_clip=self.relu_clip,
            rnn=self.rnn,
            running_mean_frames=self.running_mean_frames,
            running_variance=self.running_variance,
        )

    def decoder(self) -> DecoderConfig:
        """How dev and test reports decode: beam search with the LM when one is given."""
        if not self.lm:
            return DecoderConfig()
        return DecoderConfig(
            decoder="beam",
            beam_width=self.beam_width,
            alpha=self.lm_alpha,
            beta=self.lm_beta,
            lm_path=Path(self.lm),
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_positive(config: object, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if value <= 0:
            raise ConfigError(f"{name} must be positive, got {value}")


BASE_KEY = "extends"  # `extends: other.yaml`: that file's options, overridden by this one's


def load_config_file(path: Path) -> dict[str, Any]:
    """Read an experiment YAML into a dict of known TrainConfig keys (unknown keys fail by name).

    A file may say `extends: base.yaml` (relative to its own folder): the base is read first
    and this file's keys override it, so a variant of a recipe names only what differs and
    follows the recipe when it changes.
    """
    return _load_config_file(Path(path), ())


def _load_config_file(path: Path, extending: tuple[Path, ...]) -> dict[str, Any]:
    """`extending`: the files (resolved) whose bases are being read, to refuse cycles."""
    if not path.is_file():
        via = f" (extended by {extending[-1]})" if extending else ""
        raise ConfigError(f"{path}: config file not found{via}")
    if path.resolve() in extending:
        chain = " -> ".join(str(p) for p in (*extending, path.resolve()))
        raise ConfigError(f"{path}: config files extend each other in a cycle: {chain}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option: value, got {type(data).__name__}")
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(data) - known - {BASE_KEY})
    if unknown:
        raise ConfigError(f"{path}: unknown option(s) {', '.join(unknown)}; known: {sorted(known)}")
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: {BASE_KEY} must be a file name, got {base!r}")
    values = _load_config_file(path.parent / base, (*extending, path.resolve()))
    values.update(data)
    return values


NO_AUGMENTATION = "none"  # `--augment none`: train without the config file's augmentation


def build_train_config(
    config_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """Merge defaults < config file < explicit flags (None means 'flag not given')."""
    values: dict[str, Any] = load_config_file(config_file) if config_file else {}
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if list(values.get("augment", ())) == [NO_AUGMENTATION]:  # drops the config file's list
        values["augment"] = ()
    hints = get_type_hints(TrainConfig)
    coerced = {k: _coerce(k, v, hints[k]) for k, v in values.items()}
    return TrainConfig(**coerced)


def _coerce(name: str, value: Any, kind: Any) -> Any:
    """YAML and flags give ints for floats, numbers for strings and lists for tuples: accept
    those only."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is str and isinstance(value, (str, int, Path)) and not isinstance(value, bool):
        return str(value)
    if kind == tuple[str, ...]:
        if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
            return tuple(value)
        raise ConfigError(f"{name} must be a list of strings, got {value!r}")
    raise ConfigError(f"{name} must be {kind.__name__}, got {value!r}")
