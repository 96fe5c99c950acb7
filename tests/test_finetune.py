"""`train --init-from`: weights from a folder, a run or a registry version; dropped, frozen and
re-shaped layers; the new run's lineage in MLflow; and every bad source refused in one line
before any data is read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepspeech.errors import ConfigError
from deepspeech.model.config import WEIGHT_LAYERS, ModelConfig
from deepspeech.text import Alphabet
from deepspeech.training.checkpoint import CHECKPOINT_ARTIFACT, read_run_info
from deepspeech.training.config import TrainConfig
from deepspeech.training.init_from import SOURCE_RUN_TAG, SOURCE_TAG
from deepspeech.training.loop import train

# The tiny checkpoint's shape (tests/conftest.py), which a fine-tuning run must repeat.
TINY = {"n_hidden": 32, "feature_stride": 2, "dropout_rate": 0.0, "seed": 5, "report_count": 1}


def tuned_config(manifest: Path, source: str, tmp: Path, **overrides: object) -> TrainConfig:
    options = {
        "train_files": str(manifest),
        "epochs": 1,
        "batch_size": 8,
        "checkpoint_dir": str(tmp / "tuned"),
        "feature_cache": str(tmp / "feature-cache"),
        "tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}",
        "experiment_name": "fine-tuning",
        "init_from": source,
        **TINY,
        **overrides,
    }
    return TrainConfig(**options)


def layer_weights(checkpoint: str, config: ModelConfig) -> dict[str, list[np.ndarray]]:
    """Each weight layer's arrays (and the normalisation's) in one checkpoint file."""
    import tensorflow as tf

    from deepspeech.model.birnn import build_birnn

    model = build_birnn(config)
    tf.train.Checkpoint(model=model).restore(checkpoint).expect_partial()
    return {name: model.get_layer(name).get_weights() for name in ("normalization", *WEIGHT_LAYERS)}


def first_and_last(folder: Path) -> tuple[str, str]:
    """The initial checkpoint (saved before the first step) and the latest one."""
    import tensorflow as tf

    state = tf.train.get_checkpoint_state(str(folder))
    return state.all_model_checkpoint_paths[0], state.model_checkpoint_path


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def source(tiny_checkpoint: Path):
    """The tiny checkpoint's folder, its run id and its MLflow store."""
    info = read_run_info(tiny_checkpoint)
    latest = first_and_last(tiny_checkpoint)[1]
    return tiny_checkpoint, info, latest


def test_layer_shapes_are_the_built_models() -> None:
    from deepspeech.model.birnn import build_birnn

    for rnn in ("bidirectional", "unidirectional"):
        config = ModelConfig(n_classes=31, n_hidden=8, rnn=rnn)
        model = build_birnn(config)
        built = {n: [tuple(w.shape) for w in model.get_layer(n).weights] for n in WEIGHT_LAYERS}
        assert built == config.layer_shapes()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"drop_layers": 1}, "apply to a model given with --init-from"),
        ({"freeze_layers": 2}, "apply to a model given with --init-from"),
        ({"init_from": "x", "freeze_layers": 6}, "some layer must train"),
        ({"init_from": "x", "drop_layers": 7}, "drop_layers 7 must be in 0..6"),
    ],
)
def test_options_that_cannot_work_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig(train_files="t.csv", **options)


