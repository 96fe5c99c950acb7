"""Streaming speech to text: DeepSpeech 0.9.3's stream API in snake case, on the streaming graph.

    model = SpeechModel("stream.onnx")          # `deepspeech export --streaming`
    stream = model.create_stream()
    stream.feed_audio_content(int16_samples)    # any length, as it arrives
    stream.intermediate_decode()                # partial text so far
    stream.finish_stream()                      # final text; the stream is done
    # or, with token and word timings, confidences and (beam decoder) N-best:
    stream.intermediate_decode_with_metadata(); stream.finish_stream_with_metadata(num_results=3)

Each piece of audio goes through three incremental stages, none of which looks back at the
whole stream: MFCC (`deepspeech.audio.MfccStream`: window overlap kept across pieces), the
acoustic model (the runtime's `AcousticStream`: context frames and LSTM state carried) and
greedy CTC decoding (`deepspeech.decoding.streaming.GreedyStreamDecoder`). Each stage equals
its whole-utterance counterpart, so `finish_stream` returns the offline transcript.
onnxruntime, no TensorFlow.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from deepspeech.audio import PCM16_SCALE, SAMPLE_RATE, MfccStream
from deepspeech.decoding.decoders import DecoderConfig, make_decoder
from deepspeech.decoding.hot_words import HotWords
from deepspeech.decoding.streaming import stream_decoder
from deepspeech.decoding.transcript import Metadata, metadata_of
from deepspeech.errors import AudioFormatError, DeepSpeechError
from deepspeech.runtime.streaming import (
    STREAM_THREADS,
    ChunkCall,
    ChunkResult,
    ChunkScores,
    StreamingModel,
)
from serving.inference import HotWordMethods, read_audio, resolve_model_source
from serving.recordings import FileTranscript

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_MS = 20  # what a live source delivers at a time (a WebRTC/AudioWorklet frame)


class SpeechModel(HotWordMethods):
    """A streaming model file (or models:/NAME/VERSION), ready to open streams.

    The acoustic model is the runtime's `StreamingModel`: one onnxruntime session serves every
    stream, and each `Stream` holds only its own small state, so streams are cheap to create.
    Greedy decoding unless `decoder` asks for beam search (its LM is loaded here, once, and
    shared by the streams).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        threads: int = STREAM_THREADS,
        tracking_uri: str | None = None,
        decoder: DecoderConfig | None = None,
    ) -> None:
        location = resolve_model_source(path, tracking_uri)
        self.model = StreamingModel.load(location.path, threads=threads, label=os.fspath(path))
        self.metadata = self.model.metadata
        self.decoder_config = decoder or DecoderConfig()  # greedy unless told
        self.decoder = make_decoder(self.decoder_config, self.metadata.alphabet, "probabilities")
        self.name = location.name or self.metadata.model_name
        self.version = location.version or self.metadata.model_version

    @property
    def sample_rate(self) -> int:
        """Samples per second the streams expect (16000)."""
        return self.metadata.sample_rate

    @property
    def model_id(self) -> str:
        return f"{self.name}/{self.version}"

    def create_stream(self, hot_words: HotWords | None = None) -> Stream:
        """A new stream: feed it audio, read partial text, finish it for the final text.
        `hot_words` (checked, e.g. by `parse_hot_words`) add to the model's for this stream."""
        return Stream(self, hot_words)

    def stt(self, audio: np.ndarray) -> str:
        """Transcript of a whole (n,) int16 16 kHz signal, through the streaming path."""
        stream = self.create_stream()
        stream.feed_audio_content(audio)
        return stream.finish_stream()

    def stt_with_metadata(self, audio: np.ndarray, num_results: int = 1) -> Metadata:
        """`stt` with token and word timings, confidences and up to `num_results` hypotheses."""
        stream = self.create_stream()
        stream.feed_audio_content(audio)
        return stream.finish_stream_with_metadata(num_results)


