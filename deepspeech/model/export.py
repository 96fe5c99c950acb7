"""Keras checkpoint -> self-describing ONNX model (tf2onnx), checked against Keras, registered.

The exported graph is an unmasked twin of the trained BiRNN that shares its weights: a masked
Keras BiLSTM converts to ONNX `Loop` ops and runs about 4x slower, an unmasked one to the fused
ONNX `LSTM` op. Padding must still not change answers, so after conversion the `lengths` graph
input is wired into every LSTM node's `sequence_lens` (and into any `ReverseSequence` tf2onnx
made for a backward direction): each utterance's backward pass then starts at its own last
real frame, exactly as the masked model does in training.

The metadata (`metadata_props`) makes the file self-describing: alphabet, sample rate, feature
settings, width, training run, commit, test WER, name and version. The server needs nothing
else. `ModelMetadata` is the one schema for writing and reading it; this module imports
TensorFlow, tf2onnx, onnx and MLflow inside functions only, so the server can import it.

`export_model(..., streaming=True)` writes the streaming graph of a unidirectional model
instead (`BiRNN.forward_chunk`: a chunk of MFCC frames plus the carried context, LSTM state
and running sums in, scores plus the new state out; see `deepspeech.model.streaming`), checked
chunk by chunk against the whole-utterance Keras model.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepspeech.audio import SAMPLE_RATE, audio_to_features, load_wav
from deepspeech.config import FeatureConfig
from deepspeech.errors import DeepSpeechError, ExportError, ModelLoadError
from deepspeech.text import Alphabet

if TYPE_CHECKING:
    import onnx

    from deepspeech.model.birnn import BiRNN
    from deepspeech.model.quantize import QuantizationCheck
    from deepspeech.training.checkpoint import RunInfo

logger = logging.getLogger(__name__)

OPSET = 17  # the lowest opset whose LSTM/ReverseSequence/Softmax semantics we rely on, tested
FEATURES_INPUT = "features"  # (batch, time, numcep) float32 MFCC frames
LENGTHS_INPUT = "lengths"  # (batch,) int32: real frames per utterance
PROBABILITIES_OUTPUT = "probabilities"  # (batch, time, n_classes) float32 softmax, blank last
PARITY_TOLERANCE = 1e-3  # max |Keras - onnxruntime| probability allowed on real frames
PARITY_UTTERANCES = (
    64  # real utterances checked: ~300 words, so one int8 word error is < 0.5 WER points
)
DEFAULT_MODEL_NAME = "deepspeech"
MLFLOW_ARTIFACT_NAME = "onnx-model"  # name of the logged model inside the training run
# Bump when the metadata or the graphs' inputs change meaning (2: MFCC input; 3: the streaming
# graph carries the running mean's and variance's sums and count).
METADATA_FORMAT = "3"
UTTERANCE_GRAPH = "utterance"  # metadata `graph`: whole utterances, features + lengths
STREAM_GRAPH = "stream"  # metadata `graph`: one chunk of a stream plus carried state
# Older formats still read, for the graphs whose inputs have not changed since: format 2's
# whole-utterance graph takes what format 3's takes; its streaming graph lacks the sum and count.
OLDER_FORMATS = {"2": (UTTERANCE_GRAPH,)}
STREAM_PARITY_TOLERANCE = 1e-4  # max |Keras whole utterance - streamed| logit allowed
STREAM_PARITY_CHUNKS = (1, 7, 50)  # frames per call the streaming export is checked with
EXTERNAL_DATA_BYTES = 1 << 30  # above this, MLflow stores weights beside the graph (2 GB limit)


@dataclass(frozen=True)
class ModelMetadata:
    """What an exported model says about itself, stored as ONNX `metadata_props` strings."""

    alphabet: Alphabet
    features: FeatureConfig
    n_hidden: int
    opset: int = OPSET
    sample_rate: int = SAMPLE_RATE
    model_name: str = DEFAULT_MODEL_NAME
    model_version: str = "local"
    mlflow_run_id: str = ""
    git_commit: str = ""
    test_wer: float | None = None
    rnn: str = "bidirectional"  # the LSTM the model was trained with
    graph: str = UTTERANCE_GRAPH  # UTTERANCE_GRAPH, or STREAM_GRAPH for chunk-by-chunk use
    quantization: str = "fp32"  # or "int8" (`export --quantize int8`)

    def to_props(self) -> dict[str, str]:
        """The `metadata_props` entries; the alphabet is a JSON list so a space survives."""
        props = {
            "format": METADATA_FORMAT,
            "alphabet": json.dumps(list(self.alphabet.labels)),
            "sample_rate": str(self.sample_rate),
            "numcep": str(self.features.numcep),
            "numcontext": str(self.features.numcontext),
            "stride": str(self.features.stride),
            "n_hidden": str(self.n_hidden),
            "opset": str(self.opset),
            "model_name": self.model_name,
            "model_version": self.model_version,
            "mlflow_run_id": self.mlflow_run_id,
            "git_commit": self.git_commit,
            "rnn": self.rnn,
            "graph": self.graph,
            "inputs": f"{FEATURES_INPUT} (batch, time, numcep) float32 MFCC, "
            f"{LENGTHS_INPUT} (batch,) int32",
            "outputs": f"{PROBABILITIES_OUTPUT} (batch, time, n_classes) softmax, blank last",
            "quantization": self.quantization,
        }
        if self.graph == STREAM_GRAPH:
            props["inputs"] += (
                ", context (batch, context, numcep) float32 normalised frames carried over, "
                "state_h and state_c (batch, n_hidden) float32, frame_sum and frame_squares "
                "(batch, numcep) and frame_count (batch,) float32 for the running statistics"
            )
            props["outputs"] += (
                ", logits, new_context, new_state_h, new_state_c, new_frame_sum, "
                "new_frame_squares, new_frame_count"
            )
        if self.test_wer is not None:
            props["test_wer"] = repr(self.test_wer)
        return props

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str) -> ModelMetadata:
        """Read the entries back; a model without them was not made by `deepspeech export`."""
        if "alphabet" not in props:
            raise ModelLoadError(
                f"{source}: no DeepSpeech metadata (alphabet, feature settings) in the model; "
                "export it with `deepspeech export`"
            )
        found, graph = props.get("format"), props.get("graph", UTTERANCE_GRAPH)
        if found != METADATA_FORMAT and graph not in OLDER_FORMATS.get(str(found), ()):
            raise ModelLoadError(
                f"{source}: a {graph} graph exported in metadata format {found!r} by an older "
                f"version, whose graph inputs differ from format {METADATA_FORMAT}'s; "
                "re-export it with `deepspeech export`"
            )
        try:
            test_wer = props.get("test_wer")
            return cls(
                alphabet=Alphabet(tuple(json.loads(props["alphabet"]))),
                features=FeatureConfig(
                    numcep=int(props["numcep"]),
                    numcontext=int(props["numcontext"]),
                    stride=int(props["stride"]),
                ),
                n_hidden=int(props["n_hidden"]),
                opset=int(props.get("opset", OPSET)),
                sample_rate=int(props["sample_rate"]),
                model_name=props.get("model_name", DEFAULT_MODEL_NAME),
                model_version=props.get("model_version", "local"),
                mlflow_run_id=props.get("mlflow_run_id", ""),
                git_commit=props.get("git_commit", ""),
                test_wer=float(test_wer) if test_wer else None,
                rnn=props.get("rnn", "bidirectional"),
                graph=props.get("graph", UTTERANCE_GRAPH),
                quantization=props.get("quantization", "fp32"),
            )
        except (KeyError, ValueError, TypeError, DeepSpeechError) as e:
            raise ModelLoadError(f"{source}: unreadable DeepSpeech metadata ({e!r})") from e

    @property
    def input_width(self) -> int:
        """MFCC per frame: the model normalises and builds context windows itself."""
        return self.features.numcep


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
    registered_uri: str | None = None  # models:/NAME/VERSION when registered
    quantization_check: QuantizationCheck | None = None  # fp32 vs int8 WER, with --quantize


def export_model(
    checkpoint_dir: Path,
    output: Path,
    *,
    register: str | None = None,
    parity_files: str | None = None,
    tracking_uri: str | None = None,
    model_name: str | None = None,
    opset: int = OPSET,
    streaming: bool = False,
    quantize: str | None = None,
) -> ExportResult:
    """Export a checkpoint folder's model to ONNX, check it against Keras, optionally register.

    The check runs the trained (masked) Keras model and onnxruntime on real utterances (from
    `parity_files`, else the run's test, dev or train manifest), padded in one batch and each
    alone; the export fails with `ExportError` if any probability differs by more than
    PARITY_TOLERANCE. With `streaming`, the streaming graph of a unidirectional model is
    written instead, checked by feeding the utterances in chunks of STREAM_PARITY_CHUNKS frames
    against the whole-utterance logits (limit STREAM_PARITY_TOLERANCE). `register` logs the
    model into the training run with `mlflow.onnx` and registers it as a new version of that
    name. `quantize="int8"` writes the int8 model (`deepspeech.model.quantize`), checked by
    WER on the same utterances against their transcripts. Raises before writing `output` on
    failure.
    """
    from deepspeech.model.quantize import check_quantization
    from deepspeech.training.checkpoint import restore_inference_model

    quantization = check_quantization(quantize)

    start = time.monotonic()
    output = Path(output)
    model, info = restore_inference_model(Path(checkpoint_dir))
    if streaming and info.model.rnn != "unidirectional":
        raise ExportError(
            f"{checkpoint_dir}: a {info.model.rnn} LSTM needs the whole utterance and cannot "
            "stream; train with --rnn unidirectional"
        )
    if streaming and register:
        raise ExportError(
            "--register takes the whole-utterance graph; export the streaming graph to a file"
        )
    if streaming and quantization != "fp32":
        raise ExportError("--quantize applies to the whole-utterance graph, not --streaming")
    uri = tracking_uri or info.tracking_uri
    parity_source, parity_features, parity_texts = _parity_features(info, parity_files)

    version = "local" if not info.mlflow_run_id else f"local-{info.mlflow_run_id[:8]}"
    if register:
        version = str(_next_registered_version(register, uri))
    metadata = ModelMetadata(
        alphabet=info.alphabet,
        features=info.features,
        n_hidden=info.model.n_hidden,
        opset=opset,
        model_name=register or model_name or DEFAULT_MODEL_NAME,
        model_version=version,
        mlflow_run_id=info.mlflow_run_id or "",
        rnn=info.model.rnn,
        graph=STREAM_GRAPH if streaming else UTTERANCE_GRAPH,
        **_run_facts(info, uri),
        quantization=quantization,
    )

    logger.info("converting %s to ONNX (opset %d)", checkpoint_dir, opset)
    if streaming:
        proto, layout = convert_streaming_to_onnx(model, opset)
        check, tolerance = check_streaming_parity, STREAM_PARITY_TOLERANCE
    else:
        proto, layout = convert_to_onnx(model, opset)
        check, tolerance = check_parity, PARITY_TOLERANCE
    write_metadata(proto, metadata)
    max_diff = check(model, proto.SerializeToString(), parity_features)
    logger.info(
        "parity: max |Keras - onnxruntime| = %.2e on %d utterances", max_diff, len(parity_features)
    )
    if not max_diff <= tolerance:
        raise ExportError(
            f"{checkpoint_dir}: onnxruntime differs from the Keras model by {max_diff:.3g} "
            f"(limit {tolerance:g}) on {parity_source}; the export is wrong, not written"
        )
    quantization_check = None
    if quantization != "fp32":
        from deepspeech.model.quantize import check_quantized_wer, quantize_int8

        fp32_bytes, proto = proto.SerializeToString(), quantize_int8(proto)
        quantization_check = check_quantized_wer(
            fp32_bytes,
            proto.SerializeToString(),
            parity_features,
            parity_texts,
            info.alphabet,
            parity_source,
        )
    _save(proto, output)
    registered_uri = None
    if register:
        registered_uri = register_model(proto, register, info.mlflow_run_id, uri, version)
    return ExportResult(
        output=output,
        metadata=metadata,
        lstm_layout=layout,
        parity_max_diff=max_diff,
        parity_source=parity_source,
        parity_utterances=len(parity_features),
        seconds=time.monotonic() - start,
        registered_uri=registered_uri,
        quantization_check=quantization_check,
    )


def convert_to_onnx(model: BiRNN, opset: int = OPSET) -> tuple[onnx.ModelProto, str]:
    """The BiRNN's inference graph as ONNX: (model, description of the LSTM nodes).

    Dropout is left out (inference), the LSTM is called without a mask so tf2onnx emits the
    fused LSTM op, and `use_sequence_lengths` then restores the masked model's answers.
    Output is the softmax over classes, so a client sees probabilities, not logits.
    """
    import tensorflow as tf
    import tf2onnx

    numcep = model.config.numcep

    @tf.function(
        input_signature=[
            tf.TensorSpec((None, None, numcep), tf.float32, name=FEATURES_INPUT),
            tf.TensorSpec((None,), tf.int32, name=LENGTHS_INPUT),
        ]
    )
    def probabilities(features: tf.Tensor, lengths: tf.Tensor) -> dict[str, tf.Tensor]:
        # The LSTM unmasked (the fused op); lengths reach it after conversion (sequence_lens).
        logits = model.forward(features, lengths, training=False, mask_lstm=False)
        return {PROBABILITIES_OUTPUT: tf.nn.softmax(logits, axis=-1)}

    try:
        proto, _ = tf2onnx.convert.from_function(
            probabilities, input_signature=probabilities.input_signature, opset=opset
        )
    except Exception as e:  # tf2onnx raises bare exceptions of many types
        raise ExportError(f"tf2onnx could not convert the model: {e}") from e
    layout = use_sequence_lengths(proto)
    _name_dynamic_axes(proto, numcep, model.config.n_classes)
    return proto, layout


def convert_streaming_to_onnx(model: BiRNN, opset: int = OPSET) -> tuple[onnx.ModelProto, str]:
    """The unidirectional model's streaming graph (`BiRNN.forward_chunk`) as ONNX.

    Inputs and outputs are named in `deepspeech.model.streaming`. The LSTM takes the carried
    state as its initial state, so tf2onnx emits the fused LSTM op (checked: no Loop/Scan).
    """
    import tensorflow as tf
    import tf2onnx

    from deepspeech.model import streaming as names
    from deepspeech.model.birnn import ChunkState, RunningSums

    numcep, n_hidden = model.config.numcep, model.config.n_hidden

    @tf.function(
        input_signature=[
            tf.TensorSpec((None, None, numcep), tf.float32, name=names.FEATURES_INPUT),
            tf.TensorSpec((None,), tf.int32, name=names.LENGTHS_INPUT),
            tf.TensorSpec((None, None, numcep), tf.float32, name=names.CONTEXT_INPUT),
            tf.TensorSpec((None, n_hidden), tf.float32, name=names.STATE_H_INPUT),
            tf.TensorSpec((None, n_hidden), tf.float32, name=names.STATE_C_INPUT),
            tf.TensorSpec((None, numcep), tf.float32, name=names.FRAME_SUM_INPUT),
            tf.TensorSpec((None, numcep), tf.float32, name=names.FRAME_SQUARES_INPUT),
            tf.TensorSpec((None,), tf.float32, name=names.FRAME_COUNT_INPUT),
        ]
    )
    def chunk(
        features: tf.Tensor,
        lengths: tf.Tensor,
        context: tf.Tensor,
        state_h: tf.Tensor,
        state_c: tf.Tensor,
        frame_sum: tf.Tensor,
        frame_squares: tf.Tensor,
        frame_count: tf.Tensor,
    ) -> dict[str, tf.Tensor]:
        sums = RunningSums(frame_sum, frame_squares, frame_count)
        logits, new = model.forward_chunk(
            features, lengths, ChunkState(context, state_h, state_c, sums)
        )
        return {
            names.LOGITS_OUTPUT: logits,
            names.PROBABILITIES_OUTPUT: tf.nn.softmax(logits, axis=-1),
            names.CONTEXT_OUTPUT: new.context,
            names.STATE_H_OUTPUT: new.state_h,
            names.STATE_C_OUTPUT: new.state_c,
            names.FRAME_SUM_OUTPUT: new.sums.total,
            names.FRAME_SQUARES_OUTPUT: new.sums.squares,
            names.FRAME_COUNT_OUTPUT: new.sums.count,
        }

    try:
        proto, _ = tf2onnx.convert.from_function(
            chunk, input_signature=chunk.input_signature, opset=opset
        )
    except Exception as e:  # tf2onnx raises bare exceptions of many types
        raise ExportError(f"tf2onnx could not convert the streaming model: {e}") from e
    ops = [node.op_type for node in proto.graph.node]
    if "Loop" in ops or "Scan" in ops or "LSTM" not in ops:
        raise ExportError("the streaming graph does not run the LSTM as the fused LSTM op")
    return proto, f"{ops.count('LSTM')} forward LSTM with carried state"


def check_streaming_parity(
    model: BiRNN, onnx_bytes: bytes, features: Sequence[np.ndarray]
) -> float:
    """Max |Keras whole-utterance - streamed| logit, each utterance fed in chunks of every
    size in STREAM_PARITY_CHUNKS frames."""
    import onnxruntime
    import tensorflow as tf

    from deepspeech.model.streaming import stream_scores

    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    diffs = []
    for f in features:
        expected = model(tf.constant(f[None]), tf.constant([len(f)]), training=False)[0].numpy()
        for chunk_frames in STREAM_PARITY_CHUNKS:
            streamed = stream_scores(
                session,
                f,
                chunk_frames,
                numcontext=model.config.numcontext,
                n_hidden=model.config.n_hidden,
            )
            if streamed.logits.shape != expected.shape:
                return float("inf")
            diffs.append(np.abs(streamed.logits - expected).max())
    return float(np.max(diffs))  # NaN propagates, and fails the caller's check


def use_sequence_lengths(proto: onnx.ModelProto, lengths_input: str = LENGTHS_INPUT) -> str:
    """Wire the `lengths` graph input into the recurrent nodes, in place; describe them.

    tf2onnx emits either one bidirectional `LSTM` node, or a forward `LSTM` between two
    `ReverseSequence` nodes (one reversing the input in time, one the output back) for a
    backward direction it could not merge. Without lengths, both run the backward direction
    from the last *padded* frame, so padding changes the answers. With `sequence_lens` on the
    LSTM and per-utterance lengths on `ReverseSequence`, the backward pass starts at each
    utterance's last real frame, in either layout. `Loop`/`Scan` nodes mean the fused op was
    not used (e.g. a masked LSTM) and are refused.
    """
    from onnx import TensorProto, helper

    graph = proto.graph
    if any(node.op_type in ("Loop", "Scan") for node in graph.node):
        raise ExportError(
            "the converted graph runs the LSTM in Loop/Scan ops instead of the fused LSTM op "
            "(about 4x slower); export the unmasked model"
        )
    lstms = [node for node in graph.node if node.op_type == "LSTM"]
    if not lstms:
        raise ExportError("the converted graph has no LSTM node; cannot wire in the lengths")
    inputs = {value.name: value for value in graph.input}
    if lengths_input not in inputs:  # tf2onnx drops inputs the TF graph does not read
        graph.input.append(
            helper.make_tensor_value_info(lengths_input, TensorProto.INT32, ["batch"])
        )
    elif inputs[lengths_input].type.tensor_type.elem_type != TensorProto.INT32:
        raise ExportError(f"graph input {lengths_input!r} must be int32 for sequence_lens")

    for node in lstms:
        while len(node.input) < 5:
            node.input.append("")
        node.input[4] = lengths_input  # sequence_lens: (batch,) int32
    reversals = [node for node in graph.node if node.op_type == "ReverseSequence"]
    if reversals:
        lengths_int64 = f"{lengths_input}_int64"  # ReverseSequence wants int64 lengths
        cast = helper.make_node(
            "Cast", [lengths_input], [lengths_int64], name=lengths_int64, to=TensorProto.INT64
        )
        graph.node.insert(0, cast)
        for node in reversals:
            node.input[1] = lengths_int64
    directions = [
        helper.get_attribute_value(a).decode()
        for node in lstms
        for a in node.attribute
        if a.name == "direction"
    ] or ["forward"] * len(lstms)
    layout = ", ".join(f"{directions.count(d)} {d} LSTM" for d in sorted(set(directions)))
    if reversals:
        layout += f", {len(reversals)} ReverseSequence"
    return layout


def _name_dynamic_axes(proto: onnx.ModelProto, numcep: int, n_classes: int) -> None:
    """Name the dynamic axes 'batch' and 'time' (tf2onnx calls them unk__N) for readers."""
    shapes = {
        FEATURES_INPUT: ("batch", "time", numcep),
        LENGTHS_INPUT: ("batch",),
        PROBABILITIES_OUTPUT: ("batch", "time", n_classes),
    }
    for value in [*proto.graph.input, *proto.graph.output]:
        if value.name not in shapes:
            continue
        dims = value.type.tensor_type.shape.dim
        for dim, want in zip(dims, shapes[value.name], strict=True):
            if isinstance(want, str):
                dim.dim_param = want
            else:
                dim.dim_value = want


def write_metadata(proto: onnx.ModelProto, metadata: ModelMetadata) -> None:
    """Replace the model's `metadata_props` with `metadata` and set producer fields."""
    from deepspeech import __version__

    del proto.metadata_props[:]
    for key, value in metadata.to_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "deepspeech"
    proto.producer_version = __version__
    proto.doc_string = (
        f"DeepSpeech {metadata.rnn} RNN (n_hidden {metadata.n_hidden}), {metadata.graph} graph: "
        f"{metadata.to_props()['inputs']} -> {metadata.to_props()['outputs']}; "
        "greedy CTC decoding, blank is the last class"
    )
    if metadata.model_version.isdigit():
        proto.model_version = int(metadata.model_version)


def _save(proto: onnx.ModelProto, output: Path) -> None:
    import onnx

    from deepspeech.files import atomic_write

    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"the exported graph is not valid ONNX: {e}") from e
    with atomic_write(output, "wb") as stream:
        stream.write(proto.SerializeToString())
    logger.info("wrote %s (%.1f MB)", output, output.stat().st_size / 1e6)