@pytest.mark.slow
def test_fine_tunes_with_a_new_alphabet_and_frozen_layers(
    source, few_steps_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """h1-h2 frozen keep the source's values through training; h3-h5 start from them and
    move; the output layer, over a larger alphabet, keeps the shared characters' columns and
    starts the digits afresh; the run says where from."""
    folder, info, latest = source
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")
    alphabet_file = tmp_path / "alphabet.txt"
    alphabet_file.write_text("\n".join([*Alphabet.default().labels, *"0123456789"]) + "\n")
    config = tuned_config(
        few_steps_corpus, str(folder), tmp_path, alphabet=str(alphabet_file), freeze_layers=2
    )
    result = train(config)

    theirs = layer_weights(latest, info.model)
    new_model = read_run_info(tmp_path / "tuned").model
    assert new_model.n_classes == info.model.n_classes + 10
    initial, final = (layer_weights(p, new_model) for p in first_and_last(tmp_path / "tuned"))
    for name in ("normalization", "h1", "h2", "h3", "lstm", "h5"):
        assert same(initial[name], theirs[name]), name
    kernel, bias = initial["h6"]
    assert kernel.shape == (32, new_model.n_classes)
    # The 28 shared characters keep their columns, the blank moves to the end, digits are new.
    np.testing.assert_array_equal(kernel[:, :28], theirs["h6"][0][:, :28])
    np.testing.assert_array_equal(kernel[:, -1], theirs["h6"][0][:, -1])
    np.testing.assert_array_equal(bias[[*range(28), -1]], theirs["h6"][1])
    assert not np.allclose(kernel[:, 28:38], 0) and np.all(bias[28:38] == 0)  # Keras' init
    for name in ("h1", "h2"):
        assert same(final[name], theirs[name]), f"frozen {name} moved"
    for name in ("h3", "lstm", "h5", "h6"):
        assert not same(final[name], initial[name]), f"{name} did not train"

    from mlflow import MlflowClient

    client = MlflowClient(config.tracking_uri)
    run = client.get_run(result.mlflow_run_id)
    assert run.data.tags[SOURCE_TAG] == str(folder)
    assert run.data.tags[SOURCE_RUN_TAG] == info.mlflow_run_id
    assert run.data.params["freeze_layers"] == "2"
    (dataset,) = run.inputs.dataset_inputs
    assert dataset.dataset.name == "train.csv" and len(dataset.dataset.digest) >= 8
    assert {t.key: t.value for t in dataset.tags}["mlflow.data.context"] == "train"
    assert any(key.startswith("system/cpu") for key in run.data.metrics)
    logged = {f.path for f in client.list_artifacts(run.info.run_id, CHECKPOINT_ARTIFACT)}
    assert f"{CHECKPOINT_ARTIFACT}/run.json" in logged


@pytest.mark.slow
def test_runs_and_registry_uris_give_the_folders_weights(
    source, few_steps_corpus: Path, tmp_path: Path
) -> None:
    """The source run logged its final weights as an artifact: `runs:/RUN_ID`, and a registry
    version made from that run, start a run exactly where the folder does."""
    from mlflow import MlflowClient

    _, info, latest = source
    client = MlflowClient(info.tracking_uri)
    client.create_registered_model("tiny")
    version = client.create_model_version(
        "tiny", f"runs:/{info.mlflow_run_id}/{CHECKPOINT_ARTIFACT}", info.mlflow_run_id
    )
    client.set_registered_model_alias("tiny", "champion", version.version)
    theirs = layer_weights(latest, info.model)
    for n, spec in enumerate((f"runs:/{info.mlflow_run_id}", "models:/tiny@champion")):
        config = tuned_config(
            few_steps_corpus, spec, tmp_path / str(n), tracking_uri=info.tracking_uri
        )
        result = train(config)
        initial = layer_weights(first_and_last(tmp_path / str(n) / "tuned")[0], info.model)
        assert all(same(initial[k], theirs[k]) for k in theirs), spec
        tags = client.get_run(result.mlflow_run_id).data.tags
        assert tags[SOURCE_TAG] == spec and tags[SOURCE_RUN_TAG] == info.mlflow_run_id


@pytest.mark.slow
def test_drop_layers_starts_the_top_afresh(source, few_steps_corpus: Path, tmp_path: Path):
    folder, info, latest = source
    train(tuned_config(few_steps_corpus, str(folder), tmp_path, drop_layers=2))
    theirs = layer_weights(latest, info.model)
    initial = layer_weights(first_and_last(tmp_path / "tuned")[0], info.model)
    assert [same(initial[k], theirs[k]) for k in WEIGHT_LAYERS] == [True] * 4 + [False] * 2


@pytest.mark.slow
def test_a_killed_fine_tuning_run_resumes_its_own_weights(
    source, few_steps_corpus: Path, tmp_path: Path
) -> None:
    """Once the new folder holds checkpoints, --init-from is not applied again: a re-run goes on
    from where the fine-tuning run was, in the same MLflow run, given the same source (by
    another path too) or none; another source is refused, not ignored."""
    folder, _, _ = source
    first = train(tuned_config(few_steps_corpus, str(folder), tmp_path))
    relative = os.path.relpath(folder)
    second = train(tuned_config(few_steps_corpus, relative, tmp_path, epochs=2))
    assert second.mlflow_run_id == first.mlflow_run_id
    assert second.steps == 2 * first.steps
    saved = sorted(p.name for p in (tmp_path / "tuned").iterdir())
    with pytest.raises(ConfigError, match=r"started with init_from .* \(asked: 'runs:/"):
        train(tuned_config(few_steps_corpus, "runs:/0123456789abcdef", tmp_path, epochs=3))
    assert sorted(p.name for p in (tmp_path / "tuned").iterdir()) == saved
    third = train(tuned_config(few_steps_corpus, "", tmp_path, epochs=2))
    assert (third.mlflow_run_id, third.steps) == (first.mlflow_run_id, second.steps)


@pytest.mark.parametrize(
    ("spec", "overrides", "message"),
    [
        ("{tmp}/nowhere", {}, "no such folder"),
        ("{tmp}", {}, "not a trained model"),
        ("runs:/0123456789abcdef0123456789abcdef", {}, "not found in"),
        ("runs:/nothex", {}, "not a run URI"),
        ("models:/absent@production", {}, "not found in"),
        ("{ckpt}", {"n_hidden": 16}, r"layer h1 has shapes \[\(494, 32\), \(32,\)\] in the "),
        ("{ckpt}", {"feature_stride": 1}, "its features"),
        ("{ckpt}", {"rnn": "unidirectional"}, "layer lstm has shapes"),
        ("{ckpt}", {"drop_layers": 2, "freeze_layers": 5}, "freeze re-initialised"),
    ],
)
@pytest.mark.slow
def test_a_bad_source_is_one_line_before_any_data_is_read(
    source, tmp_path: Path, spec: str, overrides: dict, message: str
) -> None:
    folder, info, _ = source
    spec = spec.format(tmp=tmp_path, ckpt=folder)
    config = tuned_config(
        tmp_path / "not-read.csv",  # a missing manifest would fail first if data came first
        spec,
        tmp_path,
        tracking_uri=info.tracking_uri,
        **overrides,
    )
    with pytest.raises(ConfigError, match=message) as error:
        train(config)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "tuned").exists(), "nothing written"


