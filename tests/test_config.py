"""Config loading: defaults < YAML file < flags, unknown keys rejected by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepspeech.config import load_config_file
from deepspeech.errors import ConfigError
from deepspeech.training.config import TrainConfig, build_train_config


def test_flags_override_file_and_file_overrides_defaults(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("n_hidden: 64\nepochs: 3\nlearning_rate: 1\n")
    config = build_train_config(path, {"epochs": 7, "batch_size": None})
    assert config.n_hidden == 64
    assert config.epochs == 7
    assert config.learning_rate == 1.0 and isinstance(config.learning_rate, float)
    assert config.batch_size == TrainConfig().batch_size


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("n_hiden: 64\n")
    with pytest.raises(ConfigError, match=r"unknown option.*n_hiden"):
        load_config_file(path, TrainConfig)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("epochs: [1]\n", "epochs must be int"),
        ("early_stop: 1\n", "early_stop must be true or false"),
        ("dropout_rate: 1.5\n", "dropout_rate 1.5"),
        ("devices: two\n", "devices 'two'"),
        ("epochs: 0\n", "epochs must be positive"),
        ("intra_op_threads: -1\n", "intra_op_threads and inter_op_threads must be >= 0"),
        ("- a\n", "expected a mapping"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_bad_values_are_rejected(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        build_train_config(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        build_train_config(tmp_path / "missing.yaml")


def test_a_file_extends_another_and_overrides_its_keys(tmp_path: Path) -> None:
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "base.yaml").write_text(
        "n_hidden: 64\nepochs: 3\naugment: ['noise[p=0.5]']\n"
    )
    (tmp_path / "recipes" / "middle.yaml").write_text("extends: base.yaml\nepochs: 4\n")
    variant = tmp_path / "variants" / "x.yaml"
    variant.parent.mkdir()
    # Relative to the extending file's folder, wherever the command runs.
    variant.write_text("extends: ../recipes/middle.yaml\nrnn: unidirectional\n")
    config = build_train_config(variant, {"seed": 5})
    assert (config.n_hidden, config.epochs, config.rnn, config.seed) == (64, 4, "unidirectional", 5)
    assert config.augment == ("noise[p=0.5]",)


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        ({"x.yaml": "extends: x.yaml\n"}, "in a cycle"),
        ({"x.yaml": "extends: y.yaml\n", "y.yaml": "extends: x.yaml\n"}, "in a cycle"),
        ({"x.yaml": "extends: gone.yaml\n"}, r"gone.yaml: config file not found \(extended by"),
        ({"x.yaml": "extends: [y.yaml]\n"}, "extends must be a file name"),
        ({"x.yaml": "extends: y.yaml\n", "y.yaml": "n_hiden: 3\n"}, r"y.yaml: unknown.*n_hiden"),
    ],
)
def test_bad_extends_is_refused_by_name(
    tmp_path: Path, files: dict[str, str], fragment: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_config_file(tmp_path / "x.yaml", TrainConfig)


def test_the_streaming_recipe_is_the_make_run_recipe_with_the_forward_only_lstm() -> None:
    """All of make run's recipe but the LSTM, and reverb, which the smaller model paid for."""
    experiments = Path(__file__).resolve().parents[1] / "experiments"
    sample = load_config_file(experiments / "sample.yaml", TrainConfig)
    streaming = load_config_file(experiments / "sample-streaming.yaml", TrainConfig)
    differ = {k for k in sample.keys() | streaming.keys() if sample.get(k) != streaming.get(k)}
    assert differ == {"rnn", "checkpoint_dir", "experiment_name", "augment"}
    assert streaming["rnn"] == "unidirectional"
    assert streaming["augment"] == [a for a in sample["augment"] if not a.startswith("reverb")]


def test_model_config_derives_input_width_from_features() -> None:
    config = TrainConfig(n_hidden=32, feature_stride=2)
    model = config.model(n_classes=29)
    assert model.n_input == 26 * 19
    assert model.n_hidden == 32 and model.n_classes == 29
    assert config.features.stride == 2


def test_devices_all_is_accepted() -> None:
    assert TrainConfig(devices="all").devices == "all"


EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_experiment_file_loads(path: Path) -> None:
    assert build_train_config(path).n_hidden > 0


def _training_entry_points() -> dict[str, dict]:
    """MLproject's entry points that train a recipe (they take a `config`), as MLflow reads them."""
    from mlflow.projects._project_spec import load_project

    project = load_project(EXPERIMENTS.parent)
    return {
        name: {p.name: p.default for p in entry.parameters.values()}
        for name, entry in project._entry_points.items()
        if "config" in entry.parameters
    }


def test_every_recipe_has_a_training_entry_point() -> None:
    """`-P config=` with another recipe would get main's defaults as flags: each has its own."""
    recipes = {d["config"] for d in _training_entry_points().values()}
    recipe_files = [p for p in EXPERIMENTS.glob("*.yaml") if p.name != "tiny.yaml"]  # tests' own
    assert recipes == {f"experiments/{p.name}" for p in recipe_files}
    assert _training_entry_points()["main"]["config"] == "experiments/sample.yaml"


@pytest.mark.parametrize("entry_point", sorted(_training_entry_points()))
def test_mlproject_defaults_match_the_recipe(entry_point: str) -> None:
    """`mlflow run .` passes its defaults as flags; they must not drift from the recipe."""
    defaults = _training_entry_points()[entry_point]
    recipe = build_train_config(EXPERIMENTS.parent / defaults.pop("config"))
    for name, default in defaults.items():
        value = getattr(recipe, name)
        assert value == type(value)(default), name


def test_augment_is_a_list_of_specs_checked_when_the_config_is_built(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("augment:\n  - noise[p=0.5,snr=5:20]\n  - time_mask\n")
    assert build_train_config(path).augment == ("noise[p=0.5,snr=5:20]", "time_mask")
    flags = build_train_config(path, {"augment": ["reverb[rt60=0.3]"]})
    assert flags.augment == ("reverb[rt60=0.3]",)  # flags replace the file's list
    assert build_train_config(path, {"augment": None}).augment == build_train_config(path).augment
    assert build_train_config(path, {"augment": ["none"]}).augment == ()
    assert TrainConfig().augment == ()
    assert TrainConfig(augment=("speed",)).to_dict()["augment"] == ("speed",)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("augment: noise\n", "augment must be a list of strings"),
        ("augment: [1]\n", "augment must be a list of strings"),
        ("augment: ['noise[snr=loud]']\n", "noise: snr=loud is not a number"),
        ("augment: ['echo']\n", "unknown augmentation 'echo'"),
    ],
)
def test_bad_augment_values_are_rejected(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        build_train_config(path)