def _run_facts(info: RunInfo, tracking_uri: str | None) -> dict[str, Any]:
    """Commit and test WER from the training run in MLflow; the current commit otherwise."""
    from deepspeech.training.tracking import git_commit

    facts: dict[str, Any] = {"git_commit": git_commit(), "test_wer": None}
    if not info.mlflow_run_id or not tracking_uri:
        return facts
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        run = MlflowClient(tracking_uri).get_run(info.mlflow_run_id)
    except MlflowException as e:
        logger.warning("MLflow run %s not readable (%s): no test WER", info.mlflow_run_id, e)
        return facts
    facts["git_commit"] = run.data.params.get("git_commit", facts["git_commit"])
    test_wer = run.data.metrics.get("test_wer")
    facts["test_wer"] = float(test_wer) if test_wer is not None else None
    return facts


def _parity_features(
    info: RunInfo, parity_files: str | None
) -> tuple[str, list[np.ndarray], list[str]]:
    """A few real utterances: (manifest used, [(T, numcep) float32, ...], transcripts).

    Evenly spaced over the first manifest that reads (explicit, else test, dev, train), so
    short and long utterances both get checked.
    """
    from deepspeech.data.manifest import read_manifests

    candidates = (
        [parity_files]
        if parity_files
        else [info.train_options.get(k) for k in ("test_files", "dev_files", "train_files")]
    )
    problems = []
    for spec in filter(None, candidates):
        try:
            utterances = read_manifests(spec, info.alphabet)
        except DeepSpeechError as e:
            if parity_files:
                raise
            problems.append(str(e))
            continue
        picks = np.unique(np.linspace(0, len(utterances) - 1, PARITY_UTTERANCES).round())
        chosen = [utterances[int(i)] for i in picks]
        f = info.features
        return (
            spec,
            [audio_to_features(load_wav(u.wav_path), f.numcep, f.stride) for u in chosen],
            [u.transcript for u in chosen],
        )
    raise ExportError(
        "no manifest to check the export on ("
        + ("; ".join(problems) or "the run names none")
        + "); pass --parity-files CSV"
    )


