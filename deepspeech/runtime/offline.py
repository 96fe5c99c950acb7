"""`OfflineModel`: the whole-utterance graph run on padded batches of MFCC frames.

    model = OfflineModel.load("model.onnx")             # or the bytes export just made
    probs, lengths = model.run([features_1, features_2])  # (B, T_max, n_classes), (B,)

Export's parity and int8 checks, `deepspeech transcribe`, the server and the benchmarks all
run an exported model through this class. Padding never changes an answer: the graph takes
each utterance's real length (`lengths`) into its LSTM. No TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnxruntime

from deepspeech.audio import SAMPLE_RATE, audio_to_features
from deepspeech.errors import ModelLoadError
from deepspeech.runtime.graph import (
    FEATURES_INPUT,
    LENGTHS_INPUT,
    PROBABILITIES_OUTPUT,
    UTTERANCE_GRAPH,
    ModelMetadata,
    pad_features,
)
from deepspeech.runtime.session import ModelSource, Placement, open_session, source_label

WARMUP_FRAMES = 16  # a first run allocates buffers; done at load so no request pays for it


class OfflineModel:
    """An exported whole-utterance model: an onnxruntime session and the metadata it carries.

    `run` is thread-safe and releases the GIL (onnxruntime's `run` does), so one model may be
    used from several threads.
    """

    def __init__(self, session: onnxruntime.InferenceSession, metadata: ModelMetadata) -> None:
        self.session = session
        self.metadata = metadata

    @classmethod
    def load(
        cls, source: ModelSource, placement: Placement = Placement(), label: str | None = None
    ) -> OfflineModel:
        """Open a model file (or serialized bytes); ModelLoadError if it is not a DeepSpeech
        whole-utterance model this code can run. `label` names it in errors."""
        label = label or source_label(source)
        session = open_session(source, placement, warm_up)
        metadata = ModelMetadata.from_props(session.get_modelmeta().custom_metadata_map, label)
        _check_signature(session, metadata, label)
        return cls(session, metadata)

    @property
    def providers(self) -> list[str]:
        """The execution providers the session really uses, best first."""
        return list(self.session.get_providers())

    def features(self, audio: np.ndarray) -> np.ndarray:
        """16 kHz mono (n_samples,) float -> (T, numcep) float32 MFCC, as the model was trained.

        Normalisation and context windows are inside the model's graph.
        """
        f = self.metadata.features
        return audio_to_features(audio, f.numcep, f.stride)

    def run(self, features: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """One padded batch: [(T_i, numcep)] -> ((B, T_max, n_classes) probabilities, (B,))."""
        return run_utterances(self.session, features)

    def probabilities(self, features: Sequence[np.ndarray]) -> list[np.ndarray]:
        """[(T_i, numcep)] -> [(T_i, n_classes)] probabilities, run as one padded batch."""
        probs, lengths = self.run(features)
        return [p[:n] for p, n in zip(probs, lengths, strict=True)]


def run_utterances(
    session: onnxruntime.InferenceSession, features: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """`OfflineModel.run` on a bare session (a warm-up or a profiled run has no model yet)."""
    batch, lengths = pad_features(features)  # (B, T_max, numcep), (B,)
    (probs,) = session.run([PROBABILITIES_OUTPUT], {FEATURES_INPUT: batch, LENGTHS_INPUT: lengths})
    return probs, lengths


def warm_up(session: onnxruntime.InferenceSession) -> None:
    """Run a tiny batch: proves the providers work and allocates before the first request."""
    shapes = {i.name: i.shape for i in session.get_inputs()}
    width = shapes.get(FEATURES_INPUT, [None])[-1]
    if not isinstance(width, int):
        raise ModelLoadError(f"inputs {shapes}: not a DeepSpeech model (no {FEATURES_INPUT!r})")
    run_utterances(session, [np.zeros((WARMUP_FRAMES, width), np.float32)])


def _check_signature(
    session: onnxruntime.InferenceSession, metadata: ModelMetadata, source: str
) -> None:
    if metadata.graph != UTTERANCE_GRAPH:
        raise ModelLoadError(
            f"{source}: a {metadata.graph} graph, not a whole-utterance one; use it with "
            "`transcribe --stream`, serving.stream or `serve --stream-model`"
        )
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    if set(inputs) != {FEATURES_INPUT, LENGTHS_INPUT} or PROBABILITIES_OUTPUT not in outputs:
        raise ModelLoadError(
            f"{source}: inputs {sorted(inputs)} / outputs {sorted(outputs)}, expected "
            f"{FEATURES_INPUT}, {LENGTHS_INPUT} -> {PROBABILITIES_OUTPUT}; re-export the model"
        )
    width = inputs[FEATURES_INPUT].shape[-1]
    if isinstance(width, int) and width != metadata.input_width:
        raise ModelLoadError(
            f"{source}: features input is {width} wide but the metadata implies "
            f"{metadata.input_width}; the model file is inconsistent"
        )
    if metadata.sample_rate != SAMPLE_RATE:
        raise ModelLoadError(
            f"{source}: model expects {metadata.sample_rate} Hz audio; this code reads "
            f"{SAMPLE_RATE} Hz"
        )
