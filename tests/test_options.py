"""Each setting is defined once: options, config keys and docs/settings.md come from the fields."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import typer
from typer.core import TyperOption

from deepspeech.cli.app import app
from deepspeech.cli.options import SETTINGS_DOC, settings_document
from deepspeech.config import build_settings, format_default, load_config_file, settings_of
from deepspeech.decoding.decoders import DecoderConfig
from deepspeech.errors import ConfigError
from deepspeech.training.config import TrainConfig
from serving.settings import ServerSettings, StreamSettings

ROOT = Path(__file__).resolve().parent.parent


def command_options(name: str) -> dict[str, TyperOption]:
    """The click options of `deepspeech NAME`, by each of their flags."""
    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    return {
        flag: param
        for param in command.params
        if isinstance(param, TyperOption)
        for flag in [*param.opts, *param.secondary_opts]
    }


@pytest.mark.parametrize(
    ("command", "classes"),
    [
        ("train", (TrainConfig,)),
        ("serve", (ServerSettings,)),
        ("evaluate", (DecoderConfig,)),
        ("transcribe", (DecoderConfig,)),
    ],
)
def test_every_setting_is_an_option_showing_its_real_default(command: str, classes) -> None:
    options = command_options(command)
    for cls in classes:
        for s in settings_of(cls):
            assert s.flag in options, f"{command} has no {s.flag}"
            assert options[s.flag].help.startswith(s.help)
            assert f"[default: {format_default(s.default)}]" in options[s.flag].help


def test_serve_options_cover_nested_settings_by_their_own_names() -> None:
    options = command_options("serve")
    for flag in ("--stream-model", "--stream-idle-seconds", "--max-streams", "--lm", "--alpha"):
        assert flag in options
    settings = build_settings(
        ServerSettings,
        {"model": "m.onnx", "stream_model": "s.onnx", "stream_idle_seconds": 5, "lm": None},
    )
    assert settings.stream == StreamSettings(model="s.onnx", idle_seconds=5.0)
    assert settings.decoder == DecoderConfig()


def test_settings_document_is_in_step_with_the_code() -> None:
    assert (ROOT / SETTINGS_DOC).read_text(encoding="utf-8") == settings_document(), (
        "docs/settings.md is stale: run `make docs`"
    )


def test_every_field_is_a_setting_with_help() -> None:
    for cls in (TrainConfig, DecoderConfig, ServerSettings, StreamSettings):
        names = {f.name for f in dataclasses.fields(cls)}
        flat = {s.path[0] for s in settings_of(cls)}
        assert names == flat, cls
        assert all(s.help for s in settings_of(cls))


def test_an_unknown_config_key_names_the_closest_known_one(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("n_hiden: 3\n")
    with pytest.raises(ConfigError, match=r"unknown option 'n_hiden' \(did you mean n_hidden\?\)"):
        load_config_file(path, TrainConfig)
    with pytest.raises(
        ConfigError, match=r"unknown option 'es_epoch' \(did you mean es_epochs\?\)"
    ):
        build_settings(TrainConfig, {"es_epoch": 2})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"epochs": 2.5}, "epochs must be int, got 2.5"),
        ({"early_stop": "yes"}, "early_stop must be true or false"),
        ({"augment": "noise"}, "augment must be a list of strings"),
        ({"epochs": True}, "epochs must be int, got True"),
    ],
)
def test_values_of_the_wrong_type_are_refused(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_settings(TrainConfig, values)


def test_values_are_coerced_where_nothing_is_lost() -> None:
    config = build_settings(TrainConfig, {"learning_rate": 1, "devices": 2, "augment": ["eq"]})
    assert (config.learning_rate, config.devices, config.augment) == (1.0, "2", ("eq",))
    decoder = build_settings(DecoderConfig, {"decoder": "beam", "lm": "lm.arpa"})
    assert decoder.lm_path == Path("lm.arpa")
    with pytest.raises(ConfigError, match="decoder 'wide' must be one of greedy, beam"):
        build_settings(DecoderConfig, {"decoder": "wide"})
