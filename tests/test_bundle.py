"""The one deployable: `export --register --lm --alias` packs the ONNX model, the LM and the
decoder settings as one MLflow pyfunc version; it transcribes through `mlflow.pyfunc`,
`mlflow models serve`, `deepspeech transcribe` and `deepspeech serve` alike, carries its
lineage, and its alias moves. Old `mlflow.onnx` versions still open. A real MLflow registry
in a temporary folder throughout."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from deepspeech.cli import main
from deepspeech.data.manifest import read_manifest
from deepspeech.decoding.decoders import DecoderConfig
from deepspeech.errors import ConfigError
from deepspeech.export.config import ExportConfig
from deepspeech.training.checkpoint import read_run_info

NAME = "tiny-bundle"
ALPHA, BETA = 0.5, 1.5
DATASET = ("train-manifest", "0123abcd")  # a dataset input logged on the training run
SERVE_START_SECONDS = 180


@pytest.fixture(scope="module")
def store(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A copy of the training run's MLflow store, its run carrying one dataset input."""
    from mlflow import MlflowClient
    from mlflow.entities import Dataset, DatasetInput, InputTag

    info = read_run_info(tiny_checkpoint)
    folder = tmp_path_factory.mktemp("bundle-store")
    shutil.copy(info.tracking_uri.removeprefix("sqlite:///"), folder / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    dataset = Dataset(DATASET[0], DATASET[1], "local", json.dumps({"uri": "train.csv"}))
    tag = InputTag("mlflow.data.context", "training")
    MlflowClient(uri).log_inputs(info.mlflow_run_id, datasets=[DatasetInput(dataset, [tag])])
    return uri


@pytest.fixture(scope="module")
def lm(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trigram LM of the tiny corpus' training transcripts."""
    from deepspeech.decoding.lm import build_arpa

    folder = tmp_path_factory.mktemp("bundle-lm")
    text = folder / "train.txt"
    text.write_text("\n".join(u.transcript for u in read_manifest(tiny_corpus / "train.csv")))
    build_arpa(text, folder / "lm.arpa", 3)
    return folder / "lm.arpa"


@pytest.fixture(scope="module")
def exported(tiny_checkpoint: Path, store: str, lm: Path, tmp_path_factory) -> Path:
    """`deepspeech export --lm --alpha --beta --register NAME --alias production`: the file."""
    from deepspeech.cli.app import app

    output = tmp_path_factory.mktemp("bundle-export") / "model.onnx"
    args = ["export", "--checkpoint-dir", str(tiny_checkpoint), "--output", str(output)]
    args += ["--lm", str(lm), "--alpha", str(ALPHA), "--beta", str(BETA)]
    args += ["--register", NAME, "--alias", "production", "--tracking-uri", store]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"registered: models:/{NAME}/1 (models:/{NAME}@production)" in result.output
    assert f"beam 64 with lm.arpa, alpha {ALPHA:g}, beta {BETA:g}" in result.output
    return output


@pytest.fixture()
def tracking(store: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """MLflow pointed at the store, as `mlflow models serve` and the pyfunc loader read it."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    mlflow.set_tracking_uri(store)
    return store


def test_wavs(corpus: Path, count: int = 4) -> list[str]:
    return [str(u.wav_path) for u in read_manifest(corpus / "test.csv")[:count]]


test_wavs.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def transcribe_cli(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    """`deepspeech transcribe ARGS` in this process: the transcripts, in order."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["transcribe", *args])
    out = capsys.readouterr().out
    assert exit_.value.code == 0, out
    return [line.split("\t", 1)[1] for line in out.splitlines()]


def audio_frame(wavs: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"audio": [Path(w).read_bytes() for w in wavs]})


@pytest.mark.slow
def test_the_bundle_transcribes_as_transcribe_with_the_same_decoder(
    exported: Path, lm: Path, tiny_corpus: Path, tracking: str, capsys
) -> None:
    import mlflow.pyfunc

    wavs = test_wavs(tiny_corpus)
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@production")
    got = model.predict(audio_frame(wavs))
    assert list(got.columns) == ["text", "confidence", "duration_s", "words"]
    flags = ["--decoder", "beam", "--lm", str(lm), "--alpha", str(ALPHA), "--beta", str(BETA)]
    expected = transcribe_cli(capsys, "--model", str(exported), *flags, *wavs)
    assert list(got["text"]) == expected and any(expected)  # the LM's words: greedy says ""
    # The registered version with no decoder flags decodes the same: its packed LM and weights.
    packed = transcribe_cli(capsys, "--model", f"models:/{NAME}@production", *wavs)
    assert packed == expected
    for text, words, seconds in zip(got["text"], got["words"], got["duration_s"], strict=True):
        assert " ".join(w["word"] for w in words) == text
        assert all(0 <= w["start"] <= w["end"] <= seconds + 0.05 for w in words)


@pytest.mark.slow
def test_a_bundle_with_a_talkative_model_decodes_like_transcribe(
    random_onnx: Path, lm: Path, tiny_corpus: Path, tracking: str, capsys
) -> None:
    """Random weights emit many characters, so the LM really shapes the text compared."""
    import mlflow.pyfunc

    from deepspeech.registry.publish import publish_bundle
    from serving.inference import open_model

    decoder = DecoderConfig(decoder="beam", lm_path=lm, alpha=ALPHA, beta=BETA, beam_width=16)
    metadata = open_model(random_onnx).metadata
    registered = publish_bundle(random_onnx, metadata, decoder, name="random-bundle")
    wavs = test_wavs(tiny_corpus)
    got = mlflow.pyfunc.load_model(registered.uri).predict(audio_frame(wavs))
    flags = ["--decoder", "beam", "--lm", str(lm), "--alpha", str(ALPHA), "--beta", str(BETA)]
    expected = transcribe_cli(
        capsys, "--model", str(random_onnx), *flags, "--beam-width", "16", *wavs
    )
    assert list(got["text"]) == expected and any(expected)
    greedy = transcribe_cli(capsys, "--model", str(random_onnx), *wavs)
    assert greedy != expected  # the LM and the beam did change something


@pytest.mark.slow
def test_mlflow_models_serve_transcribes_base64_wav(
    exported: Path, tiny_corpus: Path, tracking: str, capsys
) -> None:
    import httpx

    wavs = test_wavs(tiny_corpus, count=2)
    expected = transcribe_cli(capsys, "--model", f"models:/{NAME}@production", *wavs)
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m"]
    command += [f"models:/{NAME}@production", "--env-manager", "local"]
    command += ["-p", str(port), "-h", "127.0.0.1"]
    server = subprocess.Popen(
        command,
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking, "PATH": venv_path()},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the teardown stops all of it
    )
    try:
        wait_for_ping(server, port)
        rows = [[base64.b64encode(Path(w).read_bytes()).decode("ascii")] for w in wavs]
        body = {"dataframe_split": {"columns": ["audio"], "data": rows}}
        response = httpx.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=60)
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert [p["text"] for p in predictions] == expected
        assert all(isinstance(p["words"], list) for p in predictions)
        records = {"dataframe_records": [{"audio": row[0]} for row in rows]}
        response = httpx.post(f"http://127.0.0.1:{port}/invocations", json=records, timeout=60)
        assert [p["text"] for p in response.json()["predictions"]] == expected
        bad = {"dataframe_split": {"columns": ["audio"], "data": [["bm90IGEgd2F2"]]}}
        refused = httpx.post(f"http://127.0.0.1:{port}/invocations", json=bad, timeout=60)
        assert refused.status_code == 400 and "row 0" in refused.text
    finally:
        stop(server)


