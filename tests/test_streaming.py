"""The unidirectional model and its streaming graph (deepspeech/runtime/streaming.py): trained and
exported like the BiRNN, and chunk-by-chunk logits equal to whole-utterance logits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from typer.testing import CliRunner

from deepspeech.audio import N_CEPSTRUM, N_CONTEXT, FeatureConfig, audio_to_features, load_wav
from deepspeech.cli.app import app
from deepspeech.errors import ConfigError, ExportError, ModelLoadError
from deepspeech.export.config import ExportConfig
from deepspeech.export.parity import STREAM_PARITY_TOLERANCE
from deepspeech.export.pipeline import export_model
from deepspeech.runtime.graph import STREAM_GRAPH, UTTERANCE_GRAPH, ModelMetadata
from deepspeech.runtime.offline import OfflineModel
from deepspeech.runtime.streaming import AcousticStream, StreamingModel, stream_scores
from deepspeech.text import Alphabet
from deepspeech.training.config import TrainConfig

# 1 frame up to 1 s (50 frames at stride 2), with sizes below, at and above 2*numcontext.
CHUNK_FRAMES = (1, 2, 5, 9, 18, 19, 23, 50)


def whole_utterance_logits(model, features: np.ndarray) -> np.ndarray:
    return model(tf.constant(features[None]), tf.constant([len(features)]), training=False)[0]


def test_rnn_option_is_checked() -> None:
    assert TrainConfig(rnn="unidirectional").model(29).rnn == "unidirectional"
    with pytest.raises(ConfigError, match="rnn 'forward' must be one of bidirectional"):
        TrainConfig(rnn="forward")


def test_unidirectional_sees_numcontext_frames_ahead_and_no_more(random_unidirectional) -> None:
    """Frame t depends on frames up to t+numcontext: what lets the model stream with that lag."""
    rng = np.random.default_rng(0)
    features = rng.normal(0, 5, (40, N_CEPSTRUM)).astype(np.float32)
    changed = features.copy()
    changed[30:] += 3.0
    before = whole_utterance_logits(random_unidirectional, features).numpy()
    after = whole_utterance_logits(random_unidirectional, changed).numpy()
    unaffected = 30 - N_CONTEXT
    np.testing.assert_array_equal(before[:unaffected], after[:unaffected])
    assert np.abs(before[unaffected] - after[unaffected]).max() > 1e-3


@pytest.mark.parametrize("n_frames", [1, 5, 9, 10, 18, 19, 123])
def test_streamed_logits_equal_whole_utterance_logits(
    random_unidirectional, random_stream_onnx, n_frames: int
) -> None:
    """Chunks of 1 frame to 1 s, utterances shorter and longer than the context window."""
    model = StreamingModel.load(random_stream_onnx[1])
    rng = np.random.default_rng(n_frames)
    features = rng.normal(0, 5, (n_frames, N_CEPSTRUM)).astype(np.float32)
    expected = whole_utterance_logits(random_unidirectional, features).numpy()
    for chunk in CHUNK_FRAMES:
        streamed = stream_scores(model, features, chunk)
        assert streamed.logits.shape == expected.shape, chunk
        assert np.abs(streamed.logits - expected).max() <= STREAM_PARITY_TOLERANCE, chunk


def test_stream_lags_numcontext_frames_and_keeps_constant_state(random_stream_onnx) -> None:
    model = StreamingModel.load(random_stream_onnx[1])
    stream = AcousticStream(model)
    frames = np.random.default_rng(1).normal(0, 5, (300, N_CEPSTRUM)).astype(np.float32)
    for i in range(0, 300, 10):
        stream.accept(frames[i : i + 10])
        assert stream.frames_out == stream.frames_in - N_CONTEXT
        assert stream.state.context.shape == (2 * N_CONTEXT, N_CEPSTRUM)
    assert stream.flush().n_frames == N_CONTEXT
    with pytest.raises(RuntimeError, match="finished"):
        stream.accept(frames[:1])


def test_streams_batched_in_one_run_get_their_own_scores(random_stream_onnx) -> None:
    """Rows of one run never mix: each stream's scores equal its scores run alone, with
    streams starting at different times (context lengths differ, so runs split by shape)."""
    model = StreamingModel.load(random_stream_onnx[1])
    rng = np.random.default_rng(2)
    utterances = [rng.normal(0, 5, (60, N_CEPSTRUM)).astype(np.float32) for _ in range(5)]
    starts = (0, 0, 0, 20, 33)
    streams = [AcousticStream(model) for _ in utterances]
    scores: list[list[np.ndarray]] = [[] for _ in utterances]
    for t in range(61):
        calls = [
            (i, stream.take(utterances[i][t : t + 1]) if t < 60 else stream.take_flush())
            for i, stream in enumerate(streams)
            if t >= starts[i]
        ]
        ready = [(i, call) for i, call in calls if call is not None]
        for (i, _), result in zip(ready, model.run([c for _, c in ready]), strict=True):
            scores[i].append(streams[i].apply(result).logits)
    for i, start in enumerate(starts):
        alone = stream_scores(model, utterances[i][start:], 1)
        np.testing.assert_allclose(np.concatenate(scores[i]), alone.logits, atol=1e-5)


@pytest.fixture(scope="module")
def unidirectional_checkpoint(
    tiny_corpus: Path, feature_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """`deepspeech train --rnn unidirectional` (tiny sizes) through the CLI."""
    tmp = tmp_path_factory.mktemp("unidirectional")
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--config",
            "experiments/tiny.yaml",
            "--rnn",
            "unidirectional",
            "--running-mean-frames",
            "10",
            "--running-variance",
            "--epochs",
            "1",
            "--train-files",
            str(tiny_corpus / "train.csv"),
            "--test-files",
            str(tiny_corpus / "test.csv"),
            "--checkpoint-dir",
            str(tmp / "ckpt"),
            "--feature-cache",
            str(feature_cache),
            "--tracking-uri",
            f"sqlite:///{tmp / 'mlflow.db'}",
        ],
    )
    assert result.exit_code == 0, result.output
    return tmp / "ckpt"


@pytest.mark.slow
def test_train_unidirectional_tracks_and_exports_both_graphs(
    unidirectional_checkpoint: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    run_info = json.loads((unidirectional_checkpoint / "run.json").read_text())
    assert run_info["model"]["rnn"] == "unidirectional"
    assert (run_info["model"]["running_mean_frames"], run_info["model"]["running_variance"]) == (
        10,
        True,
    )
    client = MlflowClient(f"sqlite:///{unidirectional_checkpoint.parent / 'mlflow.db'}")
    run = client.get_run(run_info["mlflow_run_id"])
    assert run.data.params["rnn"] == "unidirectional" and "test_wer" in run.data.metrics

    whole = export_model(ExportConfig(unidirectional_checkpoint, tmp_path / "model.onnx"))
    assert whole.lstm_layout == "1 forward LSTM" and whole.metadata.rnn == "unidirectional"
    result = CliRunner().invoke(
        app,
        [
            "export",
            "--checkpoint-dir",
            str(unidirectional_checkpoint),
            "--output",
            str(tmp_path / "stream.onnx"),
            "--streaming",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "limit 0.0001" in result.output
    streaming = StreamingModel.load(tmp_path / "stream.onnx")
    props = streaming.session.get_modelmeta().custom_metadata_map
    assert (props["graph"], props["rnn"]) == ("stream", "unidirectional")

    # The streamed scores of the trained model equal the whole-utterance graph's.
    whole = OfflineModel.load(tmp_path / "model.onnx")
    wav = sorted((tiny_corpus).rglob("*.wav"))[0]
    features = audio_to_features(load_wav(wav), N_CEPSTRUM, stride=2)
    (expected,) = whole.probabilities([features])
    streamed = stream_scores(streaming, features, 7)
    assert np.abs(streamed.probabilities - expected).max() <= 1e-5


@pytest.mark.slow  # trains tiny_checkpoint
def test_streaming_export_refuses_a_bidirectional_model(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    with pytest.raises(ExportError, match="cannot stream; train with --rnn unidirectional"):
        export_model(ExportConfig(tiny_checkpoint, tmp_path / "stream.onnx", streaming=True))
    assert not (tmp_path / "stream.onnx").exists()


def test_older_streaming_graphs_are_refused_and_older_utterance_graphs_read() -> None:
    """Format 2's streaming graph lacks the running mean's inputs: re-export, said plainly."""
    props = ModelMetadata(Alphabet.default(), FeatureConfig(stride=2), n_hidden=32).to_props()
    older = {**props, "format": "2"}
    assert ModelMetadata.from_props(older, "old.onnx").graph == UTTERANCE_GRAPH
    with pytest.raises(ModelLoadError, match="stream graph exported in metadata format '2'"):
        ModelMetadata.from_props({**older, "graph": STREAM_GRAPH}, "old-stream.onnx")
    with pytest.raises(ModelLoadError, match=r"format '1'.*re-export it"):
        ModelMetadata.from_props({**props, "format": "1"}, "older.onnx")
