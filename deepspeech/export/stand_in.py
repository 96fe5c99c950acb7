"""Convert a narrow stand-in of the model, then give its ONNX graph the real weights.

Why: tf2onnx holds many copies of every constant. Freezing, Grappler and the graph imports
each hold one, and with the default error handling every ONNX optimizer pass starts from a
`copy.deepcopy` of the whole graph, which stays alive in reference cycles until the garbage
collector runs (up to 24 such copies at once, each about 3x the weights). Measured on the default
conversion: n_hidden 256 (5.8 MB of weights) peaked at 1.4 GB RSS, 1024 (86 MB) at 8.2 GB, and
2048 (340 MB) was OOM-killed on a 24 GiB machine.

The graph's structure does not depend on n_hidden. The width appears only in the weights, the
LSTM's `hidden_size`, a few integer shape constants and the shapes of graph inputs and
outputs. So the export converts the same model built at a small width W0
(`stand_in_width`). The stand-in gets the real values of every weight whose shape does not
depend on the width (normalisation statistics, the output bias), so constants tf2onnx or
Grappler derive from them (1/std) are already right. Every other weight gets random *probe*
values. After conversion, `StandIn.attach_weights` does the rest:

- Each float initializer is looked up by value among the arrays tf2onnx can make from one
  width-dependent weight: a Dense kernel or bias as it is (or transposed), and the LSTM's W, R
  and B as tf2onnx lays them out, with the gates reordered from Keras' i,f,c,o to ONNX's
  i,o,f,c, transposed, the directions stacked, and B = [bias, zeros]. Each is computed from the
  stand-in's weights, and the match is exact because probe values do not repeat. The
  initializer is then replaced by the same array computed from the real weights, one
  initializer at a time. A width-dependent initializer that matches nothing is an ExportError.
- Every integer k*W0 (k = 1..8) in an integer initializer, an integer attribute (`hidden_size`)
  or a graph input or output shape becomes k*n_hidden. W0 is a prime chosen so that no other
  count the graph is built from (numcep, the window width 2*numcontext+1, their product,
  n_classes) is one of its multiples, and small offsets (frame indices in the context windows)
  are below it. tf2onnx's sentinels (±1e9, INT32_MAX) are far above 8*W0.

The parity check at the real width (`export_model`) then checks the result against Keras.
Memory: tf2onnx's copies are of the stand-in (a few MB). The real weights are read one at a
time into the initializer that needs them, so the export holds the Keras weights, the ONNX
model's copy of them and one initializer in flight.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, numpy_helper

from deepspeech.errors import ExportError
from deepspeech.model.birnn import BiRNN, build_birnn
from deepspeech.model.config import ModelConfig

logger = logging.getLogger(__name__)

MAX_MULTIPLE = 8  # k*W0 for k up to this is a width-dependent size (W, 2W for a BiLSTM's output)
MIN_STAND_IN_WIDTH = 32
ONNX_GATES = (0, 3, 1, 2)  # ONNX's LSTM gates i,o,f,c as indices into Keras' i,f,c,o
PROBE_SEED = 20170  # any: probe values only need to be distinct


def stand_in_width(config: ModelConfig) -> int:
    """W0: the smallest prime above 32, numcep and the window width 2*numcontext+1 of which
    no count the graph is built from (those, n_classes, the windows' width) is a multiple
    k*W0 with k <= MAX_MULTIPLE. Prime and above the factors, it divides none of their
    products; n_classes (an alphabet may be large) is checked."""
    window = 2 * config.numcontext + 1
    counts = (config.numcep, window, config.n_classes, config.n_input)
    candidate = max(MIN_STAND_IN_WIDTH, config.numcep, window)
    while True:
        candidate += 1
        if all(candidate % d for d in range(2, int(candidate**0.5) + 1)) and not any(
            _multiple(count, candidate) for count in counts
        ):
            return candidate


def _multiple(value: int, width: int) -> int:
    """k when `value` is k*`width` for some k in 1..MAX_MULTIPLE, else 0."""
    k, rest = divmod(int(value), width)
    return k if rest == 0 and 1 <= k <= MAX_MULTIPLE else 0


@dataclass(frozen=True)
class Candidate:
    """An array tf2onnx may have made from width-dependent weights: what it is on the
    stand-in (to recognise it) and how to make it from the real model."""

    name: str
    stand_in: np.ndarray
    real: Callable[[], np.ndarray]


class StandIn:
    """`model` built again at width `stand_in_width` (probe values in the width-dependent
    weights, the real values elsewhere), to be converted instead of `model`."""

    def __init__(self, model: BiRNN) -> None:
        self.real = model
        self.width = stand_in_width(model.config)
        self.n_hidden = model.config.n_hidden
        self.model = build_birnn(dataclasses.replace(model.config, n_hidden=self.width))
        rng = np.random.default_rng(PROBE_SEED)
        self._dependent: list[tuple[str, object, object]] = []  # (path, stand-in, real)
        for small, big in zip(self.model.weights, model.weights, strict=True):
            expected = tuple(self._scaled(d) for d in small.shape)
            if tuple(big.shape) != expected:
                raise ExportError(
                    f"the stand-in's weight {small.path} {tuple(small.shape)} does not "
                    f"correspond to the model's {big.path} {tuple(big.shape)}"
                )
            if any(_multiple(d, self.width) for d in small.shape):
                small.assign(rng.standard_normal(small.shape).astype(small.dtype))
                self._dependent.append((small.path, small, big))
            else:
                small.assign(big.numpy())  # the real values: anything folded from them is right

    def _scaled(self, value: int) -> int:
        k = _multiple(value, self.width)
        return k * self.n_hidden if k else int(value)

    def attach_weights(self, proto: onnx.ModelProto) -> list[str]:
        """Turn the stand-in's converted graph into the model's, in place: real weights,
        real widths. Returns the names of the initializers replaced."""
        candidates = self._candidates()
        replaced = []
        for tensor in _tensors(proto.graph):
            if tensor.data_type in (TensorProto.INT32, TensorProto.INT64):
                self._scale_integers(tensor)
            elif tensor.data_type in _FLOAT_TYPES:
                name = self._attach(tensor, candidates)
                if name:
                    replaced.append(f"{tensor.name} <- {name}")
        for node in _nodes(proto.graph):
            for attribute in node.attribute:
                if attribute.type == AttributeProto.INT:
                    attribute.i = self._scaled(attribute.i)
                elif attribute.type == AttributeProto.INTS:
                    scaled = [self._scaled(v) for v in attribute.ints]
                    del attribute.ints[:]
                    attribute.ints.extend(scaled)
        values = [v for g in _graphs(proto.graph) for v in [*g.input, *g.output, *g.value_info]]
        for value in values:
            for dim in value.type.tensor_type.shape.dim:
                if dim.HasField("dim_value"):
                    dim.dim_value = self._scaled(dim.dim_value)
        logger.debug("stand-in width %d -> %d: %s", self.width, self.n_hidden, replaced)
        return replaced

    def _attach(self, tensor: TensorProto, candidates: list[Candidate]) -> str | None:
        """Replace `tensor`'s values by the real model's if it is a candidate; its name."""
        small = numpy_helper.to_array(tensor)
        for candidate in candidates:
            if candidate.stand_in.shape == small.shape and np.array_equal(
                candidate.stand_in.astype(small.dtype), small
            ):
                _set_array(tensor, candidate.real().astype(small.dtype, copy=False))
                return candidate.name
        if any(_multiple(d, self.width) for d in small.shape):
            raise ExportError(
                f"tf2onnx made initializer {tensor.name!r} {small.shape} from the model's "
                "weights in a way the export does not know; cannot give it the real weights "
                "(deepspeech/export/stand_in.py)"
            )
        return None

    def _scale_integers(self, tensor: TensorProto) -> None:
        values = numpy_helper.to_array(tensor)
        scaled = np.array([self._scaled(v) for v in values.ravel()], values.dtype)
        if not np.array_equal(scaled, values.ravel()):
            _set_array(tensor, scaled.reshape(values.shape))

    def _candidates(self) -> list[Candidate]:
        """Every array tf2onnx is known to make from width-dependent weights."""
        out = []
        for path, small, big in self._dependent:
            out.append(Candidate(path, small.numpy(), big.numpy))
            if len(small.shape) == 2:
                out.append(Candidate(f"{path}.T", small.numpy().T, lambda v=big: v.numpy().T))
        small_cells = [layer.cell for layer in self.model.lstm_layers()]
        big_cells = [layer.cell for layer in self.real.lstm_layers()]
        groups = [list(range(len(small_cells)))]  # both directions in one node
        if len(small_cells) > 1:
            groups += [[d] for d in range(len(small_cells))]  # a node per direction
        for group in groups:
            label = "lstm" + ("" if group == groups[0] else f"[{group[0]}]")
            for part in ("W", "R", "B"):
                out.append(
                    Candidate(
                        f"{label}.{part}",
                        _lstm_input(part, [small_cells[d] for d in group]),
                        lambda part=part, cells=[big_cells[d] for d in group]: _lstm_input(
                            part, cells
                        ),
                    )
                )
        return out


def _lstm_input(part: str, cells: list) -> np.ndarray:
    """ONNX LSTM input W (D, 4H, I), R (D, 4H, H) or B (D, 8H) from Keras LSTM cells (one per
    direction), built one direction and one gate at a time."""
    units = cells[0].units
    if part == "B":
        out = np.zeros((len(cells), 8 * units), np.float32)  # Wb, then Rb = 0
        for d, cell in enumerate(cells):
            bias = cell.bias.numpy()
            for position, gate in enumerate(ONNX_GATES):
                out[d, position * units : (position + 1) * units] = bias[
                    gate * units : (gate + 1) * units
                ]
        return out
    variable = "kernel" if part == "W" else "recurrent_kernel"
    rows = getattr(cells[0], variable).shape[0]
    out = np.empty((len(cells), 4 * units, rows), np.float32)
    for d, cell in enumerate(cells):
        kernel = getattr(cell, variable).numpy()  # (I, 4H), gates i,f,c,o
        for position, gate in enumerate(ONNX_GATES):
            out[d, position * units : (position + 1) * units] = kernel[
                :, gate * units : (gate + 1) * units
            ].T
        del kernel
    return out


_FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE)


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """`graph` and its subgraphs (a Loop's or If's body), at any depth."""
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            subgraphs = [attribute.g] if attribute.type == AttributeProto.GRAPH else []
            for sub in [*subgraphs, *attribute.graphs]:
                yield from _graphs(sub)


def _nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    for each in _graphs(graph):
        yield from each.node


def _tensors(graph: onnx.GraphProto) -> Iterator[TensorProto]:
    """Every constant tensor: initializers and Constant nodes' values, subgraphs included."""
    for each in _graphs(graph):
        yield from each.initializer
        for node in each.node:
            for attribute in node.attribute:
                if attribute.type == AttributeProto.TENSOR:
                    yield attribute.t


def _set_array(tensor: TensorProto, array: np.ndarray) -> None:
    """Give `tensor` (same type) `array`'s shape and values, as little-endian raw data."""
    data = np.ascontiguousarray(array, array.dtype.newbyteorder("<"))
    for field in ("float_data", "int32_data", "int64_data", "double_data", "raw_data"):
        tensor.ClearField(field)
    del tensor.dims[:]
    tensor.dims.extend(data.shape)
    tensor.raw_data = data.tobytes()
