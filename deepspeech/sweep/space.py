"""A sweep's search space: `key=distribution(args)` per searched training setting.

The distributions are Ray Tune's own (`tune.choice`, `tune.uniform`, `tune.loguniform`,
`tune.randint`), written as text so a sweep file, a flag and MLflow's params all say the same
thing. Each is checked against the training setting it searches before anything starts: an
unknown key, an empty range, a distribution that cannot produce the setting's type, or an end
that the setting rejects is a one-line ConfigError.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from deepspeech.config import build_settings, closest_key, settings_of
from deepspeech.errors import ConfigError
from deepspeech.training.config import TrainConfig

DISTRIBUTIONS = ("choice", "uniform", "loguniform", "integer")
# Settings a trial must not take from the space: where the trial's files and runs go, how Ray
# runs it (the sweep decides), and the epochs (the budget every trial shares: ASHA's max_t).
NOT_SEARCHABLE = {
    "checkpoint_dir": "each trial gets its own folder in the sweep's",
    "tracking_uri": "the sweep's store holds every trial",
    "experiment_name": "the trials go into the sweep's experiment",
    "ray_address": "the sweep decides where trials run",
    "workers": "each trial trains on one Ray actor",
    "gpus_per_worker": "each trial trains on one Ray actor",
    "cpus_per_worker": "set cpus_per_trial in the sweep instead",
    "max_failures": "each trial trains on one Ray actor",
    "epochs": "it is every trial's budget (and the scheduler's max_t): set it in the base config",
}
_SPEC = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([A-Za-z_]+)\s*\((.*)\)\s*$", re.DOTALL)


@dataclass(frozen=True)
class Distribution:
    """One searched key: `key=name(args)`."""

    key: str
    name: str  # one of DISTRIBUTIONS
    args: tuple[Any, ...]

    @property
    def spec(self) -> str:
        """The distribution as written in a sweep file (and logged to the parent run)."""
        return f"{self.name}({', '.join(repr(a) for a in self.args)})"

    @property
    def log_scale(self) -> bool:
        return self.name == "loguniform"

    def to_tune(self) -> Any:
        """The Ray Tune domain that samples it."""
        from ray import tune

        if self.name == "choice":
            return tune.choice(list(self.args))
        low, high = self.args
        if self.name == "uniform":
            return tune.uniform(low, high)
        if self.name == "loguniform":
            return tune.loguniform(low, high)
        return tune.randint(low, high + 1)  # Tune's upper end is exclusive; ours is included

    def contains(self, value: Any) -> bool:
        if self.name == "choice":
            return value in self.args
        low, high = self.args
        return isinstance(value, (int, float)) and low <= value <= high


def parse_distribution(text: str) -> Distribution:
    """`key=name(args)` -> Distribution; ConfigError in one line when it is malformed."""
    match = _SPEC.match(text)
    if not match:
        raise ConfigError(
            f"space entry {text!r} must be key=distribution(args), e.g. "
            "learning_rate=loguniform(0.0005, 0.005)"
        )
    key, name, body = match.groups()
    if name not in DISTRIBUTIONS:
        raise ConfigError(
            f"space {key}: unknown distribution {name!r}{closest_key(name, DISTRIBUTIONS)}; "
            f"use one of {', '.join(DISTRIBUTIONS)}"
        )
    try:
        args = ast.literal_eval(f"({body},)") if body.strip() else ()
    except (ValueError, SyntaxError):
        raise ConfigError(
            f"space {key}: {name}({body}) needs literal arguments (numbers, quoted words)"
        ) from None
    return _checked_shape(Distribution(key, name, tuple(args)))


def _checked_shape(d: Distribution) -> Distribution:
    """The distribution's own rules: arity, numbers, a non-empty range."""
    where = f"space {d.key}: {d.name}({', '.join(map(repr, d.args))})"
    if d.name == "choice":
        if not d.args:
            raise ConfigError(f"{where} is empty: give at least one value")
        return d
    if len(d.args) != 2:
        raise ConfigError(f"{where} takes two numbers, LOW and HIGH")
    low, high = d.args
    numbers = all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in d.args)
    if not numbers or not all(math.isfinite(a) for a in d.args):
        raise ConfigError(f"{where} takes two finite numbers, LOW and HIGH")
    if d.name == "integer":
        if not all(isinstance(a, int) for a in d.args):
            raise ConfigError(f"{where} takes two whole numbers")
        if low > high:
            raise ConfigError(f"{where} is an empty range: LOW must not exceed HIGH")
        return d
    if low >= high:
        raise ConfigError(f"{where} is an empty range: LOW must be below HIGH")
    if d.name == "loguniform" and low <= 0:
        raise ConfigError(f"{where} needs LOW > 0 (it samples the logarithm)")
    return Distribution(d.key, d.name, (float(low), float(high)))


def space_entries(value: Any) -> tuple[str, ...] | None:
    """A sweep file's `space` as `key=distribution` texts: a mapping `key: distribution`
    reads as its entries; a list is kept as it is (checked when the settings are built)."""
    if isinstance(value, Mapping):
        return tuple(f"{key}={spec}" for key, spec in value.items())
    return value


def parse_space(entries: Iterable[str], base: Mapping[str, Any]) -> tuple[Distribution, ...]:
    """The checked distributions of `entries`, each searched key a training setting whose
    every choice, or both ends, the training config accepts on top of `base` (its values)."""
    settings = {s.key: s for s in settings_of(TrainConfig)}
    space: dict[str, Distribution] = {}
    for text in entries:
        d = parse_distribution(text)
        if d.key in space:
            raise ConfigError(f"space {d.key}: searched twice")
        if d.key not in settings:
            raise ConfigError(
                f"space {d.key}: not a training setting{closest_key(d.key, settings)}; "
                "docs/settings.md lists them"
            )
        if d.key in NOT_SEARCHABLE:
            raise ConfigError(f"space {d.key}: not searchable: {NOT_SEARCHABLE[d.key]}")
        kind = settings[d.key].kind
        if d.name in ("uniform", "loguniform") and kind is not float:
            raise ConfigError(
                f"space {d.key}: {d.name} draws fractional numbers, but {d.key} is "
                f"{getattr(kind, '__name__', kind)}: use integer(LOW, HIGH) or choice(...)"
            )
        if d.name == "integer" and kind not in (int, float):
            raise ConfigError(f"space {d.key}: integer draws numbers, but {d.key} is not one")
        for value in d.args:  # every choice, or both ends
            try:
                build_settings(TrainConfig, {**base, d.key: value})
            except ConfigError as e:
                raise ConfigError(f"space {d.key}: {d.spec} reaches a bad value: {e}") from None
        space[d.key] = d
    if not space:
        raise ConfigError("the sweep searches nothing: give space (key: distribution(args))")
    return tuple(space.values())
