"""Export to ONNX: parity with Keras, padding invariance in both LSTM layouts tf2onnx emits,
self-describing metadata, failure modes, and the MLflow registry round trip (the bundle
itself: tests/test_bundle.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from deepspeech.audio import audio_to_features, load_wav
from deepspeech.data.manifest import read_manifest
from deepspeech.errors import ExportError, ManifestError
from deepspeech.export.config import ExportConfig
from deepspeech.export.convert import use_sequence_lengths
from deepspeech.export.pipeline import export_model
from deepspeech.runtime.graph import (
    FEATURES_INPUT,
    LENGTHS_INPUT,
    OPSET,
    PROBABILITIES_OUTPUT,
    ModelMetadata,
    pad_features,
)
from deepspeech.training.checkpoint import read_run_info

pytestmark = pytest.mark.slow

PADDING_TOLERANCE = 1e-4


def corpus_features(corpus: Path, stride: int = 2, count: int = 6) -> list[np.ndarray]:
    """Features of real test utterances, of different lengths."""
    utterances = read_manifest(corpus / "test.csv")[:count]
    return [audio_to_features(load_wav(u.wav_path), stride=stride) for u in utterances]


def run_onnx(path_or_bytes, features: list[np.ndarray]) -> list[np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(path_or_bytes, providers=["CPUExecutionProvider"])
    batch, lengths = pad_features(features)
    (probs,) = session.run(None, {FEATURES_INPUT: batch, LENGTHS_INPUT: lengths})
    return [p[:n] for p, n in zip(probs, lengths, strict=True)]


def assert_padding_invariant(model: Path | bytes, features: list[np.ndarray]) -> None:
    """Each utterance alone and inside the padded batch: same probabilities and same text."""
    from deepspeech.decoding.decoders import greedy_decode
    from deepspeech.text import Alphabet

    alphabet = Alphabet.default()
    batched = run_onnx(model, features)
    assert len({f.shape[0] for f in features}) > 1, "test needs utterances of different lengths"
    for f, in_batch in zip(features, batched, strict=True):
        (alone,) = run_onnx(model, [f])
        np.testing.assert_allclose(in_batch, alone, atol=PADDING_TOLERANCE, rtol=0)
        assert greedy_decode(in_batch, alphabet) == greedy_decode(alone, alphabet)


def test_export_matches_keras_and_describes_itself(tiny_export, tiny_checkpoint: Path) -> None:
    from mlflow import MlflowClient

    result = tiny_export
    assert result.parity_max_diff < 1e-5, result.parity_max_diff
    assert result.parity_utterances >= 2 and result.parity_source.endswith("test.csv")
    assert result.lstm_layout == "1 bidirectional LSTM"

    proto = onnx.load(result.output)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= OPSET
    ops = {node.op_type for node in proto.graph.node}
    assert "LSTM" in ops and not ops & {"Loop", "Scan"}, ops  # the fused op, not loops
    assert [n.input[4] for n in proto.graph.node if n.op_type == "LSTM"] == [LENGTHS_INPUT]
    shapes = {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*proto.graph.input, *proto.graph.output]
    }
    assert shapes == {
        FEATURES_INPUT: ["batch", "time", 26],  # MFCC: context windows are in the graph
        LENGTHS_INPUT: ["batch"],
        PROBABILITIES_OUTPUT: ["batch", "time", 29],
    }

    props = {p.key: p.value for p in proto.metadata_props}
    info = read_run_info(tiny_checkpoint)
    run = MlflowClient(info.tracking_uri).get_run(info.mlflow_run_id)
    assert json.loads(props["alphabet"]) == list(info.alphabet.labels)
    assert props["sample_rate"] == "16000"
    assert (props["numcep"], props["numcontext"], props["stride"]) == ("26", "9", "2")
    assert props["n_hidden"] == "32" and props["opset"] == str(OPSET)
    assert props["mlflow_run_id"] == info.mlflow_run_id
    assert props["git_commit"] == run.data.params["git_commit"]
    assert float(props["test_wer"]) == pytest.approx(run.data.metrics["test_wer"])
    assert props["model_name"] == "deepspeech"
    assert props["model_version"] == f"local-{info.mlflow_run_id[:8]}"
    metadata = ModelMetadata.from_props(props, "model.onnx")
    assert metadata.features == info.features and metadata.alphabet == info.alphabet


def test_padding_does_not_change_answers(tiny_onnx: Path, random_onnx: Path, tiny_corpus) -> None:
    features = corpus_features(tiny_corpus)
    assert_padding_invariant(tiny_onnx, features)
    assert_padding_invariant(random_onnx, features)  # non-blank transcripts too


def test_without_sequence_lengths_padding_changes_answers(random_onnx: Path, tiny_corpus) -> None:
    """The reason for the graph surgery: a plain BiLSTM's backward pass reads the padding."""
    proto = onnx.load(random_onnx)
    for node in proto.graph.node:
        if node.op_type == "LSTM":
            node.input[4] = ""
    features = corpus_features(tiny_corpus)
    batched = run_onnx(proto.SerializeToString(), features)
    alone = [run_onnx(proto.SerializeToString(), [f])[0] for f in features]
    worst = max(float(np.abs(a - b).max()) for a, b in zip(batched, alone, strict=True))
    assert worst > 10 * PADDING_TOLERANCE, worst