def cli_fine_tune(manifest: Path, tmp: Path, source: str, *extra: str) -> list[str]:
    """`deepspeech train --init-from SOURCE --drop-layers 1` on the tiny model's shape."""
    return [
        sys.executable, "-m", "deepspeech", "train",
        "--train-files", str(manifest),
        "--checkpoint-dir", str(tmp / "tuned"),
        "--feature-cache", str(tmp / "feature-cache"),
        "--tracking-uri", f"sqlite:///{tmp / 'mlflow.db'}",
        "--n-hidden", "32", "--feature-stride", "2", "--dropout-rate", "0",
        "--epochs", "1", "--batch-size", "4", "--init-from", source, "--drop-layers", "1", *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_fine_tunes_on_two_mirrored_devices(source, few_steps_corpus: Path, tmp_path: Path) -> None:
    folder, info, latest = source
    command = cli_fine_tune(few_steps_corpus, tmp_path, str(folder), "--devices", "2")
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "re-initialised h6" in result.stderr
    theirs = layer_weights(latest, info.model)
    initial = layer_weights(first_and_last(tmp_path / "tuned")[0], info.model)
    assert [same(initial[k], theirs[k]) for k in WEIGHT_LAYERS] == [True] * 5 + [False]


@pytest.mark.slow
def test_fine_tunes_on_two_ray_workers(source, few_steps_corpus: Path, tmp_path: Path) -> None:
    """A relative --init-from folder crosses to the Ray workers as an absolute path, and the
    chief's first checkpoint holds the source's weights below the dropped layer."""
    from test_ray_launch import RAY_ENV, in_namespace

    folder, info, latest = source
    relative = os.path.relpath(folder, tmp_path)
    command = cli_fine_tune(
        few_steps_corpus, tmp_path, relative, "--ray-address", "local", "--workers", "2"
    )
    result = subprocess.run(
        in_namespace(command), capture_output=True, text=True, env=RAY_ENV, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-5000:]
    theirs = layer_weights(latest, info.model)
    initial = layer_weights(first_and_last(tmp_path / "tuned")[0], info.model)
    assert [same(initial[k], theirs[k]) for k in WEIGHT_LAYERS] == [True] * 5 + [False]
