"""fp32 ONNX model -> int8 (onnxruntime dynamic quantization), checked by WER, not by |diff|.

Dynamic quantization stores weights as int8 and quantizes activations at run time, per call:
the dense layers become `MatMulInteger`, the LSTM becomes `com.microsoft.DynamicQuantizeLSTM`
(per-channel int8 W and R, integer dot products on CPUs with VNNI). onnxruntime only makes that
LSTM when its W and R are 3-D initializers; tf2onnx writes them so, and a graph that computes
them (an `Identity`, a `Transpose` of a constant) is constant-folded first. A quantized model
whose graph still holds a float `LSTM` is refused: it would be barely faster and not int8.

Probabilities move by a few hundredths after quantization, so max |diff| says nothing about
whether the model still works; what matters is the transcripts. `check_quantized_wer` decodes
the parity utterances greedily with both models and compares corpus WER against the reference
transcripts: the export fails if int8 is more than MAX_WER_INCREASE points worse.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic

from deepspeech.decoding.decoders import greedy_decode
from deepspeech.errors import ExportError
from deepspeech.metrics import word_error_percent
from deepspeech.runtime.offline import OfflineModel
from deepspeech.runtime.session import optimize_to_file
from deepspeech.text import Alphabet

logger = logging.getLogger(__name__)

MAX_WER_INCREASE = 0.5  # percentage points of WER int8 may lose on the parity utterances
QUANTIZED_LSTM = "DynamicQuantizeLSTM"  # onnxruntime's contrib op (domain com.microsoft)


@dataclass(frozen=True)
class QuantizationCheck:
    """fp32 and int8 corpus WER (in %) on the parity utterances, greedy decoding."""

    fp32_wer: float
    int8_wer: float
    utterances: int

    @property
    def increase(self) -> float:
        return self.int8_wer - self.fp32_wer


def lstm_weights_are_initializers(proto: onnx.ModelProto) -> bool:
    """Every LSTM's W and R are 3-D initializers: the form onnxruntime quantizes."""
    initializers = {i.name: i for i in proto.graph.initializer}
    return all(
        name in initializers and len(initializers[name].dims) == 3
        for node in proto.graph.node
        if node.op_type == "LSTM"
        for name in node.input[1:3]
    )


def fold_constants(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The graph with constant subgraphs folded into initializers (onnxruntime's basic
    optimizations, which are all provider-independent)."""
    with tempfile.TemporaryDirectory(prefix="deepspeech-fold-") as tmp:
        folded = Path(tmp) / "folded.onnx"
        optimize_to_file(proto.SerializeToString(), folded)
        result = onnx.load(folded)
    del result.metadata_props[:]
    result.metadata_props.extend(proto.metadata_props)
    return result


def quantize_int8(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Dynamic int8 quantization of every LSTM and MatMul (per-channel weights, signed int8).

    Metadata, producer and doc string are carried over; the caller updates `quantization`.
    Raises ExportError if an LSTM could not be turned into DynamicQuantizeLSTM.
    """
    if not lstm_weights_are_initializers(proto):
        logger.info("LSTM weights are computed in the graph; folding them into initializers")
        proto = fold_constants(proto)
        if not lstm_weights_are_initializers(proto):
            raise ExportError(
                "the LSTM weights are not constant 3-D initializers even after constant "
                "folding, so onnxruntime cannot quantize the LSTM; export without --quantize"
            )
    with tempfile.TemporaryDirectory(prefix="deepspeech-int8-") as tmp:
        fp32_path, int8_path = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(proto, fp32_path)
        quantize_dynamic(
            fp32_path,
            int8_path,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["LSTM", "MatMul"],
        )
        quantized = onnx.load(int8_path)
    ops = {node.op_type for node in quantized.graph.node}
    if "LSTM" in ops or QUANTIZED_LSTM not in ops:
        raise ExportError(
            f"onnxruntime left the LSTM in float (ops: {', '.join(sorted(ops))}); "
            "export without --quantize"
        )
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(proto.metadata_props)
    quantized.producer_name, quantized.producer_version = (
        proto.producer_name,
        proto.producer_version,
    )
    quantized.doc_string, quantized.model_version = proto.doc_string, proto.model_version
    return quantized


def set_quantization(proto: onnx.ModelProto, quantization: str) -> None:
    """Write the `quantization` metadata entry (fp32 or int8), in place."""
    for entry in proto.metadata_props:
        if entry.key == "quantization":
            entry.value = quantization
            return
    entry = proto.metadata_props.add()
    entry.key, entry.value = "quantization", quantization


def greedy_transcripts(
    model_bytes: bytes, features: Sequence[np.ndarray], alphabet: Alphabet
) -> list[str]:
    """Greedy transcripts of utterances [(T, numcep)], each run alone through the runtime."""
    model = OfflineModel.load(model_bytes, label="the exported model")
    return [greedy_decode(model.probabilities([f])[0], alphabet) for f in features]


def check_quantized_wer(
    fp32_bytes: bytes,
    int8_bytes: bytes,
    features: Sequence[np.ndarray],
    references: Sequence[str],
    alphabet: Alphabet,
    source: str,
) -> QuantizationCheck:
    """WER of both models on the parity utterances; ExportError if int8 loses more than
    MAX_WER_INCREASE points."""
    check = QuantizationCheck(
        fp32_wer=word_error_percent(references, greedy_transcripts(fp32_bytes, features, alphabet)),
        int8_wer=word_error_percent(references, greedy_transcripts(int8_bytes, features, alphabet)),
        utterances=len(features),
    )
    logger.info(
        "int8 check: WER %.2f%% (fp32 %.2f%%) on %d utterances of %s",
        check.int8_wer,
        check.fp32_wer,
        check.utterances,
        source,
    )
    if check.increase > MAX_WER_INCREASE:
        raise ExportError(
            f"int8 WER {check.int8_wer:.2f}% is {check.increase:.2f} points above fp32 "
            f"({check.fp32_wer:.2f}%) on {check.utterances} utterances of {source} (limit "
            f"{MAX_WER_INCREASE:g}); quantization hurts this model, export it without --quantize"
        )
    return check