def test_reverse_sequence_layout_is_made_length_aware(tiny_corpus) -> None:
    """When tf2onnx does not merge directions it emits ReverseSequence + a forward LSTM: the
    surgery must make that layout padding-invariant too, matching TensorFlow on each
    utterance alone."""
    import keras
    import tensorflow as tf
    import tf2onnx

    keras.utils.set_random_seed(1)
    n_hidden, n_input = 8, 26
    backward = keras.layers.LSTM(n_hidden, return_sequences=True, go_backwards=True)

    @tf.function(
        input_signature=[
            tf.TensorSpec((None, None, n_input), tf.float32, name=FEATURES_INPUT),
            tf.TensorSpec((None,), tf.int32, name=LENGTHS_INPUT),
        ]
    )
    def backward_direction(features, lengths):
        # What Keras' Bidirectional does with its backward layer: run reversed, flip back.
        return {PROBABILITIES_OUTPUT: tf.reverse(backward(features), axis=[1])}

    proto, _ = tf2onnx.convert.from_function(
        backward_direction, input_signature=backward_direction.input_signature, opset=OPSET
    )
    layout = use_sequence_lengths(proto)
    assert "ReverseSequence" in layout and "forward LSTM" in layout, layout
    features = corpus_features(tiny_corpus, count=4)
    batched = run_onnx(proto.SerializeToString(), features)
    for f, got in zip(features, batched, strict=True):
        expected = backward_direction(f[None], np.array([len(f)], np.int32))
        np.testing.assert_allclose(
            got, expected[PROBABILITIES_OUTPUT].numpy()[0], atol=PADDING_TOLERANCE, rtol=0
        )


def test_export_fails_above_the_parity_limit(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import deepspeech.export.pipeline

    monkeypatch.setattr(deepspeech.export.pipeline, "PARITY_TOLERANCE", 0.0)
    with pytest.raises(ExportError, match="differs from the Keras model"):
        export_model(ExportConfig(tiny_checkpoint, tmp_path / "m.onnx"))
    assert not (tmp_path / "m.onnx").exists()


def test_export_needs_real_utterances(tiny_checkpoint: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    with pytest.raises(ManifestError, match=r"missing\.csv: manifest not found"):
        export_model(ExportConfig(tiny_checkpoint, tmp_path / "m.onnx", parity_files=str(missing)))


def test_cli_export_error_is_one_line_exit_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "deepspeech",
            "export",
            "--checkpoint-dir",
            str(tmp_path),
            "--output",
            str(tmp_path / "m.onnx"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 2, result.stderr
    assert "not a training checkpoint folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_registry_round_trip(tiny_checkpoint: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    """--register names the file as the next version; the registry step logs it into the
    training run and registers it; models:/NAME/VERSION then loads through MLflow, without
    TensorFlow, and answers like the file (tests/test_bundle.py: the bundle's decoder)."""
    from mlflow import MlflowClient

    from deepspeech.decoding.decoders import DecoderConfig
    from deepspeech.registry.publish import publish_bundle
    from serving.inference import open_model

    info = read_run_info(tiny_checkpoint)
    store = tmp_path / "mlflow.db"
    shutil.copy(info.tracking_uri.removeprefix("sqlite:///"), store)
    uri = f"sqlite:///{store}"
    result = export_model(
        ExportConfig(tiny_checkpoint, tmp_path / "m.onnx", register="tiny", tracking_uri=uri)
    )
    assert result.metadata.model_version == "1" and result.metadata.model_name == "tiny"
    registered = publish_bundle(
        result.output, result.metadata, DecoderConfig(), name="tiny", tracking_uri=uri
    )
    assert registered.uri == "models:/tiny/1"

    version = MlflowClient(uri).get_model_version("tiny", "1")
    assert version.run_id == info.mlflow_run_id  # logged into the training run

    model = open_model("models:/tiny/1", tracking_uri=uri)
    assert (model.name, model.version, model.model_id) == ("tiny", "1", "tiny/1")
    latest = open_model("models:/tiny/latest", tracking_uri=uri)
    assert latest.version == "1"
    features = corpus_features(tiny_corpus, count=3)
    from_file = run_onnx(str(result.output), features)
    for a, b in zip(model.model.probabilities(features), from_file, strict=True):
        np.testing.assert_array_equal(a, b)

    code = (
        "import sys\n"
        "from serving.inference import open_model\n"
        f"m = open_model('models:/tiny/1', tracking_uri={uri!r})\n"
        "assert m.model_id == 'tiny/1', m.model_id\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    check = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0, check.stderr
