"""`StreamingModel`: the streaming graph run chunk by chunk, equal to the whole-utterance graph.

The streaming graph (`deepspeech export --streaming`, unidirectional models only) runs
`BiRNN.forward_chunk`: it takes raw MFCC frames, the normalised frames carried from the last
call (`context`), the LSTM state and the running sums (mean and variance), and returns scores for
the frames whose whole context window is known, with the state to carry. Frame t needs frames
up to t+numcontext, so scores lag numcontext frames:

- a stream starts with numcontext zero frames as context (the left edge's zero padding) and
  carries the last 2*numcontext normalised frames afterwards;
- a call needs at least one whole window (context + new frames > 2*numcontext); fewer frames
  wait in `pending`;
- the end of the stream feeds numcontext more frames marked as padding (`lengths`), which the
  graph zeroes after normalisation, exactly as the whole-utterance model pads its edge.

NumPy and onnxruntime only (no TensorFlow): the export's parity check, `serving.stream` and
the WebSocket server share this one implementation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnxruntime

from deepspeech.errors import ModelLoadError
from deepspeech.runtime.graph import (
    CONTEXT_INPUT,
    FEATURES_INPUT,
    FRAME_COUNT_INPUT,
    FRAME_SQUARES_INPUT,
    FRAME_SUM_INPUT,
    LENGTHS_INPUT,
    STATE_C_INPUT,
    STATE_H_INPUT,
    STREAM_GRAPH,
    STREAM_INPUTS,
    STREAM_OUTPUTS,
    ModelMetadata,
)
from deepspeech.runtime.session import ModelSource, Placement, open_session, source_label

STREAM_THREADS = 1  # onnxruntime threads: a stream's chunks are small, one thread is fastest


class StreamingModel:
    """An exported streaming graph: an onnxruntime session and the metadata it carries.

    One session serves every stream (`run` is thread-safe); each `AcousticStream` holds only
    its own small state, so streams are cheap to create.
    """

    def __init__(self, session: onnxruntime.InferenceSession, metadata: ModelMetadata) -> None:
        self.session = session
        self.metadata = metadata

    @classmethod
    def load(
        cls, source: ModelSource, *, threads: int = STREAM_THREADS, label: str | None = None
    ) -> StreamingModel:
        """Open a streaming model file (or bytes); ModelLoadError if it is not one."""
        label = label or source_label(source)
        session = open_session(source, Placement(threads=threads))
        metadata = ModelMetadata.from_props(session.get_modelmeta().custom_metadata_map, label)
        if metadata.graph != STREAM_GRAPH:
            raise ModelLoadError(
                f"{label}: a {metadata.graph} graph ({metadata.rnn} LSTM), not a streaming "
                "one; export a unidirectional model with `deepspeech export --streaming`"
            )
        inputs = {i.name for i in session.get_inputs()}
        outputs = {o.name for o in session.get_outputs()}
        if inputs != set(STREAM_INPUTS) or not set(STREAM_OUTPUTS) <= outputs:
            raise ModelLoadError(
                f"{label}: inputs {sorted(inputs)} / outputs {sorted(outputs)} are not the "
                "streaming graph's; re-export it with `deepspeech export --streaming`"
            )
        model = cls(session, metadata)
        model.warm_up()
        return model

    def warm_up(self) -> None:
        """Score one window of silence: allocates buffers now, not in the first stream."""
        features = self.metadata.features
        stream = AcousticStream(self)
        stream.accept(np.zeros((2 * features.numcontext + 1, features.numcep), np.float32))
        stream.flush()

    def run(self, calls: list[ChunkCall]) -> list[ChunkResult]:
        """Run calls of many streams, one onnxruntime run per group of equal shapes, in order.

        A live stream sends one or two frames per call, so the streams of a server mostly share
        a shape and run as one batch (the graph is batch-wise: rows never mix).
        """
        results: list[ChunkResult | None] = [None] * len(calls)
        groups: dict[tuple[int, int], list[int]] = {}
        for index, call in enumerate(calls):
            groups.setdefault(call.shape_key, []).append(index)
        for indices in groups.values():
            states = [calls[i].state for i in indices]
            logits, probabilities, context, state_h, state_c, totals, squares, counts = (
                self.session.run(
                    list(STREAM_OUTPUTS),
                    {
                        FEATURES_INPUT: np.stack([calls[i].features for i in indices]),
                        LENGTHS_INPUT: np.array([calls[i].n_real for i in indices], np.int32),
                        CONTEXT_INPUT: np.stack([s.context for s in states]),
                        STATE_H_INPUT: np.stack([s.state_h for s in states]),
                        STATE_C_INPUT: np.stack([s.state_c for s in states]),
                        FRAME_SUM_INPUT: np.stack([s.frame_sum for s in states]),
                        FRAME_SQUARES_INPUT: np.stack([s.frame_squares for s in states]),
                        FRAME_COUNT_INPUT: np.array([s.frame_count for s in states], np.float32),
                    },
                )
            )
            for row, i in enumerate(indices):
                state = StreamState(
                    context[row],
                    state_h[row],
                    state_c[row],
                    totals[row],
                    squares[row],
                    float(counts[row]),
                )
                results[i] = ChunkResult(ChunkScores(logits[row], probabilities[row]), state)
        return results  # type: ignore[return-value]  # every index was filled

    def start(self) -> AcousticStream:
        """A new utterance's acoustic stream."""
        return AcousticStream(self)


