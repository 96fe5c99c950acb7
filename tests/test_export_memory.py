"""Export memory grows with the weights, not with tf2onnx's copies of them: tf2onnx converts a
narrow stand-in of the model whose graph then gets the real weights
(deepspeech/export/stand_in.py). Bytes are bounded here, not time; the graph it makes is
checked against Keras and against tf2onnx's own conversion of the full model."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from random_models import random_model

sys.path.append(str(Path(__file__).resolve().parent.parent / "benchmarks"))
import export_memory

from deepspeech.audio import FeatureConfig
from deepspeech.errors import ExportError
from deepspeech.export.convert import (
    convert_streaming_to_onnx,
    convert_to_onnx,
    probabilities_function,
    tf2onnx_convert,
    use_sequence_lengths,
    write_metadata,
)
from deepspeech.export.parity import check_parity, check_streaming_parity
from deepspeech.export.stand_in import MAX_MULTIPLE, StandIn, stand_in_width
from deepspeech.model.config import ModelConfig
from deepspeech.runtime.graph import LENGTHS_INPUT, STREAM_GRAPH, ModelMetadata, pad_features
from deepspeech.runtime.offline import OfflineModel
from deepspeech.runtime.streaming import StreamingModel
from deepspeech.text import Alphabet

N_CLASSES = Alphabet.default().num_classes
RNG = np.random.default_rng(8)
UTTERANCES = [RNG.normal(0.0, 5.0, (n, 26)).astype(np.float32) for n in (9, 41, 120)]

# The export's growth in peak RSS from n_hidden 256 to 512, over the weights' growth (16 MB).
# Measured: 7.3x (the ONNX model's copy, the serialized bytes the runtime loads, the
# runtime's own copy and packed LSTM weights, and the parity check's activations on the
# benchmark's 1, 3 and 6 s utterances). tf2onnx on the full model: 78x.
MAX_GROWTH_OVER_WEIGHTS = 10.0
CHILD_RSS_LIMIT = 6 * 2**30  # a regression must not take the machine down with it


def export_in_child(n_hidden: int) -> dict:
    """The export memory benchmark's child for one width (a random BiRNN through the export
    stage's convert-and-check step), killed past CHILD_RSS_LIMIT: its figures."""
    figures = export_memory.measure(n_hidden, export_memory.STAND_IN, CHILD_RSS_LIMIT)
    assert "killed" not in figures, (
        f"n_hidden {n_hidden}: export passed {CHILD_RSS_LIMIT / 2**30:g} GiB RSS"
    )
    return figures


@pytest.mark.slow
def test_export_memory_grows_with_the_weights() -> None:
    """From n_hidden 256 to 512 the export's peak RSS grows by a few times the weights' growth
    (tf2onnx on the full model: 78x, so 2048 did not fit in 24 GiB)."""
    small, large = export_in_child(256), export_in_child(512)
    for figures in (small, large):
        assert figures["max_diff"] <= 1e-3, figures
    weights_growth = large["weights"] - small["weights"]
    # Peaks net of what the process held before the export (TensorFlow and the Keras model).
    growth = (large["peak"] - large["before"]) - (small["peak"] - small["before"])
    assert growth <= MAX_GROWTH_OVER_WEIGHTS * weights_growth, (
        f"export peak grew {growth / 1e6:.0f} MB for {weights_growth / 1e6:.0f} MB more weights "
        f"({growth / weights_growth:.1f}x; limit {MAX_GROWTH_OVER_WEIGHTS:g}x): {small}, {large}"
    )


def run_probabilities(proto: onnx.ModelProto, features: list[np.ndarray]) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(
        proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    batch, lengths = pad_features(features)
    return session.run(None, {"features": batch, LENGTHS_INPUT: lengths})[0]


@pytest.mark.parametrize("rnn", ["bidirectional", "unidirectional"])
def test_stand_in_graph_is_tf2onnxs_graph_of_the_model(rnn: str) -> None:
    """The export (stand-in + real weights) passes parity and computes exactly what tf2onnx's
    conversion of the full model computes; the LSTM is the fused op with sequence_lens."""
    n_hidden = 48
    model = random_model(ModelConfig(N_CLASSES, n_hidden=n_hidden, rnn=rnn), seed=6)
    proto, _ = convert_to_onnx(model)
    assert stand_in_width(model.config) != n_hidden  # the widths really were rewritten
    lstms = [node for node in proto.graph.node if node.op_type == "LSTM"]
    assert len(lstms) == 1 and lstms[0].input[4] == LENGTHS_INPUT
    hidden = [a.i for a in lstms[0].attribute if a.name == "hidden_size"]
    assert hidden == [n_hidden]
    direct = tf2onnx_convert(probabilities_function(model))
    use_sequence_lengths(direct)
    np.testing.assert_array_equal(
        run_probabilities(proto, UTTERANCES), run_probabilities(direct, UTTERANCES)
    )
    write_metadata(proto, ModelMetadata(Alphabet.default(), FeatureConfig(), n_hidden, rnn=rnn))
    assert check_parity(model, OfflineModel.load(proto.SerializeToString()), UTTERANCES) <= 1e-4


def test_streaming_graph_gets_the_real_widths_and_weights() -> None:
    n_hidden = 40
    config = ModelConfig(N_CLASSES, n_hidden=n_hidden, rnn="unidirectional")
    model = random_model(dataclasses.replace(config, running_mean_frames=3.0), seed=2)
    proto, _ = convert_streaming_to_onnx(model)
    shapes = {
        v.name: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]
        for v in [*proto.graph.input, *proto.graph.output]
    }
    assert shapes["state_h"][1:] == [n_hidden] and shapes["new_state_c"][1:] == [n_hidden]
    metadata = ModelMetadata(
        Alphabet.default(), FeatureConfig(), n_hidden, rnn="unidirectional", graph=STREAM_GRAPH
    )
    write_metadata(proto, metadata)
    streamed = StreamingModel.load(proto.SerializeToString())
    assert check_streaming_parity(model, streamed, UTTERANCES[:2]) <= 1e-4


def test_stand_in_width_is_a_prime_no_count_of_the_graph_is_a_multiple_of() -> None:
    for n_classes, numcontext in [(29, 9), (37, 9), (74, 9), (5000, 9), (29, 30)]:
        config = ModelConfig(n_classes, numcontext=numcontext)
        width = stand_in_width(config)
        assert all(width % d for d in range(2, width)), width
        window = 2 * numcontext + 1
        assert width > max(config.numcep, window)
        for count in (config.numcep, window, n_classes, config.n_input):
            assert not any(count == k * width for k in range(1, MAX_MULTIPLE + 1)), (count, width)


def test_an_initializer_made_from_the_weights_in_an_unknown_way_is_refused() -> None:
    """A width-dependent constant the export cannot rebuild from the real weights (here the
    stand-in's h2 kernel scaled) must fail the export, not be left at the stand-in's width."""
    model = random_model(ModelConfig(N_CLASSES, n_hidden=24), seed=1)
    stand_in = StandIn(model)
    kernel = stand_in.model.h2.kernel.numpy() * 2.0
    proto = onnx.helper.make_model(
        onnx.helper.make_graph(
            [], "g", [], [], [onnx.numpy_helper.from_array(kernel, "scaled_kernel")]
        )
    )
    with pytest.raises(ExportError, match="scaled_kernel"):
        stand_in.attach_weights(proto)
