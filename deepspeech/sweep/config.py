"""`SweepConfig`: every option of `deepspeech sweep`, each defined once, here.

A sweep file holds these keys (flat, like a training config; `extends:` works too): the
training config the trials start from (`base_config`), the searched keys (`space`), what to
minimise, how to search and how to stop. `load_sweep` reads the file, the flags over it, and
the base config, and checks all of it before Ray starts: an unknown key, an empty range, a bad
distribution, algorithm or scheduler fails in one line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from deepspeech.config import build_settings, check_positive, load_config_file, setting
from deepspeech.errors import ConfigError
from deepspeech.sweep.space import Distribution, parse_space, space_entries
from deepspeech.training.config import TrainConfig, build_train_config
from deepspeech.training.ray_launch import LOCAL, absolute_options

# The per-epoch dev figures a trial reports (all lower-is-better): what a sweep may minimise.
EPOCH_METRICS = ("dev_wer", "dev_cer", "dev_loss")


@dataclass(frozen=True)
class SweepConfig:
    """Every option of `deepspeech sweep`; all of it is logged to the sweep's parent run."""

    base_config: str = setting(
        "",
        "The training config the trials start from: any file `train --config` takes (in a "
        "sweep file, relative to that file's folder).",
        metavar="YAML",
    )
    space: tuple[str, ...] = setting(
        (),
        "The searched training settings, key=distribution(args): choice(A, B, ...), "
        "uniform(LOW, HIGH), loguniform(LOW, HIGH) or integer(LOW, HIGH) (both ends "
        "included); in a sweep file a mapping of key: distribution(args). Flags replace the "
        "file's space.",
        metavar="KEY=DIST",
    )
    metric: Literal["dev_wer", "dev_cer", "dev_loss"] = setting(
        "dev_wer",
        "The per-epoch dev figure to minimise: dev_wer, dev_cer or dev_loss; the scheduler "
        "compares trials by it after each epoch, and the best trial has the lowest last one.",
    )
    search: Literal["random", "tpe"] = setting(
        "random",
        "random (Tune's BasicVariantGenerator) or tpe (Optuna's Tree-structured Parzen "
        "Estimator, through Tune's OptunaSearch: later trials are drawn near the best so far; "
        "it pays off over dozens of trials).",
    )
    startup_trials: int = setting(
        3,
        "With tpe: trials drawn at random before TPE models the results (Optuna's default "
        "of 10 is more than a small sweep has).",
    )
    scheduler: Literal["asha", "none"] = setting(
        "asha",
        "asha (Tune's asynchronous successive halving: after grace_period epochs, and at "
        "every reduction_factor times as many, a trial worse than most trials were at that "
        "epoch is stopped) or none (every trial trains all of the base config's epochs).",
    )
    grace_period: int = setting(1, "With asha: epochs every trial trains before it can stop.")
    reduction_factor: float = setting(
        2.0, "With asha: at each of its epochs, the best 1/N of the trials go on."
    )
    trials: int = setting(8, "Trials in the sweep (Tune's num_samples).")
    max_concurrent: int = setting(2, "Trials training at the same time.")
    cpus_per_trial: float = setting(1.0, "CPUs Ray reserves for each trial.")
    include_base: bool = setting(
        True,
        "The first trial runs the base config's own values of the searched keys (Tune's "
        "points_to_evaluate): the sweep measures the recipe it starts from beside the others.",
    )
    seed: int = setting(0, "Seed of the search (every trial keeps the base config's seed).")
    sweep_dir: str = setting(
        "runs/sweeps",
        "A sweep's folder is <sweep_dir>/<sweep file name>: Tune's experiment state, each "
        "trial's checkpoints, and the parent run's id; the same file resumes from it.",
    )
    ray_address: str = setting(LOCAL, "Ray cluster address, or 'local' to start Ray here.")
    tracking_uri: str = setting(
        "",
        "MLflow tracking URI (else the base config's, else $MLFLOW_TRACKING_URI, else "
        "sqlite:///mlflow.db).",
    )
    experiment_name: str = setting(
        "", "MLflow experiment of the sweep's parent run and its trials (else the base config's)."
    )

    def __post_init__(self) -> None:
        check_positive(self, "trials", "max_concurrent", "cpus_per_trial", "grace_period")
        if self.reduction_factor <= 1:
            raise ConfigError(f"reduction_factor {self.reduction_factor} must be above 1")
        if self.startup_trials < 0:
            raise ConfigError(f"startup_trials {self.startup_trials} must be >= 0")
        if not self.ray_address:
            raise ConfigError("ray_address must be a cluster address or 'local'")


