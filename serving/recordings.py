"""Files and recordings of any length to timed transcripts: what `transcribe` and the server
return.

A clip up to `VadSettings.max_segment_s` long is one utterance: read whole, featurized and
decoded in one piece (batched with other clips), exactly as the model was trained. A longer
recording is read block by block and cut at pauses by the voice activity detector
(`deepspeech.vad`); its segments are decoded in batches and each segment's token and word times
are shifted by where the segment starts, so they are times in the recording. Memory holds one
batch of segments whatever the recording's length.

`FileTranscript` is the one result type: its segments (one for a clip), and from them the text,
the words, the confidence and, for a clip, the N-best alternatives.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from deepspeech.audio import SAMPLE_RATE, AudioSource, read_wav_info
from deepspeech.decoding.transcript import CandidateTranscript, Metadata, WordMetadata
from deepspeech.errors import DeepSpeechError
from deepspeech.parallel import available_cpus
from deepspeech.vad import AudioSegment, VadSettings, speech_segments
from serving.inference import DecodeOptions, OfflineRecognizer, read_audio

TRANSCRIBE_CHUNK = 64  # clips featurized at a time by `transcribe_files` (bounds memory)


@dataclass(frozen=True)
class SegmentTranscript:
    """A stretch of a recording (a whole clip, or a piece cut at pauses) and its transcripts,
    times in seconds from the start of the recording."""

    start: float
    end: float
    metadata: Metadata

    @property
    def text(self) -> str:
        return self.metadata.text

    def as_json(self) -> dict[str, object]:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "text": self.text}


@dataclass(frozen=True)
class FileTranscript:
    """One file's outcome: its transcribed segments, or the error that stopped it."""

    path: str
    duration_s: float
    segments: tuple[SegmentTranscript, ...] = ()
    error: DeepSpeechError | None = None
    cut: bool = False  # cut at pauses (a recording longer than one segment)

    @classmethod
    def failed(cls, path: str, error: DeepSpeechError) -> FileTranscript:
        return cls(path, 0.0, error=error)

    @classmethod
    def whole(cls, path: str, duration_s: float, metadata: Metadata) -> FileTranscript:
        return cls(path, duration_s, (SegmentTranscript(0.0, duration_s, metadata),))

    @property
    def text(self) -> str | None:
        if self.error is not None:
            return None
        return " ".join(s.text for s in self.segments if s.text)

    @property
    def words(self) -> tuple[WordMetadata, ...]:
        return tuple(w for s in self.segments for w in s.metadata.best.words)

    @property
    def confidence(self) -> float:
        """The least sure segment's confidence (its least sure word); 1.0 when nothing was said."""
        return min((s.metadata.best.confidence for s in self.segments), default=1.0)

    @property
    def alternatives(self) -> tuple[CandidateTranscript, ...]:
        """N-best of a clip; a recording cut at pauses has only its best, segment by segment."""
        if len(self.segments) == 1:
            return self.segments[0].metadata.transcripts
        return ()


def transcribe_recording(
    model: OfflineRecognizer,
    source: AudioSource,
    *,
    name: str | None = None,
    options: DecodeOptions = DecodeOptions(),
    vad: VadSettings = VadSettings(),
    batch_size: int = 8,
    progress: Callable[[float], None] | None = None,
) -> FileTranscript:
    """A recording of any length, cut at pauses, decoded `batch_size` segments at a time.

    `progress(seconds)` hears each block of audio read. Raises AudioFormatError for a file
    that cannot be read.
    """
    label = name or (os.fspath(source) if isinstance(source, str | os.PathLike) else "<upload>")
    info = read_wav_info(source, name=label)
    if hasattr(source, "seek"):
        source.seek(0)
    segments: list[SegmentTranscript] = []
    for batch in _batched(speech_segments(source, settings=vad, progress=progress, name=label),
                          batch_size):  # fmt: skip
        segments.extend(decode_segments(model, batch, options))
    return FileTranscript(label, info.duration_seconds, tuple(segments), cut=True)