@dataclass(frozen=True)
class ChunkScores:
    """Scores of the frames a call completed: (n, n_classes) logits and probabilities."""

    logits: np.ndarray
    probabilities: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(self.logits.shape[0])


@dataclass(frozen=True)
class StreamState:
    """What one stream carries from one run of the graph to the next (its batch row of the
    graph's state inputs; `BiRNN.forward_chunk`'s `ChunkState`)."""

    context: np.ndarray  # (K, numcep) normalised frames carried over
    state_h: np.ndarray  # (n_hidden,)
    state_c: np.ndarray  # (n_hidden,)
    frame_sum: np.ndarray  # (numcep,) sum of the real MFCC frames so far
    frame_squares: np.ndarray  # (numcep,) sum of their squares
    frame_count: float  # how many real frames the sums hold

    @classmethod
    def start(cls, numcep: int, numcontext: int, n_hidden: int) -> StreamState:
        """A new stream: numcontext zero frames (the left edge's padding), zeros elsewhere."""
        zeros = np.zeros(n_hidden, np.float32)
        return cls(
            np.zeros((numcontext, numcep), np.float32),
            zeros,
            zeros,
            np.zeros(numcep, np.float32),
            np.zeros(numcep, np.float32),
            0.0,
        )


@dataclass(frozen=True)
class ChunkCall:
    """One stream's inputs to one run of the streaming graph (a batch row)."""

    features: np.ndarray  # (n, numcep) raw MFCC frames, end padding included
    n_real: int  # frames of `features` that are audio; the rest are the end's zero frames
    state: StreamState

    @property
    def shape_key(self) -> tuple[int, int]:
        """Calls with equal keys can share one run: same chunk and context lengths."""
        return len(self.features), len(self.state.context)


@dataclass(frozen=True)
class ChunkResult:
    """One batch row of the graph's outputs."""

    scores: ChunkScores
    state: StreamState


class AcousticStream:
    """One utterance through the streaming graph; holds its carried state and pending frames.

    Work per `accept` depends on the chunk only, never on how long the stream already is: the
    state is a fixed 2*numcontext frames, (h, c) and the running sums. `accept`
    and `flush` run the graph themselves; a server batching many streams uses
    `take`/`take_flush`, runs the calls with `StreamingModel.run` and hands each result to
    `apply`.
    """

    def __init__(self, model: StreamingModel) -> None:
        features = model.metadata.features
        self.model = model
        self.numcep = features.numcep
        self.numcontext = features.numcontext
        self.state = StreamState.start(self.numcep, self.numcontext, model.metadata.n_hidden)
        self.pending = np.zeros((0, self.numcep), np.float32)
        self.frames_in = 0  # MFCC frames accepted so far
        self.frames_out = 0  # frames scored so far (frames_in - numcontext once running)
        self.finished = False

    def accept(self, frames: np.ndarray) -> ChunkScores | None:
        """Add (n, numcep) MFCC frames; scores of the frames now complete, or None if none is."""
        return self._run(self.take(frames))

    def flush(self) -> ChunkScores | None:
        """End of the utterance: scores of the last numcontext frames (and any pending ones)."""
        return self._run(self.take_flush())

    def take(self, frames: np.ndarray) -> ChunkCall | None:
        """Add frames; the call that scores the frames now complete, or None if none is."""
        if self.finished:
            raise RuntimeError("the stream is finished; start a new one")
        frames = np.asarray(frames, np.float32).reshape(-1, self.numcep)
        self.pending = np.concatenate([self.pending, frames]) if len(self.pending) else frames
        self.frames_in += len(frames)
        if len(self.state.context) + len(self.pending) <= 2 * self.numcontext:
            return None
        features, self.pending = self.pending, self.pending[:0]
        return ChunkCall(features, len(features), self.state)

    def take_flush(self) -> ChunkCall | None:
        """The call that scores the rest, with numcontext end frames; the stream then ends."""
        if self.finished:
            raise RuntimeError("the stream is finished; start a new one")
        self.finished = True
        if self.frames_in == 0:
            return None
        padding = np.zeros((self.numcontext, self.numcep), np.float32)
        features = np.concatenate([self.pending, padding])
        return ChunkCall(features, len(self.pending), self.state)

    def apply(self, result: ChunkResult) -> ChunkScores:
        """Carry a run's new state; its scores."""
        self.state = result.state
        self.frames_out += result.scores.n_frames
        return result.scores

    def _run(self, call: ChunkCall | None) -> ChunkScores | None:
        return None if call is None else self.apply(self.model.run([call])[0])


def stream_scores(model: StreamingModel, features: np.ndarray, chunk_frames: int) -> ChunkScores:
    """A whole (T, numcep) utterance fed `chunk_frames` at a time: (T, n_classes) scores.

    What the export's parity check compares with the whole-utterance model.
    """
    stream = AcousticStream(model)
    parts = [
        stream.accept(features[i : i + chunk_frames]) for i in range(0, len(features), chunk_frames)
    ]
    parts.append(stream.flush())
    done = [p for p in parts if p is not None]
    return ChunkScores(
        np.concatenate([p.logits for p in done]), np.concatenate([p.probabilities for p in done])
    )
