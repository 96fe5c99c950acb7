"""Command-line options made from settings classes, so a setting is written once.

`@settings_options(TrainConfig)` gives a typer command one option per setting of the class
(nested classes flattened: `ServerSettings.stream.model` is `--stream-model`), with the
field's help and its real default in `--help`. Every generated option defaults to None,
meaning "not given", so a config file or the class default decides; the command receives
them as keyword arguments and builds its settings with `deepspeech.config.build_settings`.
`settings_markdown` writes the same facts as docs/settings.md.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import typer

from deepspeech.config import Setting, format_default, settings_of
from deepspeech.decoding.decoders import DecoderConfig
from deepspeech.sweep.config import SweepConfig
from deepspeech.training.config import TrainConfig
from serving.settings import ServerSettings

SETTINGS_DOC = Path("docs/settings.md")  # made by `make docs`; a test keeps it in step

# The MLflow store of the commands that read or write runs outside training's settings.
TrackingUriOption = Annotated[
    str | None,
    typer.Option(help="MLflow store (else $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)."),
]


def settings_options(
    cls: type,
    *,
    only: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add an option per setting of `cls` (or only those keys) to a typer command.

    The command declares its own parameters as usual plus `**settings`, which receives the
    generated options by key (None where not given).
    """
    keep = set(only) if only is not None else None
    chosen = [
        s for s in settings_of(cls) if (keep is None or s.key in keep) and s.key not in set(exclude)
    ]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command, eval_str=True)
        declared = [
            p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        names = {p.name for p in declared}
        generated = [_parameter(s) for s in chosen if s.key not in names]

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            return command(**kwargs)

        parameters = [*declared, *generated]
        wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper

    return decorate


def _parameter(s: Setting) -> inspect.Parameter:
    """A keyword parameter typer reads as `--key` (`--key/--no-key` for a yes/no setting)."""
    kind, decls = _option_type(s.kind), [s.flag]
    if kind is bool:
        decls = [f"{s.flag}/--no-{s.flag[2:]}"]
    shown = " [required]" if s.required else f" [default: {format_default(s.default)}]"
    option = typer.Option(
        *decls,
        help=s.help + shown,
        show_default=False,
        metavar=s.metavar,
    )
    return inspect.Parameter(
        s.key,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[kind | None, option],
    )


def _option_type(kind: Any) -> Any:
    """The type typer parses a setting's option as: `X | None` -> X, tuple -> list,
    Literal -> str."""
    args = [a for a in get_args(kind) if a is not type(None)]
    if get_origin(kind) is not None and type(None) in get_args(kind):
        kind = args[0]
    if get_origin(kind) is Literal:
        return str
    if get_origin(kind) is tuple:
        return list[str]
    return kind


def settings_markdown(cls: type, title: str, command: str) -> str:
    """A markdown section listing the settings of `cls`: option, config key, default, help."""
    lines = [
        f"## {title}",
        "",
        f"`{command}` options; in a config file the key is the option without `--`, with "
        "underscores.",
        "",
        "| option | default | meaning |",
        "|---|---|---|",
    ]
    for s in settings_of(cls):
        default = "required" if s.required else format_default(s.default)
        meaning = s.help.replace("|", "\\|")
        lines.append(f"| `{s.flag}` | `{default}` | {meaning} |")
    return "\n".join(lines) + "\n"


def settings_document() -> str:
    """docs/settings.md: every setting of training, decoding and serving."""
    intro = (
        "# Settings\n\n"
        "Generated from the settings classes by `make docs` (a test fails when it is out of "
        "step); do not edit by hand. Each setting is a field with its default and help in one "
        "place: `deepspeech.training.config.TrainConfig`, "
        "`deepspeech.decoding.decoders.DecoderConfig`, `serving.settings.ServerSettings`.\n\n"
        "A config file (`deepspeech train --config experiments/X.yaml`) holds `key: value` "
        "lines with these keys; `extends: base.yaml` reads another file first; flags override "
        "the file. An unknown key is an error that names the closest known one.\n"
    )
    sections = [
        settings_markdown(TrainConfig, "Training", "deepspeech train"),
        settings_markdown(SweepConfig, "Sweeps", "deepspeech sweep"),
        settings_markdown(DecoderConfig, "Decoding", "deepspeech evaluate / transcribe / serve"),
        settings_markdown(ServerSettings, "Serving", "deepspeech serve"),
    ]
    return "\n".join([intro, *sections])


def write_settings_document(path: Path = SETTINGS_DOC) -> None:
    """Write docs/settings.md (`make docs`)."""
    path.write_text(settings_document(), encoding="utf-8")