def pad_features(features: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack utterances: [(T_i, width), ...] -> ((B, T_max, width) zero-padded, (B,) int32)."""
    lengths = np.array([f.shape[0] for f in features], dtype=np.int32)
    batch = np.zeros((len(features), int(lengths.max()), features[0].shape[1]), np.float32)
    for row, f in enumerate(features):
        batch[row, : f.shape[0]] = f
    return batch, lengths


def check_parity(model: BiRNN, onnx_bytes: bytes, features: Sequence[np.ndarray]) -> float:
    """Max |Keras - onnxruntime| probability over real frames, batched and one at a time.

    The Keras side is the model as trained (masked LSTM) on the padded batch; the ONNX side
    runs the same padded batch and each utterance alone, so both the conversion and the
    padding invariance are checked.
    """
    import onnxruntime
    import tensorflow as tf

    batch, lengths = pad_features(features)
    logits = model(tf.constant(batch), tf.constant(lengths), training=False)
    expected = tf.nn.softmax(logits, axis=-1).numpy()
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    batched = session.run(None, {FEATURES_INPUT: batch, LENGTHS_INPUT: lengths})[0]
    diffs = []
    for row, f in enumerate(features):
        n = f.shape[0]
        alone = session.run(None, {FEATURES_INPUT: f[None], LENGTHS_INPUT: lengths[row : row + 1]})
        diffs.append(np.abs(batched[row, :n] - expected[row, :n]).max())
        diffs.append(np.abs(alone[0][0] - expected[row, :n]).max())
    return float(np.max(diffs))  # NaN propagates, and fails the caller's check


def _next_registered_version(name: str, tracking_uri: str | None) -> int:
    """The version number registering `name` will get, to write into the model beforehand."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    versions = client.search_model_versions(f"name = '{_quote(name)}'")
    return max((int(v.version) for v in versions), default=0) + 1


def _quote(name: str) -> str:
    return name.replace("'", "\\'")


def register_model(
    proto: onnx.ModelProto,
    name: str,
    run_id: str | None,
    tracking_uri: str | None,
    expected_version: str,
) -> str:
    """Log the model into the training run with `mlflow.onnx` and register a version of `name`.

    Returns the `models:/NAME/VERSION` URI that `deepspeech serve --model` accepts. Without a
    training run (tracking was off), a new run in the experiment 'deepspeech-export' holds it.
    """
    import mlflow
    import mlflow.onnx
    from mlflow.exceptions import MlflowException
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    uri = mlflow.get_tracking_uri()
    numcep = int(proto.graph.input[0].type.tensor_type.shape.dim[2].dim_value)
    n_classes = int(proto.graph.output[0].type.tensor_type.shape.dim[2].dim_value)
    signature = ModelSignature(
        inputs=Schema(
            [
                TensorSpec(np.dtype(np.float32), (-1, -1, numcep), FEATURES_INPUT),
                TensorSpec(np.dtype(np.int32), (-1,), LENGTHS_INPUT),
            ]
        ),
        outputs=Schema(
            [TensorSpec(np.dtype(np.float32), (-1, -1, n_classes), PROBABILITIES_OUTPUT)]
        ),
    )
    if run_id is not None:
        try:
            mlflow.MlflowClient().get_run(run_id)
        except MlflowException:
            logger.warning("training run %s is not in %s; logging into a new run", run_id, uri)
            run_id = None
    if run_id is None:
        mlflow.set_experiment("deepspeech-export")
    try:
        with mlflow.start_run(run_id=run_id):
            info = mlflow.onnx.log_model(
                proto,
                name=MLFLOW_ARTIFACT_NAME,
                registered_model_name=name,
                signature=signature,
                save_as_external_data=proto.ByteSize() > EXTERNAL_DATA_BYTES,
            )
    except MlflowException as e:
        raise ExportError(f"registering {name!r} in MLflow ({uri}) failed: {e}") from e
    version = str(info.registered_model_version)
    if version != expected_version:
        logger.warning(
            "registered %s version %s, but the model's metadata says %s (another export "
            "registered meanwhile)",
            name,
            version,
            expected_version,
        )
    return f"models:/{name}/{version}"
