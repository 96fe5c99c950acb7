"""Transcripts with timings and confidence: DeepSpeech 0.9.3's metadata, built from a CTC path.

Every decoder ends in a *path*: one label per frame (greedy's argmax, or the alignment the beam
search kept for a hypothesis). A path says where each character was emitted, and the model's
probabilities at those frames say how sure it was, so one function here (`candidate_from_path`)
turns any path into a `CandidateTranscript` for greedy and beam + LM alike:

- a token per emitted character (a label that is not blank and not a repeat of the frame
  before), at `timestep` (frame index) and `start_time` (seconds);
- a token's confidence: the largest probability its label reaches over the frames it holds
  (CTC emits each character as a spike; the spike's height is how sure the model was);
- a word per run of characters between spaces: `start_time` is its first character's frame,
  `end_time` the end of its last character's frames, `confidence` its least sure character;
- the transcript's `confidence`: its least sure word (1.0 for an empty transcript), so one low
  word flags the utterance; `score` is the search's own log score, which orders N-best lists.

Times are the frame's index times the model's frame step (10 ms times the feature stride),
plus `offset` seconds: where the segment started in a longer recording, and the model's timing
correction (`DecoderConfig.timing_offset_ms`: a BiRNN's spikes can lead or lag the words).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from deepspeech.decoding.decoders import Alignment, Decoder
from deepspeech.decoding.hot_words import HotWords
from deepspeech.text import Alphabet


@dataclass(frozen=True)
class TokenMetadata:
    """One emitted character (DeepSpeech 0.9.3's `TokenMetadata`)."""

    text: str
    timestep: int  # frame index within the decoded audio
    start_time: float  # seconds
    confidence: float = 1.0  # the label's peak probability over its frames


@dataclass(frozen=True)
class WordMetadata:
    """One word with where it was said and how sure the model was."""

    word: str
    start_time: float
    end_time: float
    confidence: float

    def as_json(self) -> dict[str, object]:
        """The HTTP form: `{"word", "start", "end", "confidence"}`, times in seconds."""
        return {
            "word": self.word,
            "start": round(self.start_time, 3),
            "end": round(self.end_time, 3),
            "confidence": round(self.confidence, 4),
        }


@dataclass(frozen=True)
class CandidateTranscript:
    """One hypothesis: its characters, words, confidence and search score."""

    tokens: tuple[TokenMetadata, ...]
    words: tuple[WordMetadata, ...]
    confidence: float
    score: float = 0.0  # the decoder's log score (acoustic + LM); higher is better

    @property
    def text(self) -> str:
        return "".join(token.text for token in self.tokens)

    def shifted(self, seconds: float, timesteps: int = 0) -> CandidateTranscript:
        """The same transcript `seconds` (and `timesteps` frames) later: a segment's times
        mapped onto the recording it was cut from."""
        if seconds == 0 and timesteps == 0:
            return self
        tokens = tuple(
            replace(t, timestep=t.timestep + timesteps, start_time=t.start_time + seconds)
            for t in self.tokens
        )
        words = tuple(
            replace(w, start_time=w.start_time + seconds, end_time=w.end_time + seconds)
            for w in self.words
        )
        return replace(self, tokens=tokens, words=words)


@dataclass(frozen=True)
class Metadata:
    """DeepSpeech 0.9.3's `Metadata`: the candidate transcripts, best first."""

    transcripts: tuple[CandidateTranscript, ...] = field(default_factory=tuple)

    @property
    def best(self) -> CandidateTranscript:
        return self.transcripts[0] if self.transcripts else EMPTY_TRANSCRIPT

    @property
    def text(self) -> str:
        return self.best.text


EMPTY_TRANSCRIPT = CandidateTranscript(tokens=(), words=(), confidence=1.0, score=0.0)


def candidate_from_path(
    path: Sequence[int] | np.ndarray,
    probabilities: np.ndarray,
    alphabet: Alphabet,
    frame_seconds: float,
    *,
    score: float = 0.0,
    offset: float = 0.0,
) -> CandidateTranscript:
    """A frame-wise label path and the (n_frames,) probability of its label at each frame ->
    the transcript with token and word timings and confidences.

    Spaces are tokens as in DeepSpeech, but leading, trailing and repeated spaces are dropped,
    so the tokens' text is the transcript's text exactly.
    """
    labels = np.asarray(path, dtype=np.int64)
    n_frames = len(labels)
    if n_frames == 0:
        return replace(EMPTY_TRANSCRIPT, score=score)
    starts = np.flatnonzero(
        (labels != alphabet.blank_index) & np.concatenate([[True], labels[1:] != labels[:-1]])
    )
    # A token holds its frames until the label changes.
    changes = np.flatnonzero(np.concatenate([labels[1:] != labels[:-1], [True]])) + 1
    ends = changes[np.searchsorted(changes, starts, side="right")]
    space = alphabet.label_of(" ") if " " in alphabet else -1
    tokens: list[TokenMetadata] = []
    token_ends: list[int] = []
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        label = int(labels[start])
        if label == space and (not tokens or tokens[-1].text == " "):
            continue
        peak = float(probabilities[start:end].max())
        tokens.append(
            TokenMetadata(alphabet.labels[label], start, start * frame_seconds + offset, peak)
        )
        token_ends.append(end)
    while tokens and tokens[-1].text == " ":
        tokens.pop()
        token_ends.pop()
    words = _words(tokens, token_ends, frame_seconds, offset)
    confidence = min((w.confidence for w in words), default=1.0)
    return CandidateTranscript(tuple(tokens), words, confidence, score)


def _words(
    tokens: list[TokenMetadata], token_ends: list[int], frame_seconds: float, offset: float
) -> tuple[WordMetadata, ...]:
    words: list[WordMetadata] = []
    first = 0
    for i in range(len(tokens) + 1):
        if i < len(tokens) and tokens[i].text != " ":
            continue
        if i > first:
            letters = tokens[first:i]
            words.append(
                WordMetadata(
                    "".join(t.text for t in letters),
                    letters[0].start_time,
                    token_ends[i - 1] * frame_seconds + offset,
                    min(t.confidence for t in letters),
                )
            )
        first = i + 1
    return tuple(words)


def metadata_of(
    alignments: Sequence[Alignment],
    alphabet: Alphabet,
    frame_seconds: float,
    *,
    offset: float = 0.0,
) -> Metadata:
    """A decoder's alignments (best first) -> Metadata."""
    return Metadata(
        tuple(
            candidate_from_path(
                a.path, a.probabilities, alphabet, frame_seconds, score=a.score, offset=offset
            )
            for a in alignments
        )
    )


def decode_with_metadata(
    decoder: Decoder,
    scores: np.ndarray,
    alphabet: Alphabet,
    frame_seconds: float,
    *,
    length: int | None = None,
    num_results: int = 1,
    hot_words: HotWords | None = None,
    offset: float = 0.0,
) -> Metadata:
    """One utterance's (n_frames, n_classes) scores -> its N-best timed transcripts."""
    scores = scores[: scores.shape[0] if length is None else length]
    alignments = decoder.alignments(scores, num_results=num_results, hot_words=hot_words)
    return metadata_of(alignments, alphabet, frame_seconds, offset=offset)
