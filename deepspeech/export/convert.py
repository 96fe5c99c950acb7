"""Keras model -> ONNX graphs (tf2onnx): the whole-utterance graph and the streaming graph.

The exported graph is an unmasked twin of the trained BiRNN that shares its weights: a masked
Keras BiLSTM converts to ONNX `Loop` ops and runs about 4x slower, an unmasked one to the fused
ONNX `LSTM` op. Padding must still not change answers, so after conversion the `lengths` graph
input is wired into every LSTM node's `sequence_lens` (and into any `ReverseSequence` tf2onnx
made for a backward direction): each utterance's backward pass then starts at its own last
real frame, exactly as the masked model does in training.

The streaming graph of a unidirectional model (`BiRNN.forward_chunk`: a chunk of MFCC frames
plus the carried context, LSTM state and running sums in, scores plus the new state out; see
`deepspeech.runtime.streaming`) converts the same way. Input and output names, and the
metadata written into both, are the runtime's (`deepspeech.runtime.graph`).

tf2onnx converts a narrow stand-in of the model, not the model itself: its copies of the
weights made converting n_hidden 1024 peak at 8.2 GB RSS and 2048 not fit in 24 GiB. The
stand-in's graph then gets the real weights and widths (`deepspeech.export.stand_in`), so the
export's memory grows with the weights, not with tf2onnx's copies of them: converting adds
about 1.4x the weights, and the whole convert-and-check step peaks at 2.8 GB for n_hidden 2048
(`benchmarks/export_memory.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import onnx
import tensorflow as tf
import tf2onnx
from onnx import TensorProto, helper

from deepspeech import __version__
from deepspeech.errors import ExportError
from deepspeech.export.stand_in import StandIn
from deepspeech.files import atomic_write
from deepspeech.model.birnn import BiRNN, ChunkState, RunningSums
from deepspeech.runtime import graph as names
from deepspeech.runtime.graph import (
    FEATURES_INPUT,
    LENGTHS_INPUT,
    OPSET,
    PROBABILITIES_OUTPUT,
    ModelMetadata,
)

logger = logging.getLogger(__name__)


def without_cudnn(model: BiRNN) -> None:
    """Make the model trace its LSTMs as the generic kernel, whatever devices are visible.

    Where a GPU is visible at trace time, Keras 3 builds cuDNN's `CudnnRNNV3` for an LSTM;
    tf2onnx converts only the GRU form of `CudnnRNN`, logs "Unsupported ops" and goes on, and
    the export then finds no LSTM node. The generic kernel converts to the fused ONNX `LSTM`
    on any machine, and computes the same function.
    """
    for layer in model.lstm_layers():
        layer.use_cudnn = False


def convert_to_onnx(model: BiRNN, opset: int = OPSET) -> tuple[onnx.ModelProto, str]:
    """The BiRNN's inference graph as ONNX: (model, description of the LSTM nodes).

    Dropout is left out (inference), the LSTM is called without a mask so tf2onnx emits the
    fused LSTM op, and `use_sequence_lengths` then restores the masked model's answers.
    Output is the softmax over classes, so a client sees probabilities, not logits.
    tf2onnx converts the narrow stand-in, which then gets the model's weights (`StandIn`).
    """
    proto = _convert_stand_in(model, probabilities_function, opset, "the model")
    layout = use_sequence_lengths(proto)
    _name_dynamic_axes(proto, model.config.numcep, model.config.n_classes)
    return proto, layout


def convert_streaming_to_onnx(model: BiRNN, opset: int = OPSET) -> tuple[onnx.ModelProto, str]:
    """The unidirectional model's streaming graph (`BiRNN.forward_chunk`) as ONNX.

    Inputs and outputs are named in `deepspeech.runtime.graph`. The LSTM takes the carried
    state as its initial state, so tf2onnx emits the fused LSTM op (checked: no Loop/Scan).
    tf2onnx converts the narrow stand-in, which then gets the model's weights (`StandIn`).
    """
    proto = _convert_stand_in(model, chunk_function, opset, "the streaming model")
    ops = [node.op_type for node in proto.graph.node]
    if "Loop" in ops or "Scan" in ops or "LSTM" not in ops:
        raise ExportError("the streaming graph does not run the LSTM as the fused LSTM op")
    return proto, f"{ops.count('LSTM')} forward LSTM with carried state"


def _convert_stand_in(
    model: BiRNN,
    trace: Callable[[BiRNN], tf.types.experimental.GenericFunction],
    opset: int,
    what: str,
) -> onnx.ModelProto:
    """tf2onnx's conversion of `trace(stand-in)`, then given `model`'s weights and widths.

    The stand-in is `model` at a small width (`deepspeech.export.stand_in`): tf2onnx's many
    copies of the weights are then copies of a few MB, whatever `model`'s width.
    """
    without_cudnn(model)
    stand_in = StandIn(model)
    without_cudnn(stand_in.model)
    proto = tf2onnx_convert(trace(stand_in.model), opset, what)
    stand_in.attach_weights(proto)
    return proto


def tf2onnx_convert(
    function: tf.types.experimental.GenericFunction, opset: int = OPSET, what: str = "the model"
) -> onnx.ModelProto:
    """`function` (a tf.function with an input signature) converted by tf2onnx, as it is."""
    try:
        proto, _ = tf2onnx.convert.from_function(
            function, input_signature=function.input_signature, opset=opset
        )
    except Exception as e:  # tf2onnx raises bare exceptions of many types
        raise ExportError(f"tf2onnx could not convert {what}: {e}") from e
    return proto


def probabilities_function(model: BiRNN) -> tf.types.experimental.GenericFunction:
    """The whole-utterance inference pass as a tf.function: features, lengths -> softmax."""
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

    return probabilities


def chunk_function(model: BiRNN) -> tf.types.experimental.GenericFunction:
    """The streaming pass (`BiRNN.forward_chunk`) as a tf.function, inputs and outputs named
    as the runtime reads them."""
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

    return chunk


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


def save_model(proto: onnx.ModelProto, output: Path) -> None:
    """Validate the graph and write it atomically (a failed export leaves no file)."""

    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"the exported graph is not valid ONNX: {e}") from e
    with atomic_write(output, "wb") as stream:
        stream.write(proto.SerializeToString())
    logger.info("wrote %s (%.1f MB)", output, output.stat().st_size / 1e6)