def decode_segments(
    model: OfflineRecognizer, segments: Sequence[AudioSegment], options: DecodeOptions
) -> list[SegmentTranscript]:
    """One model call over `segments`; their times moved to where each starts."""
    features = [model.features(s.audio) for s in segments]
    each = [replace(options, offset=options.offset + s.start) for s in segments]
    found = model.transcribe_batch(features, each)
    return [SegmentTranscript(s.start, s.end, m) for s, m in zip(segments, found, strict=True)]


def transcribe_files(
    model: OfflineRecognizer,
    paths: Sequence[str | os.PathLike[str]],
    *,
    batch_size: int = 8,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    options: DecodeOptions = DecodeOptions(),
    vad: VadSettings = VadSettings(),
    on_audio: Callable[[float], None] | None = None,
) -> Iterator[FileTranscript]:
    """Transcribe files in order; a bad file yields its error and the others go on.

    Clips are read and featurized by a thread pool, TRANSCRIBE_CHUNK at a time, sorted by
    length into batches of `batch_size` (little padding). A file longer than one segment is
    transcribed as a recording (`transcribe_recording`) when its turn comes. `progress(1)`
    hears each file done; `on_audio(seconds)` each block of a long recording read.
    """
    with ThreadPoolExecutor(workers or available_cpus()) as pool:
        for start in range(0, len(paths), TRANSCRIBE_CHUNK):
            chunk = [os.fspath(p) for p in paths[start : start + TRANSCRIBE_CHUNK]]
            prepared = list(pool.map(lambda p: _prepare_clip(model, p, vad), chunk))
            clips = [i for i, item in enumerate(prepared) if isinstance(item, tuple)]
            clips.sort(key=lambda i: prepared[i][1].shape[0])  # type: ignore[index]
            done: dict[int, FileTranscript] = {}
            for batch in _batched(clips, batch_size):
                found = model.transcribe_batch(
                    [prepared[i][1] for i in batch],  # type: ignore[index]
                    [options] * len(batch),
                )
                for i, metadata in zip(batch, found, strict=True):
                    done[i] = FileTranscript.whole(chunk[i], prepared[i][0], metadata)  # type: ignore[index]
            for i, item in enumerate(prepared):
                if isinstance(item, FileTranscript):
                    yield item
                elif item is None:
                    yield _recording(model, chunk[i], options, vad, batch_size, on_audio)
                else:
                    yield done[i]
                if progress:
                    progress(1)


def _prepare_clip(
    model: OfflineRecognizer, path: str, vad: VadSettings
) -> tuple[float, np.ndarray] | FileTranscript | None:
    """(seconds, features) of a clip; None for a recording longer than one segment (read
    later, in blocks); a FileTranscript holding the error of a file that cannot be read."""
    try:
        if read_wav_info(path).duration_seconds > vad.max_segment_s:
            return None
        audio = read_audio(path)
        return len(audio) / SAMPLE_RATE, model.features(audio)
    except DeepSpeechError as e:
        return FileTranscript.failed(path, e)


def _recording(
    model: OfflineRecognizer,
    path: str,
    options: DecodeOptions,
    vad: VadSettings,
    batch_size: int,
    on_audio: Callable[[float], None] | None,
) -> FileTranscript:
    try:
        return transcribe_recording(
            model, path, options=options, vad=vad, batch_size=batch_size, progress=on_audio
        )
    except DeepSpeechError as e:
        return FileTranscript.failed(path, e)


def _batched(items: Iterable[AudioSegment] | Iterable[int], size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def transcript_json(
    result: FileTranscript, *, words: bool, alternatives: bool
) -> dict[str, object]:
    """The JSON of a transcript, the same from `transcribe --format json` and the HTTP API:
    `text` and `duration_s`; with `words`, `confidence`, `words` and (for a recording cut at
    pauses) `segments`; with `alternatives`, the N-best `[{"text", "confidence"}]`."""
    record: dict[str, object] = {"text": result.text, "duration_s": round(result.duration_s, 3)}
    if words:
        record["confidence"] = round(result.confidence, 4)
        record["words"] = [w.as_json() for w in result.words]
        if result.cut:
            record["segments"] = [s.as_json() for s in result.segments]
    if alternatives:
        found = result.alternatives or tuple(s.metadata.best for s in result.segments[:1])
        record["alternatives"] = [
            {"text": t.text, "confidence": round(t.confidence, 4)} for t in found
        ]
    return record