@dataclass(frozen=True)
class Sweep:
    """A checked sweep: its settings, the base training config and the parsed space."""

    name: str  # the sweep file's name without .yaml: the parent run's and the folder's name
    settings: SweepConfig
    base_path: Path
    base: TrainConfig
    space: tuple[Distribution, ...]
    tracking_uri: str  # absolute where it is a SQLite file: Ray's workers run elsewhere

    @property
    def folder(self) -> Path:
        return (Path(self.settings.sweep_dir) / self.name).resolve()

    @property
    def epochs(self) -> int:
        """Every trial's budget, and the scheduler's max_t."""
        return self.base.epochs

    @property
    def experiment_name(self) -> str:
        return self.settings.experiment_name or self.base.experiment_name

    def trial_options(self) -> dict[str, Any]:
        """The base config as every trial starts from it: file paths and the store absolute."""
        return absolute_options(dataclasses.replace(self.base, tracking_uri=self.tracking_uri))

    def base_values(self) -> dict[str, Any]:
        """The base config's values of the searched keys."""
        return {d.key: getattr(self.base, d.key) for d in self.space}

    def identity(self) -> dict[str, Any]:
        """What must not change when the sweep resumes (where Ray runs may)."""
        settings = {
            k: v for k, v in dataclasses.asdict(self.settings).items() if k != "ray_address"
        }
        settings["space"] = [f"{d.key}={d.spec}" for d in self.space]
        settings["base_config"] = str(self.base_path.resolve())
        return {"settings": settings, "base": _jsonable(self.trial_options())}


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}


def load_sweep(config_file: Path, overrides: dict[str, Any] | None = None) -> Sweep:
    """The sweep file, with flags (None: not given) over it, checked; ConfigError otherwise."""
    config_file = Path(config_file)
    values = load_config_file(config_file, SweepConfig)
    if "space" in values:
        values["space"] = space_entries(values["space"])
    if values.get("base_config"):
        values["base_config"] = str(config_file.parent / str(values["base_config"]))
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    settings = build_settings(SweepConfig, values)
    if not settings.base_config:
        raise ConfigError(f"{config_file}: no base_config: name the training config to search")
    base_path = Path(settings.base_config)
    base = build_train_config(base_path)
    where = f"{config_file}: base_config {base_path}"
    if base.ray_address or base.workers != 1:
        raise ConfigError(
            f"{where} sets ray_address or workers: each trial trains on one Ray actor, and "
            "the sweep's ray_address says where"
        )
    if not base.dev_files:
        raise ConfigError(f"{where} has no dev_files: the sweep's {settings.metric} is theirs")
    if settings.scheduler == "asha" and settings.grace_period > base.epochs:
        raise ConfigError(
            f"{config_file}: grace_period {settings.grace_period} exceeds the base config's "
            f"{base.epochs} epochs"
        )
    try:
        space = parse_space(settings.space, base.to_dict())
    except ConfigError as e:
        raise ConfigError(f"{config_file}: {e}") from None
    if settings.include_base:
        for d in space:
            value = getattr(base, d.key)
            if not d.contains(value):
                raise ConfigError(
                    f"{config_file}: the base config's {d.key} {value!r} is outside "
                    f"{d.spec}: widen the space, or set include_base: false"
                )
    # absolute_options resolves the store as training does, a SQLite file made absolute.
    store = dataclasses.replace(base, tracking_uri=settings.tracking_uri or base.tracking_uri)
    uri = absolute_options(store)["tracking_uri"]
    return Sweep(config_file.stem, settings, base_path, base, space, uri)
