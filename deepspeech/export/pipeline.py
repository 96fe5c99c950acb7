"""`export_model`: a training checkpoint -> a checked, self-describing ONNX file (the export stage).

checkpoint -> Keras model -> ONNX graph (`convert`) -> metadata (`deepspeech.runtime.graph`)
-> parity with Keras through the runtime (`parity`) -> int8 and its WER check (`quantize`,
optional) -> file. Nothing is written unless every check passed. With `register`, the file's
metadata names the registry version it will become (`register.next_registered_version`); the
registering itself is the next stage's (`deepspeech.registry`), which packs the file with its
decoder and LM.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from deepspeech.errors import ExportError
from deepspeech.export.config import FP32, ExportConfig
from deepspeech.export.convert import (
    convert_streaming_to_onnx,
    convert_to_onnx,
    save_model,
    write_metadata,
)
from deepspeech.export.parity import (
    PARITY_TOLERANCE,
    STREAM_PARITY_TOLERANCE,
    check_parity,
    check_streaming_parity,
    parity_utterances,
)
from deepspeech.export.quantize import QuantizationCheck, check_quantized_wer, quantize_int8
from deepspeech.export.register import next_registered_version, run_facts
from deepspeech.model.birnn import BiRNN
from deepspeech.runtime.graph import (
    DEFAULT_MODEL_NAME,
    STREAM_GRAPH,
    UTTERANCE_GRAPH,
    ModelMetadata,
)
from deepspeech.runtime.offline import OfflineModel
from deepspeech.runtime.streaming import StreamingModel
from deepspeech.training.checkpoint import RunInfo, restore_inference_model

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportResult:
    """What `export_model` made and measured, for the CLI to report."""

    output: Path
    metadata: ModelMetadata
    lstm_layout: str  # what tf2onnx emitted for the BiLSTM, e.g. "1 bidirectional LSTM"
    parity_max_diff: float  # max |Keras (masked) - onnxruntime| probability on real frames
    parity_source: str  # the manifest the parity utterances came from
    parity_utterances: int
    seconds: float
    quantization_check: QuantizationCheck | None = None  # fp32 vs int8 WER, with --quantize


def export_model(config: ExportConfig) -> ExportResult:
    """Export a checkpoint folder's model to ONNX and check it against Keras.

    The check runs the trained (masked) Keras model and the exported graph on real utterances
    (from `parity_files`, else the run's test, dev or train manifest), padded in one batch and
    each alone; the export fails with `ExportError` if any probability differs by more than
    PARITY_TOLERANCE. With `streaming`, the streaming graph of a unidirectional model is
    written instead, checked by feeding the utterances in chunks against the whole-utterance
    logits (limit STREAM_PARITY_TOLERANCE). With `register`, the metadata's name and version
    are the registry's next version of that name (`deepspeech.registry` then registers the
    file). `quantize="int8"`
    writes the int8 model, checked by WER on the same utterances against their transcripts.
    Raises before writing `output` on failure.
    """
    start = time.monotonic()
    model, info = restore_inference_model(config.checkpoint_dir)
    if config.streaming and info.model.rnn != "unidirectional":
        raise ExportError(
            f"{config.checkpoint_dir}: a {info.model.rnn} LSTM needs the whole utterance and "
            "cannot stream; train with --rnn unidirectional"
        )
    uri = config.tracking_uri or info.tracking_uri
    source, features, texts = parity_utterances(info, config.parity_files)
    metadata = _metadata(config, info, uri)
    logger.info("converting %s to ONNX (opset %d)", config.checkpoint_dir, config.opset)
    proto, layout, max_diff = _convert_and_check(model, metadata, features, source)
    quantization_check = None
    if config.quantize != FP32:
        fp32_bytes, proto = proto.SerializeToString(), quantize_int8(proto)
        quantization_check = check_quantized_wer(
            fp32_bytes, proto.SerializeToString(), features, texts, info.alphabet, source
        )
    save_model(proto, config.output)
    return ExportResult(
        output=config.output,
        metadata=metadata,
        lstm_layout=layout,
        parity_max_diff=max_diff,
        parity_source=source,
        parity_utterances=len(features),
        seconds=time.monotonic() - start,
        quantization_check=quantization_check,
    )


def _metadata(config: ExportConfig, info: RunInfo, tracking_uri: str | None) -> ModelMetadata:
    """What the exported file will say about itself; registering fixes its version first."""
    version = "local" if not info.mlflow_run_id else f"local-{info.mlflow_run_id[:8]}"
    if config.register:
        version = str(next_registered_version(config.register, tracking_uri))
    return ModelMetadata(
        alphabet=info.alphabet,
        features=info.features,
        n_hidden=info.model.n_hidden,
        opset=config.opset,
        model_name=config.register or config.model_name or DEFAULT_MODEL_NAME,
        model_version=version,
        mlflow_run_id=info.mlflow_run_id or "",
        rnn=info.model.rnn,
        graph=STREAM_GRAPH if config.streaming else UTTERANCE_GRAPH,
        **run_facts(info, tracking_uri),
        quantization=config.quantize,
    )


def _convert_and_check(
    model: BiRNN, metadata: ModelMetadata, features: list[np.ndarray], source: str
) -> tuple[onnx.ModelProto, str, float]:
    """(the graph with its metadata, its LSTM layout, max |Keras - runtime|); ExportError if
    the difference is over the graph's tolerance."""
    opset = metadata.opset
    if metadata.graph == STREAM_GRAPH:
        proto, layout = convert_streaming_to_onnx(model, opset)
        write_metadata(proto, metadata)
        streamed = StreamingModel.load(proto.SerializeToString(), label="the exported graph")
        max_diff, tolerance = (
            check_streaming_parity(model, streamed, features),
            STREAM_PARITY_TOLERANCE,
        )
    else:
        proto, layout = convert_to_onnx(model, opset)
        write_metadata(proto, metadata)
        exported = OfflineModel.load(proto.SerializeToString(), label="the exported graph")
        max_diff, tolerance = check_parity(model, exported, features), PARITY_TOLERANCE
    logger.info(
        "parity: max |Keras - onnxruntime| = %.2e on %d utterances", max_diff, len(features)
    )
    if not max_diff <= tolerance:
        raise ExportError(
            f"onnxruntime differs from the Keras model by {max_diff:.3g} (limit {tolerance:g}) "
            f"on {source}; the export is wrong, not written"
        )
    return proto, layout, max_diff
