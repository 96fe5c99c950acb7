"""int8 export: onnxruntime dynamic quantization makes DynamicQuantizeLSTM, the WER check
refuses a model that got worse, and the int8 file is exported, served and registered like any."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from deepspeech.audio import audio_to_features, load_wav
from deepspeech.data.manifest import read_manifest
from deepspeech.decoding.decoders import DecoderConfig
from deepspeech.errors import ExportError
from deepspeech.export.config import ExportConfig
from deepspeech.export.pipeline import export_model
from deepspeech.export.quantize import (
    QUANTIZED_LSTM,
    check_quantized_wer,
    greedy_transcripts,
    lstm_weights_are_initializers,
    quantize_int8,
)
from deepspeech.registry.publish import publish_bundle
from deepspeech.text import Alphabet

pytestmark = pytest.mark.slow


def ops(proto: onnx.ModelProto) -> set[str]:
    return {node.op_type for node in proto.graph.node}


def parity_set(corpus: Path, count: int = 6) -> tuple[list[np.ndarray], list[str]]:
    utterances = read_manifest(corpus / "test.csv")[:count]
    features = [audio_to_features(load_wav(u.wav_path), stride=2) for u in utterances]
    return features, [u.transcript for u in utterances]


def test_int8_lstm_is_dynamic_quantize_lstm_and_keeps_metadata(random_onnx: Path) -> None:
    proto = onnx.load(random_onnx)
    quantized = quantize_int8(proto)
    assert QUANTIZED_LSTM in ops(quantized) and "LSTM" not in ops(quantized), ops(quantized)
    assert "MatMulInteger" in ops(quantized)
    weights = [sum(i.ByteSize() for i in p.graph.initializer) for p in (quantized, proto)]
    assert weights[0] < 0.5 * weights[1], weights  # the graph itself does not shrink
    props = {p.key: p.value for p in quantized.metadata_props}
    assert props == {p.key: p.value for p in proto.metadata_props}


def test_lstm_weights_computed_in_the_graph_are_folded_first(random_onnx: Path) -> None:
    """W behind an Identity node is not an initializer: onnxruntime would leave the LSTM in
    float; quantize_int8 folds it and still makes DynamicQuantizeLSTM."""
    proto = onnx.load(random_onnx)
    (lstm,) = [n for n in proto.graph.node if n.op_type == "LSTM"]
    (weights,) = [i for i in proto.graph.initializer if i.name == lstm.input[1]]
    weights.name = f"{lstm.input[1]}_source"
    proto.graph.node.insert(
        0, onnx.helper.make_node("Identity", [weights.name], [lstm.input[1]], name="copy_w")
    )
    assert not lstm_weights_are_initializers(proto)
    quantized = quantize_int8(proto)
    assert QUANTIZED_LSTM in ops(quantized) and "LSTM" not in ops(quantized), ops(quantized)


def test_the_wer_check_refuses_a_model_that_got_worse(random_onnx: Path, tiny_corpus) -> None:
    alphabet = Alphabet.default()
    features, _ = parity_set(tiny_corpus)
    fp32 = random_onnx.read_bytes()
    references = greedy_transcripts(fp32, features, alphabet)  # fp32 WER 0 by construction
    # Random weights are fragile under quantization (near-tied argmaxes), so the model that
    # passes is the fp32 one itself; a trained one passes in the export test below.
    check = check_quantized_wer(fp32, fp32, features, references, alphabet, "test.csv")
    assert (check.fp32_wer, check.int8_wer, check.utterances) == (0.0, 0.0, len(features))

    broken = onnx.load(random_onnx)
    (lstm,) = [n for n in broken.graph.node if n.op_type == "LSTM"]
    (weights,) = [i for i in broken.graph.initializer if i.name == lstm.input[2]]
    recurrent = onnx.numpy_helper.to_array(weights)
    weights.CopyFrom(onnx.numpy_helper.from_array(-3 * recurrent, weights.name))
    with pytest.raises(ExportError, match=r"int8 WER .* points above fp32 \(0\.00%\)"):
        check_quantized_wer(
            fp32, broken.SerializeToString(), features, references, alphabet, "test.csv"
        )


def test_export_quantize_int8_serves_and_registers(
    tiny_checkpoint: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    import shutil

    from deepspeech.training.checkpoint import read_run_info
    from serving.inference import open_model

    info = read_run_info(tiny_checkpoint)
    store = tmp_path / "mlflow.db"
    shutil.copy(info.tracking_uri.removeprefix("sqlite:///"), store)
    uri = f"sqlite:///{store}"
    output = tmp_path / "int8.onnx"
    result = export_model(
        ExportConfig(
            tiny_checkpoint, output, quantize="int8", register="tiny-int8", tracking_uri=uri
        )
    )
    check = result.quantization_check
    assert check is not None and check.utterances == result.parity_utterances
    assert check.increase <= 0.5 and 0 <= check.fp32_wer <= 100
    proto = onnx.load(output)
    assert QUANTIZED_LSTM in ops(proto)
    assert {p.key: p.value for p in proto.metadata_props}["quantization"] == "int8"

    model = open_model(output)
    assert model.metadata.quantization == "int8" and model.describe()["quantization"] == "int8"
    published = publish_bundle(
        output, result.metadata, DecoderConfig(), name="tiny-int8", tracking_uri=uri
    )
    registered = open_model(published.uri, tracking_uri=uri)
    assert registered.model_id == "tiny-int8/1" and registered.metadata.quantization == "int8"
    features, _ = parity_set(tiny_corpus, count=3)
    assert registered.transcribe_features(features) == model.transcribe_features(features)

    wav = read_manifest(tiny_corpus / "test.csv")[0].wav_path
    cli = subprocess.run(
        [sys.executable, "-m", "deepspeech", "transcribe", "--model", str(output), str(wav)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0 and cli.stdout.startswith(f"{wav}\t"), cli.stderr


def test_fp32_export_says_fp32(tiny_export) -> None:
    props = {p.key: p.value for p in onnx.load(tiny_export.output).metadata_props}
    assert props["quantization"] == "fp32" and tiny_export.quantization_check is None


def test_cli_unknown_quantization_is_one_line_exit_2(tiny_checkpoint: Path, tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "deepspeech", "export", "--checkpoint-dir", str(tiny_checkpoint),
         "--output", str(tmp_path / "m.onnx"), "--quantize", "int4"],
        capture_output=True,
        text=True,
        timeout=180,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "--quantize 'int4' is not supported; choose fp32, int8" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "m.onnx").exists()
