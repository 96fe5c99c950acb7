"""Driving the streaming graph: MFCC frames of one utterance in, per-frame scores out, chunk by
chunk, equal to the whole-utterance graph's scores.

The streaming graph (`deepspeech export --streaming`, unidirectional models only) runs
`BiRNN.forward_chunk`: it takes raw MFCC frames, the normalised frames carried from the last
call (`context`) and the LSTM state, and returns scores for the frames whose whole context
window is known. Frame t needs frames up to t+numcontext, so scores lag numcontext frames:

- a stream starts with numcontext zero frames as context (the left edge's zero padding) and
  carries the last 2*numcontext normalised frames afterwards;
- a call needs at least one whole window (context + new frames > 2*numcontext); fewer frames
  wait in `pending`;
- the end of the stream feeds numcontext more frames marked as padding (`lengths`), which the
  graph zeroes after normalisation, exactly as the whole-utterance model pads its edge.

NumPy and an onnxruntime session only (no TensorFlow): the export's parity check and
`serving.stream` share this one implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

FEATURES_INPUT = "features"  # (batch, time, numcep) float32 raw MFCC frames of this chunk
LENGTHS_INPUT = "lengths"  # (batch,) int32: real frames in `features`; the rest are end padding
CONTEXT_INPUT = "context"  # (batch, context, numcep) float32 normalised frames carried over
STATE_H_INPUT = "state_h"  # (batch, n_hidden) float32 LSTM output state
STATE_C_INPUT = "state_c"  # (batch, n_hidden) float32 LSTM cell state
LOGITS_OUTPUT = "logits"  # (batch, out_time, n_classes) float32, blank last
PROBABILITIES_OUTPUT = "probabilities"  # softmax of `logits`
CONTEXT_OUTPUT = "new_context"  # (batch, 2*numcontext, numcep): the next call's `context`
STATE_H_OUTPUT = "new_state_h"
STATE_C_OUTPUT = "new_state_c"
STREAM_INPUTS = (FEATURES_INPUT, LENGTHS_INPUT, CONTEXT_INPUT, STATE_H_INPUT, STATE_C_INPUT)
STREAM_OUTPUTS = (
    LOGITS_OUTPUT,
    PROBABILITIES_OUTPUT,
    CONTEXT_OUTPUT,
    STATE_H_OUTPUT,
    STATE_C_OUTPUT,
)


@dataclass(frozen=True)
class ChunkScores:
    """Scores of the frames a call completed: (n, n_classes) logits and probabilities."""

    logits: np.ndarray
    probabilities: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(self.logits.shape[0])


class AcousticStream:
    """One utterance through the streaming graph; holds its context, LSTM state and pending frames.

    Work per `accept` depends on the chunk only, never on how long the stream already is: the
    state is a fixed 2*numcontext frames plus (h, c).
    """

    def __init__(self, session: Any, numcep: int, numcontext: int, n_hidden: int) -> None:
        self.session = session
        self.numcep = numcep
        self.numcontext = numcontext
        self.context = np.zeros((1, numcontext, numcep), np.float32)  # the left edge's padding
        self.state_h = np.zeros((1, n_hidden), np.float32)
        self.state_c = np.zeros((1, n_hidden), np.float32)
        self.pending = np.zeros((0, numcep), np.float32)
        self.frames_in = 0  # MFCC frames accepted so far
        self.frames_out = 0  # frames scored so far (frames_in - numcontext once running)
        self.finished = False

    def accept(self, frames: np.ndarray) -> ChunkScores | None:
        """Add (n, numcep) MFCC frames; scores of the frames now complete, or None if none is."""
        if self.finished:
            raise RuntimeError("the stream is finished; start a new one")
        frames = np.asarray(frames, np.float32).reshape(-1, self.numcep)
        self.pending = np.concatenate([self.pending, frames]) if len(self.pending) else frames
        self.frames_in += len(frames)
        if self.context.shape[1] + len(self.pending) <= 2 * self.numcontext:
            return None
        features, self.pending = self.pending, self.pending[:0]
        return self._run(features, len(features))

    def flush(self) -> ChunkScores | None:
        """End of the utterance: scores of the last numcontext frames (and any pending ones)."""
        if self.finished:
            raise RuntimeError("the stream is finished; start a new one")
        self.finished = True
        if self.frames_in == 0:
            return None
        n_real = len(self.pending)
        padding = np.zeros((self.numcontext, self.numcep), np.float32)
        return self._run(np.concatenate([self.pending, padding]), n_real)

    def _run(self, features: np.ndarray, n_real: int) -> ChunkScores:
        logits, probabilities, self.context, self.state_h, self.state_c = self.session.run(
            list(STREAM_OUTPUTS),
            {
                FEATURES_INPUT: features[None],
                LENGTHS_INPUT: np.array([n_real], np.int32),
                CONTEXT_INPUT: self.context,
                STATE_H_INPUT: self.state_h,
                STATE_C_INPUT: self.state_c,
            },
        )
        self.frames_out += logits.shape[1]
        return ChunkScores(logits[0], probabilities[0])


def stream_scores(
    session: Any,
    features: np.ndarray,
    chunk_frames: int,
    *,
    numcontext: int,
    n_hidden: int,
) -> ChunkScores:
    """A whole (T, numcep) utterance fed `chunk_frames` at a time: (T, n_classes) scores.

    What the export's parity check compares with the whole-utterance model.
    """
    stream = AcousticStream(session, features.shape[1], numcontext, n_hidden)
    parts = [
        stream.accept(features[i : i + chunk_frames]) for i in range(0, len(features), chunk_frames)
    ]
    parts.append(stream.flush())
    done = [p for p in parts if p is not None]
    return ChunkScores(
        np.concatenate([p.logits for p in done]), np.concatenate([p.probabilities for p in done])
    )