def venv_path() -> str:
    """PATH with this interpreter's bin folder first: MLflow starts `uvicorn` from PATH."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_ping(server: subprocess.Popen, port: int) -> None:
    import httpx

    deadline = time.monotonic() + SERVE_START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"mlflow models serve exited: {server.stdout.read().decode()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"mlflow models serve did not answer /ping in {SERVE_START_SECONDS} s")


def stop(server: subprocess.Popen) -> None:
    """SIGTERM the server's process group, SIGKILL if it lingers."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=20)
    server.stdout.close()


@pytest.mark.slow
def test_the_version_carries_its_lineage(exported: Path, tiny_checkpoint: Path, store: str):
    from mlflow import MlflowClient

    info = read_run_info(tiny_checkpoint)
    version = MlflowClient(store).get_model_version(NAME, "1")
    assert version.run_id == info.mlflow_run_id  # logged into the training run
    tags = version.tags
    assert tags["training_run"] == info.mlflow_run_id
    test_wer = MlflowClient(store).get_run(info.mlflow_run_id).data.metrics["test_wer"]
    assert float(tags["test_wer"]) == pytest.approx(test_wer, abs=1e-4)
    assert tags[f"dataset.{DATASET[0]}"] == DATASET[1]
    assert (tags["decoder"], tags["lm"], tags["alpha"], tags["beta"]) == (
        "beam",
        "lm.arpa",
        f"{ALPHA:g}",
        f"{BETA:g}",
    )
    assert "test WER" in version.description and DATASET[1] in version.description
    assert f"{DATASET[0]} (training)" in version.description


