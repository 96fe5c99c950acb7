"""`TrainConfig`: every option of `deepspeech train`, each defined once, here.

The `deepspeech train` flags, the keys of `experiments/*.yaml` and docs/settings.md are all
made from these fields (`deepspeech.config`): flat keys, the flag names with underscores, so a
config file and a command line say the same thing; flags override the file. The whole config
is logged to MLflow as params and stored with each checkpoint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepspeech.audio import FeatureConfig
from deepspeech.config import build_settings, check_positive, load_config_file, setting
from deepspeech.data.augment_spec import parse_augmentations
from deepspeech.data.cache import DEFAULT_FEATURE_CACHE
from deepspeech.decoding.decoders import (
    DEFAULT_ALPHA,
    DEFAULT_BEAM_WIDTH,
    DEFAULT_BETA,
    DecoderConfig,
)
from deepspeech.errors import ConfigError
from deepspeech.model.config import RNN_KINDS, WEIGHT_LAYERS, ModelConfig
from deepspeech.text import Alphabet
from deepspeech.training.schedule import LR_SCHEDULES

OPTIMIZERS = ("adam", "sgd")
NO_AUGMENTATION = "none"  # `--augment none`: train without the config file's augmentation


@dataclass(frozen=True)
class TrainConfig:
    """Every option of `deepspeech train`; all of it is logged to MLflow as params."""

    train_files: str = setting("", "Training manifest CSV(s), comma-separated.")
    dev_files: str = setting(
        "", "Dev manifest(s): evaluated after every epoch, drive early stopping."
    )
    test_files: str = setting("", "Test manifest(s): evaluated once at the end.")
    alphabet: str = setting("", "Alphabet file, one character a line (empty: space, a-z, ').")
    epochs: int = setting(10, "Epochs to train.")
    batch_size: int = setting(
        16, "Utterances per device per step; the global batch is this x devices."
    )
    n_hidden: int = setting(256, "Width of the dense and LSTM layers.")
    learning_rate: float = setting(1e-3, "Optimizer learning rate (the peak under a schedule).")
    lr_schedule: str = setting(
        "constant",
        "constant (the 2017 recipe: --learning-rate throughout) or cosine (a linear warm-up "
        "over --warmup-steps to --learning-rate, then down to 2% of it by the last step of the "
        "last epoch: a fixed-length run ends settled).",
    )
    warmup_steps: int = setting(0, "Warm-up steps of the cosine schedule.")
    optimizer: str = setting(
        "adam",
        "adam (the 2017 choice) or sgd (plain SGD: a gradient counted twice shows in its "
        "update, so it checks multi-device sums).",
    )
    rnn: str = setting(
        "bidirectional",
        "bidirectional (the 2017 BiRNN) or unidirectional (forward-only LSTM, future context "
        "from the context windows only: the model that streams).",
    )
    dropout_rate: float = setting(0.05, "Dropout after the dense layers.")
    relu_clip: float = setting(20.0, "The dense layers' ReLU is clipped at this value (2017).")
    feature_stride: int = setting(1, "Keep every N-th MFCC frame (2 halves the work).")
    running_mean_frames: float = setting(
        0.0,
        "Normalise MFCC with each utterance's running mean (cepstral mean normalisation: "
        "removes what a voice, microphone or channel adds to every frame), the training set's "
        "mean counting as this many frames (after --feature-stride) at the start; causal, so "
        "it streams. 0 uses the training set's mean only, as in 2017.",
    )
    running_variance: bool = setting(
        False,
        "With --running-mean-frames: divide by each utterance's running standard deviation "
        "too, instead of the training set's, with the same prior.",
    )
    grad_clip_norm: float = setting(0.0, "Clip gradients to this global norm; 0 disables.")
    checkpoint_dir: str = setting(
        "runs/checkpoints", "Where checkpoints go; re-running with the same folder resumes."
    )
    feature_cache: str = setting(
        DEFAULT_FEATURE_CACHE,
        "Folder of the on-disk MFCC cache (built where missing, reused otherwise; `deepspeech "
        "data featurize` builds it ahead). Training reads features from it, a window of "
        "shards at a time, so memory does not grow with the corpus.",
    )
    checkpoint_secs: int = setting(600, "Seconds between checkpoints (also saved every epoch).")
    checkpoint_keep: int = setting(5, "Checkpoints kept in --checkpoint-dir (oldest go first).")
    devices: str = setting(
        "1",
        "Devices to mirror over: a count or 'all'. GPUs when present, else logical CPU "
        "devices. Multi-machine runs are set up with TF_CONFIG or --ray-address instead.",
    )
    intra_op_threads: int = setting(
        0,
        "Threads inside one TensorFlow op (0: TensorFlow's choice, all cores). On a CPU, 1 "
        "with --inter-op-threads set to the cores runs the LSTM's two directions side by "
        "side, faster for small models.",
    )
    inter_op_threads: int = setting(0, "TensorFlow ops run side by side (0: TensorFlow's choice).")
    report_count: int = setting(10, "Samples with errors shown in each WER report.")
    lm: str = setting(
        "", "ARPA word LM: dev and test reports use beam search with it (greedy when empty)."
    )
    beam_width: int = setting(DEFAULT_BEAM_WIDTH, "With --lm: hypotheses kept per frame.")
    lm_alpha: float = setting(DEFAULT_ALPHA, "With --lm: LM weight on ln p(words).")
    lm_beta: float = setting(DEFAULT_BETA, "With --lm: bonus per word in nats.")
    early_stop: bool = setting(True, "Stop when the dev loss stops improving (the 2017 rule).")
    es_epochs: int = setting(
        4,
        "Early stop: the window of dev losses examined; training stops when the newest is "
        "worse than all before it, or when the losses have flattened (see the next two).",
    )
    es_mean_threshold: float = setting(
        0.5, "Early stop: flat when the newest loss is within this of the earlier ones' mean..."
    )
    es_std_threshold: float = setting(
        0.5, "...and the earlier ones' standard deviation is below this."
    )
    reduce_lr_on_plateau: bool = setting(
        False, "Scale the learning rate down when the dev loss plateaus."
    )
    plateau_epochs: int = setting(2, "Plateau: epochs without a better dev loss before a cut.")
    plateau_factor: float = setting(0.5, "Plateau: the learning rate is multiplied by this.")
    stats_every: int = setting(50, "Steps between variable/gradient statistics and histograms.")
    max_train_minutes: float = setting(
        0.0, "Stop training after this many minutes (at an epoch's end); 0 = no limit."
    )
    seed: int = setting(0, "Seed for weights, batch order and augmentation.")
    init_from: str = setting(
        "",
        "Fine-tune: start from a trained model's weights, a checkpoint folder, runs:/RUN_ID or "
        "models:/NAME@ALIAS|/VERSION (fresh optimizer, schedule and MLflow run). Another "
        "--alphabet re-initialises the output layer but for the characters both alphabets "
        "share. Where --checkpoint-dir already holds checkpoints, that run resumes: leave it "
        "out or give the same source (another one is refused).",
    )
    drop_layers: int = setting(
        0, f"With --init-from: re-initialise the top N of the layers {', '.join(WEIGHT_LAYERS)}."
    )
    freeze_layers: int = setting(
        0, "With --init-from: keep the bottom N of those layers fixed (not trained)."
    )
    augment: tuple[str, ...] = setting(
        (),
        "Augment the training data: name[p=P,key=VALUE,...], VALUE a number, a word or a "
        "range LO:HI; repeatable, applied in order; 'none' drops the config file's list. "
        "Names and keys are listed below.",
        metavar="SPEC",
    )
    experiment_name: str = setting("deepspeech", "MLflow experiment.")
    tracking_uri: str = setting(
        "", "MLflow tracking URI (else $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)."
    )
    mixed_precision: bool = setting(
        False,
        "float16 with loss scaling on GPU, bfloat16 on a CPU with bfloat16 instructions "
        "(AVX512_BF16, AMX; float32 on other CPUs); the output layer and the CTC loss stay "
        "float32.",
    )
    ray_address: str = setting(
        "", "Train on a Ray cluster at this address, or 'local' to start one here."
    )
    workers: int = setting(1, "Ray workers, joined by TF_CONFIG into one multi-worker strategy.")
    gpus_per_worker: float = setting(0.0, "GPUs per Ray worker.")
    cpus_per_worker: float = setting(1.0, "CPUs per Ray worker.")
    max_failures: int = setting(
        0, "Lost Ray workers to replace (training resumes from the checkpoint); -1: any."
    )

    def __post_init__(self) -> None:
        check_positive(self, "epochs", "batch_size", "n_hidden", "feature_stride", "report_count")
        check_positive(self, "learning_rate", "checkpoint_keep", "es_epochs", "plateau_epochs")
        check_positive(self, "workers")
        _check_choices(self)
        _check_ranges(self)
        _check_fine_tuning(self)
        parse_augmentations(self.augment)  # a bad SPEC fails now, not after hours of set-up

    def read_alphabet(self) -> Alphabet:
        """The alphabet file the options name, else the default one."""
        return Alphabet.from_file(Path(self.alphabet)) if self.alphabet else Alphabet.default()

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


def _check_choices(config: TrainConfig) -> None:
    for name, choices in (
        ("optimizer", OPTIMIZERS),
        ("lr_schedule", LR_SCHEDULES),
        ("rnn", RNN_KINDS),
    ):
        if getattr(config, name) not in choices:
            raise ConfigError(
                f"{name} {getattr(config, name)!r} must be one of {', '.join(choices)}"
            )
    if config.devices != "all" and not (config.devices.isdigit() and int(config.devices) > 0):
        raise ConfigError(f"devices {config.devices!r} must be a positive count or 'all'")


def _check_ranges(config: TrainConfig) -> None:
    if not 0.0 <= config.dropout_rate < 1.0:
        raise ConfigError(f"dropout_rate {config.dropout_rate} must be in [0, 1)")
    if not 0.0 < config.plateau_factor < 1.0:
        raise ConfigError(f"plateau_factor {config.plateau_factor} must be in (0, 1)")
    if config.warmup_steps < 0:
        raise ConfigError(f"warmup_steps {config.warmup_steps} must be >= 0")
    if config.running_mean_frames < 0:
        raise ConfigError(
            f"running_mean_frames {config.running_mean_frames} must be >= 0 (0: the "
            "training set's mean)"
        )
    if config.running_variance and config.running_mean_frames == 0:
        raise ConfigError(
            "running_variance needs running_mean_frames > 0: the running deviation is "
            "taken around the running mean, with the same prior"
        )
    if config.lr_schedule != "constant" and config.reduce_lr_on_plateau:
        raise ConfigError(
            "reduce_lr_on_plateau needs lr_schedule constant: a schedule sets the rate "
            "of every step, and would undo the plateau's cuts"
        )
    if config.intra_op_threads < 0 or config.inter_op_threads < 0:
        raise ConfigError(
            "intra_op_threads and inter_op_threads must be >= 0 (0: TensorFlow's choice)"
        )
    if config.workers > 1 and not config.ray_address:
        raise ConfigError(f"workers {config.workers} needs --ray-address (an address or local)")
    if config.gpus_per_worker < 0 or config.cpus_per_worker < 0 or config.max_failures < -1:
        raise ConfigError("gpus_per_worker and cpus_per_worker must be >= 0, max_failures >= -1")


def _check_fine_tuning(config: TrainConfig) -> None:
    layers = len(WEIGHT_LAYERS)
    if not 0 <= config.drop_layers <= layers:
        raise ConfigError(f"drop_layers {config.drop_layers} must be in 0..{layers}")
    if not 0 <= config.freeze_layers < layers:
        raise ConfigError(
            f"freeze_layers {config.freeze_layers} must be in 0..{layers - 1} (some layer "
            "must train)"
        )
    if (config.drop_layers or config.freeze_layers) and not config.init_from:
        raise ConfigError(
            "drop_layers and freeze_layers apply to a model given with --init-from; "
            "without one every layer starts random"
        )


def build_train_config(
    config_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """Merge defaults < config file < explicit flags (None means 'flag not given')."""
    values: dict[str, Any] = load_config_file(config_file, TrainConfig) if config_file else {}
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if list(values.get("augment", ())) == [NO_AUGMENTATION]:  # drops the config file's list
        values["augment"] = ()
    return build_settings(TrainConfig, values)
