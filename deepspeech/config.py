"""Settings: each one a dataclass field with its type, default and help, written once.

A stage's configuration is a frozen dataclass beside the stage (`TrainConfig` in
`deepspeech.training.config`, `DecoderConfig` in `deepspeech.decoding.decoders`, the server's
`ServerSettings` in `serving.settings`). Its fields are declared with `setting(...)`, and
everything else comes from them: the command-line options (`deepspeech.cli.options`), the
keys a config file may hold (`load_config_file`), and docs/settings.md. A setting's flat name
(its `key`) is the field name unless a nested dataclass gives it another (`--stream-model` is
`StreamSettings.model`); the option is `--key-with-dashes`.

Unknown keys are rejected by name with the closest known key, because a misspelt key that
silently falls back to a default wastes a training run.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterator
from dataclasses import MISSING, Field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from deepspeech.errors import ConfigError

T = TypeVar("T")
BASE_KEY = "extends"  # `extends: other.yaml`: that file's options, overridden by this one's


def setting(
    default: Any = MISSING,
    help: str = "",
    *,
    key: str | None = None,
    metavar: str | None = None,
    default_factory: Any = MISSING,
) -> Any:
    """A dataclass field that is a user-facing setting: `help` is its one description."""
    metadata = {"help": help, "key": key, "metavar": metavar}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One field of a settings class, flattened: `path` is the attribute path to it."""

    key: str  # flat name: config-file key, and the option `--key-with-dashes`
    path: tuple[str, ...]  # ("stream", "model") for ServerSettings.stream.model
    kind: Any  # the field's resolved type
    default: Any  # MISSING when the field is required
    help: str
    metavar: str | None

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    @property
    def required(self) -> bool:
        return self.default is MISSING


def settings_of(cls: type) -> list[Setting]:
    """The settings of a dataclass, nested dataclasses flattened, in declaration order."""
    return list(_walk(cls, ()))


def _walk(cls: type, path: tuple[str, ...]) -> Iterator[Setting]:
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            yield from _walk(kind, (*path, f.name))
            continue
        if not f.metadata.get("help"):
            raise TypeError(f"{cls.__name__}.{f.name}: a setting needs help text (use setting())")
        yield Setting(
            key=f.metadata.get("key") or f.name,
            path=(*path, f.name),
            kind=kind,
            default=_default(f),
            help=f.metadata["help"],
            metavar=f.metadata.get("metavar"),
        )


def _default(f: Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def format_default(value: Any) -> str:
    """A default as a user would type it."""
    if value is None or value == () or value == "":
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple):
        return ", ".join(map(str, value))
    return str(value)


def closest_key(name: str, known: typing.Iterable[str]) -> str:
    """' (did you mean X?)' for a misspelt key, or ''."""
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


def load_config_file(path: Path, cls: type) -> dict[str, Any]:
    """Read a YAML config into a dict of `cls`'s setting keys (unknown keys fail by name).

    A file may say `extends: base.yaml` (relative to its own folder): the base is read first
    and this file's keys override it, so a variant of a recipe names only what differs and
    follows the recipe when it changes.
    """
    known = {s.key for s in settings_of(cls)}
    return _load_config_file(Path(path), known, ())


def _load_config_file(path: Path, known: set[str], extending: tuple[Path, ...]) -> dict[str, Any]:
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
    unknown = sorted(set(data) - known - {BASE_KEY})
    if unknown:
        raise ConfigError(
            f"{path}: unknown option {unknown[0]!r}{closest_key(unknown[0], known)}; "
            "docs/settings.md lists them all"
        )
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: {BASE_KEY} must be a file name, got {base!r}")
    values = _load_config_file(path.parent / base, known, (*extending, path.resolve()))
    values.update(data)
    return values


def build_settings(cls: type[T], values: dict[str, Any]) -> T:
    """`cls` from flat {key: value} (None: not given, so the default), nested classes too.

    Values are coerced to the field's type (YAML and flags give ints for floats, numbers for
    strings, lists for tuples); anything else is a one-line ConfigError.
    """
    by_key = {s.key: s for s in settings_of(cls)}
    for name in values:
        if name not in by_key:
            raise ConfigError(f"unknown option {name!r}{closest_key(name, by_key)}")
    given = {
        s.path: coerce(s.key, values[s.key], s.kind)
        for s in by_key.values()
        if values.get(s.key) is not None
    }
    for s in by_key.values():
        if s.required and s.path not in given:
            raise ConfigError(f"{s.flag} is required: {s.help[0].lower()}{s.help[1:]}")
    return _construct(cls, (), given)


def _construct(cls: type[T], path: tuple[str, ...], given: dict[tuple[str, ...], Any]) -> T:
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        here = (*path, f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            kwargs[f.name] = _construct(hints[f.name], here, given)
        elif here in given:
            kwargs[f.name] = given[here]
    return cls(**kwargs)


def coerce(name: str, value: Any, kind: Any) -> Any:
    """`value` as `kind` where the conversion loses nothing; ConfigError otherwise."""
    args = get_args(kind)
    if get_origin(kind) in (typing.Union, types.UnionType) and type(None) in args:
        if value is None:
            return None
        (kind,) = [a for a in args if a is not type(None)]
    if get_origin(kind) is Literal:
        if value in get_args(kind):
            return value
        choices = ", ".join(map(str, get_args(kind)))
        raise ConfigError(f"{name} {value!r} must be one of {choices}")
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be {getattr(kind, '__name__', kind)}, got {value!r}")
    if kind is float and isinstance(value, (int, float)):
        return float(value)
    if kind is int and isinstance(value, int):
        return value
    if kind is str and isinstance(value, (str, int, float, Path)):
        return str(value)
    if kind is Path and isinstance(value, (str, Path)):
        return Path(value)
    if kind == tuple[str, ...]:
        if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
            return tuple(value)
        raise ConfigError(f"{name} must be a list of strings, got {value!r}")
    raise ConfigError(f"{name} must be {getattr(kind, '__name__', kind)}, got {value!r}")


def check_positive(config: object, *names: str) -> None:
    """ConfigError naming the first of `names` whose value is not > 0."""
    for name in names:
        value = getattr(config, name)
        if value <= 0:
            raise ConfigError(f"{name} must be positive, got {value}")


def keys_of(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """The entries of `values` that are settings of `cls` (a command given several classes'
    options hands each class its own)."""
    keys = {s.key for s in settings_of(cls)}
    return {k: v for k, v in values.items() if k in keys}