class Stream:
    """One utterance in progress. Not thread-safe: feed it from one thread at a time."""

    def __init__(self, model: SpeechModel, hot_words: HotWords | None = None) -> None:
        features = model.metadata.features
        self._alphabet = model.metadata.alphabet
        self._frame_seconds = features.frame_seconds
        self._mfcc = MfccStream(features.numcep, features.stride)
        self._acoustic = model.model.start()
        self._decoder = stream_decoder(model.decoder, hot_words)
        self.n_samples = 0
        self.finished = False

    @property
    def duration_s(self) -> float:
        """Seconds of audio fed so far."""
        return self.n_samples / SAMPLE_RATE

    def feed_audio_content(self, audio: np.ndarray) -> None:
        """Add (n,) int16 samples at 16 kHz mono (any n, including 0)."""
        call = self.take_model_call(audio)
        if call is not None:
            self.apply_model_result(self._acoustic.model.run([call])[0])

    def take_model_call(self, audio: np.ndarray) -> ChunkCall | None:
        """`feed_audio_content` up to the model: MFCC of the samples, and the model call they
        complete (None if no frame is complete yet). A server runs the calls of many streams
        in one batch (`StreamingModel.run`) and hands each result to `apply_model_result`."""
        self._check_open()
        audio = np.asarray(audio)
        if audio.dtype != np.int16 or audio.ndim != 1:
            raise AudioFormatError(
                f"expected (n,) int16 samples at {SAMPLE_RATE} Hz, got {audio.shape} "
                f"{audio.dtype}; convert to 16-bit mono PCM first"
            )
        if len(audio) == 0:
            return None
        self.n_samples += len(audio)
        frames = self._mfcc.accept(audio.astype(np.float64) / PCM16_SCALE)
        return self._acoustic.take(frames) if len(frames) else None

    def apply_model_result(self, result: ChunkResult) -> None:
        """The rest of `feed_audio_content`: carry the model state, decode the new frames."""
        self._decode(self._acoustic.apply(result))

    def intermediate_decode(self) -> str:
        """The transcript so far (frames up to numcontext behind the audio fed)."""
        self._check_open()
        return self._decoder.text()

    def intermediate_decode_with_metadata(self) -> Metadata:
        """The best transcript so far, with token and word timings and confidences."""
        self._check_open()
        return self._metadata(1)

    def finish_stream(self) -> str:
        """Flush the last frames and return the final transcript; the stream is then closed."""
        self._check_open()
        self.finished = True
        frames = self._mfcc.finish()
        if len(frames):
            self._decode(self._acoustic.accept(frames))
        self._decode(self._acoustic.flush())
        return self._decoder.finish()

    def finish_stream_with_metadata(self, num_results: int = 1) -> Metadata:
        """`finish_stream` with timings, confidences and up to `num_results` hypotheses."""
        self.finish_stream()
        return self._metadata(num_results)

    def _metadata(self, num_results: int) -> Metadata:
        return metadata_of(
            self._decoder.alignments(num_results), self._alphabet, self._frame_seconds
        )

    def _decode(self, scores: ChunkScores | None) -> None:
        # Probabilities, as the whole-utterance server decodes: softmax can round two logits
        # to the same probability, and the transcripts must agree exactly.
        if scores is not None:
            self._decoder.accept(scores.probabilities)

    def _check_open(self) -> None:
        if self.finished:
            raise RuntimeError("the stream is finished; create a new one")


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """(n,) float in [-1, 1] -> (n,) int16: exact for audio read from a 16-bit WAV."""
    return np.clip(np.round(np.asarray(audio) * PCM16_SCALE), -32768, 32767).astype(np.int16)


def stream_files(
    model: SpeechModel,
    paths: Sequence[str | os.PathLike[str]],
    *,
    chunk_ms: float = DEFAULT_CHUNK_MS,
    on_partial: Callable[[str, str], None] | None = None,
    progress: Callable[[int], None] | None = None,
    num_results: int = 1,
) -> Iterator[FileTranscript]:
    """Transcribe files through the streaming path, `chunk_ms` of audio per feed, in order.

    `on_partial(path, text)` hears each partial transcript that differs from the last one.
    A bad file yields its error and the others go on, as `transcribe_files` does.
    """
    chunk = max(1, round(chunk_ms * model.sample_rate / 1000))
    for path in map(os.fspath, paths):
        try:
            audio = to_pcm16(read_audio(path))
        except DeepSpeechError as e:
            yield FileTranscript.failed(path, e)
            if progress:
                progress(1)
            continue
        stream = model.create_stream()
        partial = ""
        for start in range(0, len(audio), chunk):
            stream.feed_audio_content(audio[start : start + chunk])
            if on_partial and (text := stream.intermediate_decode()) != partial:
                partial = text
                on_partial(path, text)
        metadata = stream.finish_stream_with_metadata(num_results)
        yield FileTranscript.whole(path, stream.duration_s, metadata)
        if progress:
            progress(1)
