"""What an exported model is: its graphs' input and output names, its metadata, its padding.

Two graphs are exported (`deepspeech.export`): the whole-utterance graph (`features` +
`lengths` -> `probabilities`) and the streaming graph of a unidirectional model (a chunk of
frames plus the carried state -> scores plus the new state). `ModelMetadata` is the one schema
for the `metadata_props` that make a file self-describing: alphabet, sample rate, feature
settings, width, training run, commit, test WER, name and version; the server needs nothing
else. No TensorFlow, no onnx, no onnxruntime: export writes with it, the runtime reads with it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from deepspeech.audio import SAMPLE_RATE, FeatureConfig
from deepspeech.errors import DeepSpeechError, ModelLoadError
from deepspeech.text import Alphabet

OPSET = 17  # the lowest opset whose LSTM/ReverseSequence/Softmax semantics we rely on, tested
FEATURES_INPUT = "features"  # (batch, time, numcep) float32 MFCC frames
LENGTHS_INPUT = "lengths"  # (batch,) int32: real frames per utterance
PROBABILITIES_OUTPUT = "probabilities"  # (batch, time, n_classes) float32 softmax, blank last
DEFAULT_MODEL_NAME = "deepspeech"
# Bump when the metadata or the graphs' inputs change meaning (2: MFCC input; 3: the streaming
# graph carries the running mean's and variance's sums and count).
METADATA_FORMAT = "3"
UTTERANCE_GRAPH = "utterance"  # metadata `graph`: whole utterances, features + lengths
STREAM_GRAPH = "stream"  # metadata `graph`: one chunk of a stream plus carried state
# The streaming graph: `features` and `lengths` (real frames; the rest are end padding) are
# the chunk's, then the carried state; out come `logits`, `probabilities` and the new state.
CONTEXT_INPUT = "context"  # (batch, context, numcep) float32 normalised frames carried over
STATE_H_INPUT = "state_h"  # (batch, n_hidden) float32 LSTM output state
STATE_C_INPUT = "state_c"  # (batch, n_hidden) float32 LSTM cell state
FRAME_SUM_INPUT = "frame_sum"  # (batch, numcep) float32 sum of the real frames so far
FRAME_SQUARES_INPUT = "frame_squares"  # (batch, numcep) float32 sum of their squares
FRAME_COUNT_INPUT = "frame_count"  # (batch,) float32 how many real frames the sums hold
LOGITS_OUTPUT = "logits"  # (batch, out_time, n_classes) float32, blank last
CONTEXT_OUTPUT = "new_context"  # (batch, 2*numcontext, numcep): the next call's `context`
STATE_H_OUTPUT = "new_state_h"
STATE_C_OUTPUT = "new_state_c"
FRAME_SUM_OUTPUT = "new_frame_sum"
FRAME_SQUARES_OUTPUT = "new_frame_squares"
FRAME_COUNT_OUTPUT = "new_frame_count"
STREAM_INPUTS = (
    FEATURES_INPUT,
    LENGTHS_INPUT,
    CONTEXT_INPUT,
    STATE_H_INPUT,
    STATE_C_INPUT,
    FRAME_SUM_INPUT,
    FRAME_SQUARES_INPUT,
    FRAME_COUNT_INPUT,
)
STREAM_OUTPUTS = (
    LOGITS_OUTPUT,
    PROBABILITIES_OUTPUT,
    CONTEXT_OUTPUT,
    STATE_H_OUTPUT,
    STATE_C_OUTPUT,
    FRAME_SUM_OUTPUT,
    FRAME_SQUARES_OUTPUT,
    FRAME_COUNT_OUTPUT,
)
# Older formats still read, for the graphs whose inputs have not changed since: format 2's
# whole-utterance graph takes what format 3's takes; its streaming graph lacks the sum and count.
OLDER_FORMATS = {"2": (UTTERANCE_GRAPH,)}


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


def pad_features(features: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack utterances: [(T_i, width), ...] -> ((B, T_max, width) zero-padded, (B,) int32)."""
    lengths = np.array([f.shape[0] for f in features], dtype=np.int32)
    batch = np.zeros((len(features), int(lengths.max()), features[0].shape[1]), np.float32)
    for row, f in enumerate(features):
        batch[row, : f.shape[0]] = f
    return batch, lengths