@pytest.mark.slow
def test_a_second_export_moves_the_alias(exported: Path, store: str) -> None:
    from mlflow import MlflowClient

    from deepspeech.registry.publish import publish_bundle
    from serving.inference import open_model

    client = MlflowClient(store)
    assert str(client.get_model_version_by_alias(NAME, "production").version) == "1"
    metadata = dataclasses.replace(open_model(exported).metadata, model_version="2")
    registered = publish_bundle(
        exported, metadata, DecoderConfig(), name=NAME, alias="production", tracking_uri=store
    )
    assert (registered.uri, registered.alias_uri) == (
        f"models:/{NAME}/2",
        f"models:/{NAME}@production",
    )
    assert str(client.get_model_version_by_alias(NAME, "production").version) == "2"
    assert client.get_model_version(NAME, "1").aliases == []
    assert open_model(f"models:/{NAME}@production", tracking_uri=store).version == "2"
    client.set_registered_model_alias(NAME, "production", "1")  # as the other tests expect


@pytest.mark.slow
def test_serve_and_open_model_use_the_packed_decoder(
    exported: Path, lm: Path, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import serving.app
    from serving.inference import open_model

    recognizer = open_model(f"models:/{NAME}@production", tracking_uri=store)
    config = recognizer.decoder_config
    assert (config.decoder, config.alpha, config.beta) == ("beam", ALPHA, BETA)
    assert config.lm_path.read_bytes() == lm.read_bytes()
    assert recognizer.decoder.lm is not None and recognizer.decoder.alpha == ALPHA

    served: list = []
    monkeypatch.setattr(serving.app, "serve", served.append)

    def serve(*flags: str) -> DecoderConfig:
        with pytest.raises(SystemExit) as exit_:
            main(
                ["serve", "--model", f"models:/{NAME}@production", "--tracking-uri", store, *flags]
            )
        assert exit_.value.code == 0
        return served.pop().decoder

    packed = serve()
    assert (packed.decoder, packed.alpha, packed.beta) == ("beam", ALPHA, BETA)
    assert packed.lm_path.read_bytes() == lm.read_bytes()
    overridden = serve("--alpha", "0.9", "--beam-width", "8")
    assert (overridden.alpha, overridden.beta, overridden.beam_width) == (0.9, BETA, 8)
    assert overridden.lm_path == packed.lm_path
    greedy = serve("--decoder", "greedy")
    assert (greedy.decoder, greedy.lm_path) == ("greedy", None)


@pytest.mark.slow
def test_a_downloaded_bundle_folder_opens_like_its_version(exported: Path, store: str) -> None:
    import mlflow

    from serving.inference import open_model

    folder = mlflow.artifacts.download_artifacts(f"models:/{NAME}/1", tracking_uri=store)
    model = open_model(folder)
    assert model.decoder_config.decoder == "beam" and model.decoder_config.alpha == ALPHA


@pytest.mark.slow
def test_an_old_mlflow_onnx_version_still_opens(tiny_onnx: Path, store: str) -> None:
    import mlflow
    import mlflow.onnx
    import onnx

    from serving.inference import open_model, resolve_model_source

    mlflow.set_tracking_uri(store)
    mlflow.set_experiment("old-exports")
    with mlflow.start_run():
        mlflow.onnx.log_model(
            onnx.load(tiny_onnx), name="onnx-model", registered_model_name="old-style"
        )
    location = resolve_model_source("models:/old-style/1", store)
    assert location.decoder is None and location.path.suffix == ".onnx"
    model = open_model("models:/old-style/latest", tracking_uri=store)
    assert model.model_id == "old-style/1" and model.decoder_config == DecoderConfig()


@pytest.mark.slow
def test_decoder_from_packs_an_lm_tune_runs_weights(
    tiny_checkpoint: Path, lm: Path, store: str, tmp_path: Path
) -> None:
    import matplotlib.pyplot as plt

    from deepspeech.registry.decoder import bundle_decoder
    from deepspeech.training.tracking import log_tuning_run

    best = {"best_alpha": 0.25, "best_beta": 2.0, "best_wer": 0.5, "best_cer": 0.2}
    run_id = log_tuning_run(store, "lm-tune", {"lm": lm}, [], best, plt.figure())
    config = ExportConfig(
        tiny_checkpoint, tmp_path / "m.onnx", register=NAME, decoder_from=run_id, tracking_uri=store
    )
    decoder = bundle_decoder(config, {"lm": lm, "beam_width": 32})
    assert (decoder.decoder, decoder.alpha, decoder.beta) == ("beam", 0.25, 2.0)
    assert (decoder.lm_path, decoder.beam_width) == (lm, 32)
    with pytest.raises(ConfigError, match="--decoder-from and --alpha both set"):
        bundle_decoder(config, {"lm": lm, "alpha": 1.0})


def test_dataset_digests_tolerate_a_run_without_inputs(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from deepspeech.registry.publish import dataset_digests

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.create_run(client.create_experiment("e"))
    assert dataset_digests(client, run.info.run_id) == {}
    assert dataset_digests(client, None) == {}


def one_line_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """`deepspeech ARGS` fails with exit code 2 and one line on stderr: that line."""
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err.strip()


def test_decoder_options_without_what_they_need_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    lm = tmp_path / "lm.arpa"
    lm.write_text("\\data\\\n")
    base = ["export", "--checkpoint-dir", str(tmp_path), "--output", str(tmp_path / "m.onnx")]
    assert "add --lm LM.arpa" in one_line_error(capsys, *base, "--alpha", "0.5")
    assert "add --register NAME" in one_line_error(capsys, *base, "--alias", "production")
    reserved = one_line_error(capsys, *base, "--register", "x", "--alias", "latest")
    assert "--alias 'latest': use letters" in reserved
    assert "add --register NAME" in one_line_error(capsys, *base, "--lm", str(lm))
    missing = one_line_error(capsys, *base, "--register", "x", "--lm", str(tmp_path / "no.arpa"))
    assert "no.arpa: no such file" in missing

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("not-tuning")).info.run_id
    tuned = [*base, "--register", "x", "--lm", str(lm), "--tracking-uri", uri]
    error = one_line_error(capsys, *tuned, "--decoder-from", run_id)
    assert f"--decoder-from {run_id}: the run has no best_alpha or best_beta metric" in error
    assert "no such MLflow run" in one_line_error(capsys, *tuned, "--decoder-from", "f" * 32)


def test_the_packed_decoder_is_every_setting_and_reads_back(tmp_path: Path) -> None:
    from serving.inference import (
        ModelLocation,
        decoder_for,
        packed_decoder_json,
        read_packed_decoder,
    )

    decoder = DecoderConfig(decoder="beam", alpha=0.3, beta=2.5, hot_words=("cat:4",))
    path = tmp_path / "decoder.json"
    path.write_text(packed_decoder_json(decoder))
    lm = tmp_path / "lm.arpa"
    location = ModelLocation(tmp_path / "m.onnx", None, None, read_packed_decoder(path, lm))
    assert decoder_for(location) == dataclasses.replace(decoder, lm_path=lm)
    assert decoder_for(location, {"beta": 0.0, "alpha": None}).beta == 0.0
    assert decoder_for(location, {"decoder": "greedy"}) == DecoderConfig(alpha=0.3, beta=2.5)
    bare = ModelLocation(tmp_path / "m.onnx", None, None)
    assert decoder_for(bare) == DecoderConfig()


def test_the_bundle_rejects_rows_that_are_not_wav(random_onnx: Path, tmp_path: Path) -> None:
    from mlflow.exceptions import MlflowException

    from serving.bundle import SpeechToText, input_example, signature
    from serving.inference import BUNDLE_DECODER, BUNDLE_ONNX, packed_decoder_json

    decoder_json = tmp_path / "decoder.json"
    decoder_json.write_text(packed_decoder_json(DecoderConfig()))
    model = SpeechToText()
    artifacts = {BUNDLE_ONNX: str(random_onnx), BUNDLE_DECODER: str(decoder_json)}
    model.load_context(type("Context", (), {"artifacts": artifacts})())
    example = model.predict(None, input_example())
    assert list(example.columns) == [*signature().outputs.input_names()]
    assert example["duration_s"].tolist() == [0.5]
    with pytest.raises(MlflowException, match="row 1"):
        model.predict(None, pd.DataFrame({"audio": [input_example()["audio"][0], b"RIFF nope"]}))
    with pytest.raises(MlflowException, match="column 'audio'"):
        model.predict(None, pd.DataFrame({"wav": [b""]}))
