"""Recordings of any length, cut at pauses into speech segments the model can take one by one.

The model reads a whole clip at once, so an hour of audio must be cut first, and cutting at
pauses keeps words whole. The WAV file is read in blocks and converted to 16 kHz mono as it
goes (`audio.to_16k_mono` on each block with enough neighbouring samples that the result is
the whole-file conversion), so memory stays bounded whatever the file's length: one open
segment (at most `max_segment_s` plus padding) and one block.

Speech is found by WebRTC's voice activity detector (`webrtcvad`): a small C library with no
model file, deterministic, and thousands of times faster than real time on one core. It
labels each 30 ms frame of 16-bit PCM speech or not; `SpeechSegmenter` turns the labels into
segments:

- a segment opens at a speech frame, with `padding_ms` of the audio before it kept, so word
  onsets are not clipped;
- it closes at a pause of `min_pause_ms`, keeping `padding_ms` after the last speech frame
  (when the pause is shorter than two paddings the two segments share it half and half, so
  segments never overlap);
- a segment reaching `max_segment_s` without such a pause is cut at the quietest 30 ms frame
  of its last few seconds, which bounds memory and the model's input;
- a segment with less than `min_speech_ms` of speech frames (a click, a cough) is dropped.

A segment's `start` is its first sample's index in the 16 kHz recording divided by
SAMPLE_RATE, exactly, so times the model gives within a segment map back onto the recording.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import webrtcvad
from scipy.signal import butter, sosfilt

from deepspeech.audio import (
    PCM16_SCALE,
    SAMPLE_RATE,
    WAV_FORMATS,
    WAV_SUBTYPES,
    AudioSource,
    check_header,
    open_audio,
    source_name,
    to_16k_mono,
)
from deepspeech.config import check_positive, setting
from deepspeech.errors import AudioFormatError, ConfigError

logger = logging.getLogger(__name__)

FRAME_MS = 30  # webrtcvad takes 10, 20 or 30 ms frames; 30 ms makes the fewest calls
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000  # 480
CUT_SEARCH_SECONDS = 4.0  # an over-long segment is cut at the quietest frame of its last 4 s
# The noise floor is the 10th percentile of the last 5 s of frame energies: speech with
# pauses spends more than a tenth of any 5 s in them, and the floor follows a changing room.
FLOOR_WINDOW_FRAMES = 5 * 1000 // FRAME_MS
FLOOR_PERCENTILE = 10
# webrtcvad adapts its noise and speech models over the whole stream, and over a long
# recording they drift: in an hour of espeak clips joined by pauses of -30 dB pink noise, the
# share of clips cut as one segment fell from 100 % in the first quarter to 86 % in the last
# (speech onsets missed, clips split), and the last 20 minutes' WER doubled. So the detector
# is made afresh at the first segment end after each minute: 99-100 % in every quarter.
# Afresh at every segment end cost the first quarter (98 %): the fresh model takes a few
# frames of a pause to settle.
RENEW_DETECTOR_SECONDS = 60.0
READ_BLOCK_SECONDS = 1.0  # audio decoded per read: memory is one block plus one segment
MIN_SEGMENT_SECONDS = 1.0  # the smallest max_segment_s: the cut search needs some frames
AGGRESSIVENESS_LEVELS = (0, 1, 2, 3)  # webrtcvad's modes, least to most eager to call noise
# The detector hears from the telephone band's lower edge up: speech stays intelligible above
# 300 Hz, while hum, traffic and fans put most of their energy below it. Measured on espeak
# clips joined by pauses (42 clips per condition): without the filter, webrtcvad (mode 3) kept
# 16 of 42 clips apart under brown noise and 0 under mains hum at 15 dB SNR, merging the rest;
# with it, 40 and 42 of 42 at 10 dB. Only the detector hears the filtered audio.
DETECTOR_HIGHPASS_HZ = 300.0
DETECTOR_HIGHPASS_ORDER = 4


@dataclass(frozen=True)
class VadSettings:
    """Where a long recording is cut into segments (see the module docstring)."""

    aggressiveness: int = setting(
        3, "webrtcvad mode 0-3: higher calls more of the noise non-speech."
    )
    min_pause_ms: int = setting(300, "A pause at least this long (ms) ends a speech segment.")
    max_segment_s: float = setting(
        20.0, "Longest segment (s); longer speech is cut at its quietest frame."
    )
    padding_ms: int = setting(200, "Audio (ms) kept before and after each segment's speech.")
    min_speech_ms: int = setting(150, "Segments with less speech than this (ms) are dropped.")
    # webrtcvad calls steady pink noise 30 dB under the speech "speech" often enough to join
    # clips across 0.5-1.5 s pauses: 70 segments for 120 clips. With the floor of the last 5 s
    # and 8 dB: 215 of 216 clips kept apart where each pause's noise follows its clip's level
    # (6 dB: 211; 10 s of floor: 208), 4.05 % WER against 5.33 %. In 15 dB white noise a
    # clip's last 120 ms, faded under the margin, are left out.
    floor_margin_db: float = setting(
        8.0,
        "A frame is speech only this far (dB) above the recording's noise floor (the quietest "
        "tenth of the last 5 s) as well as by webrtcvad; 0 trusts webrtcvad alone.",
    )

    def __post_init__(self) -> None:
        if self.aggressiveness not in AGGRESSIVENESS_LEVELS:
            raise ConfigError(
                f"aggressiveness must be one of {AGGRESSIVENESS_LEVELS}, got {self.aggressiveness}"
            )
        check_positive(self, "min_pause_ms", "max_segment_s")
        if self.max_segment_s < MIN_SEGMENT_SECONDS:
            raise ConfigError(
                f"max_segment_s must be at least {MIN_SEGMENT_SECONDS}, got {self.max_segment_s}"
            )
        for name in ("padding_ms", "min_speech_ms", "floor_margin_db"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True, eq=False)
class AudioSegment:
    """A stretch of speech and where it lies in the recording."""

    start: float  # seconds from the start of the recording: first sample index / SAMPLE_RATE
    audio: np.ndarray  # (n,) float32 16 kHz mono samples of the segment

    @property
    def end(self) -> float:
        """Seconds from the start of the recording to the end of the segment (the sample after
        its last, divided by SAMPLE_RATE, as exact as `start`)."""
        return (round(self.start * SAMPLE_RATE) + len(self.audio)) / SAMPLE_RATE


class SpeechSegmenter:
    """16 kHz mono audio fed in pieces of any size -> speech segments, as soon as they close.

    The one home of the segmenting rules, for files (`speech_segments`) and arrays
    (`speech_segments_of_array`) alike. Holds the open segment's frames, or while no segment
    is open the last `padding_ms` of audio, plus the part of a frame not yet complete.
    """

    def __init__(self, settings: VadSettings = VadSettings()) -> None:
        self._vad = webrtcvad.Vad(settings.aggressiveness)
        self._aggressiveness = settings.aggressiveness
        self._renewed = 0  # the sample where the detector was last made afresh
        self._floor_ratio = 10 ** (settings.floor_margin_db / 10) if settings.floor_margin_db else 0
        self._recent = np.zeros(0)  # energies of the last FLOOR_WINDOW_FRAMES frames
        self._min_speech_frames = math.ceil(settings.min_speech_ms / FRAME_MS)
        self._pad = settings.padding_ms * SAMPLE_RATE // 1000
        self._min_pause = settings.min_pause_ms * SAMPLE_RATE // 1000
        self._max = round(settings.max_segment_s * SAMPLE_RATE)
        self._search = min(round(CUT_SEARCH_SECONDS * SAMPLE_RATE), self._max // 2)
        self._highpass = butter(
            DETECTOR_HIGHPASS_ORDER, DETECTOR_HIGHPASS_HZ, "highpass", fs=SAMPLE_RATE, output="sos"
        )
        self._highpass_state = np.zeros((len(self._highpass), 2))  # at rest before the audio
        self._tail = np.zeros(0, np.float32)  # samples not yet a whole frame
        self._heard = np.zeros(0, np.float64)  # the same samples high-passed
        self._frames: list[np.ndarray] = []  # buffered frames; the first is frame `_first`
        self._speech: list[bool] = []  # webrtcvad's label of each buffered frame
        self._energy: list[float] = []  # mean square of each buffered frame, high-passed
        self._first = 0
        self._end = 0  # samples labelled so far
        self._floor = 0  # the last segment's end: the next one starts no earlier
        self._start: int | None = None  # first sample of the open segment
        self._last_speech_end = 0  # end of the open segment's last speech frame

    def accept(self, audio: np.ndarray) -> list[AudioSegment]:
        """(n,) float samples in [-1, 1] -> the segments they close (usually none)."""
        audio = np.asarray(audio, np.float32).reshape(-1)
        if len(audio) == 0:
            return []
        heard, self._highpass_state = sosfilt(self._highpass, audio, zi=self._highpass_state)
        x = np.concatenate([self._tail, audio])
        heard = np.concatenate([self._heard, heard])
        n_whole = len(x) // FRAME_SAMPLES * FRAME_SAMPLES
        speech, energy = self._label(heard[:n_whole])
        closed: list[AudioSegment] = []
        for k in range(n_whole // FRAME_SAMPLES):
            frame = x[k * FRAME_SAMPLES : (k + 1) * FRAME_SAMPLES]
            closed += self._add_frame(frame, speech[k], energy[k])
        self._tail, self._heard = x[n_whole:].copy(), heard[n_whole:].copy()
        return closed

    def finish(self) -> list[AudioSegment]:
        """The end of the audio: label the last partial frame (zero-padded) and close."""
        closed: list[AudioSegment] = []
        if len(self._tail):
            padded = np.pad(self._heard, (0, FRAME_SAMPLES - len(self._heard)))
            (speech,), (energy,) = self._label(padded)
            closed += self._add_frame(self._tail, speech, energy)
            self._tail, self._heard = np.zeros(0, np.float32), np.zeros(0, np.float64)
        if self._start is not None:
            closed += self._close(min(self._last_speech_end + self._pad, self._end))
        return closed

    def _label(self, heard: np.ndarray) -> tuple[list[bool], list[float]]:
        """Whole frames of high-passed audio -> webrtcvad's label and the mean square of each."""
        pcm = _pcm16_bytes(heard)
        frame_bytes = 2 * FRAME_SAMPLES
        speech = [
            self._vad.is_speech(pcm[i : i + frame_bytes], SAMPLE_RATE)
            for i in range(0, len(pcm), frame_bytes)
        ]
        energy = np.mean(np.square(heard.reshape(-1, FRAME_SAMPLES)), axis=1)
        if self._floor_ratio:
            speech = [
                s and e > self._noise_floor(e) * self._floor_ratio
                for s, e in zip(speech, energy, strict=True)
            ]
        return speech, energy.tolist()

    def _noise_floor(self, energy: float) -> float:
        """The recording's noise floor after one more frame: the quietest tenth of the recent
        frames' energies. Steady noise sits at it; speech rises well above."""
        self._recent = np.append(self._recent[-(FLOOR_WINDOW_FRAMES - 1) :], energy)
        return float(np.percentile(self._recent, FLOOR_PERCENTILE))

    def _add_frame(self, frame: np.ndarray, speech: bool, energy: float) -> list[AudioSegment]:
        """Buffer one frame with its label and high-passed energy, then open, close or cut the
        segment as the rules say."""
        frame_start = self._end
        self._frames.append(frame)
        self._speech.append(speech)
        self._energy.append(energy)
        self._end += len(frame)
        if self._start is None:
            if speech:
                self._start = max(self._floor, frame_start - self._pad)
                self._last_speech_end = self._end
            else:
                self._drop_before(self._end - self._pad)
            return []
        closed: list[AudioSegment] = []
        if speech:
            pause = frame_start - self._last_speech_end
            if pause >= self._min_pause:  # speech again after a pause: share the pause
                end = self._last_speech_end + min(self._pad, pause // 2)
                closed += self._close(end)
                self._start = max(end, frame_start - self._pad)
            self._last_speech_end = self._end
        elif self._end - self._last_speech_end >= max(self._min_pause, 2 * self._pad):
            return self._close(self._last_speech_end + self._pad)
        in_pause = self._end - self._last_speech_end >= self._min_pause
        if self._end - self._start >= self._max and not in_pause:
            closed += self._cut()
        return closed

    def _close(self, end: int) -> list[AudioSegment]:
        """End the open segment at sample `end`: -> [it], or [] if it is too little speech."""
        assert self._start is not None, "no open segment to close"
        segment = self._take(self._start, end)
        self._start = None
        if end - self._renewed >= RENEW_DETECTOR_SECONDS * SAMPLE_RATE:
            self._vad = webrtcvad.Vad(self._aggressiveness)  # see RENEW_DETECTOR_SECONDS
            self._renewed = end
        self._floor = end
        self._drop_before(end)
        return segment

    def _cut(self) -> list[AudioSegment]:
        """Cut the over-long open segment in the middle of the quietest frame whose middle
        lies in its last `CUT_SEARCH_SECONDS` before `max_segment_s`; the rest stays open."""
        assert self._start is not None, "no open segment to cut"
        half = FRAME_SAMPLES // 2
        lowest = (self._start + self._max - self._search - half) // FRAME_SAMPLES + 1
        highest = (self._start + self._max - half) // FRAME_SAMPLES
        energy = self._energy[lowest - self._first : highest - self._first + 1]
        cut = (lowest + int(np.argmin(energy))) * FRAME_SAMPLES + half
        logger.debug(
            "no pause in %.1f s of speech from %.2f s: cut at %.2f s",
            (cut - self._start) / SAMPLE_RATE,
            self._start / SAMPLE_RATE,
            cut / SAMPLE_RATE,
        )
        segment = self._take(self._start, cut)
        self._start = self._floor = cut
        self._last_speech_end = max(self._last_speech_end, cut)
        self._drop_before(cut)
        return segment

    def _take(self, start: int, end: int) -> list[AudioSegment]:
        """Samples [start, end) as a segment, or [] if its frames hold too little speech."""
        first = start // FRAME_SAMPLES - self._first
        last = -(-end // FRAME_SAMPLES) - self._first
        if sum(self._speech[first:last]) < self._min_speech_frames:
            return []
        offset = (self._first + first) * FRAME_SAMPLES
        audio = np.concatenate(self._frames[first:last])[start - offset : end - offset]
        return [AudioSegment(start / SAMPLE_RATE, audio)]

    def _drop_before(self, sample: int) -> None:
        """Forget the frames that end at or before `sample`."""
        n = sample // FRAME_SAMPLES - self._first
        if n > 0:
            del self._frames[:n], self._speech[:n], self._energy[:n]
            self._first += n


class BlockConverter:
    """Blocks of any rate and channel count -> 16 kHz mono, equal to converting the whole file.

    `to_16k_mono`'s polyphase filter reaches `10 max(up, down) / up` input samples either side
    of each output sample (scipy's resample_poly), so each block is converted together with
    `context` samples either side and only its own outputs are kept; blocks start at multiples
    of `down` input samples, where an output sample falls exactly on an input sample.
    """

    def __init__(self, sample_rate: int) -> None:
        divisor = math.gcd(SAMPLE_RATE, sample_rate)
        self.sample_rate = sample_rate
        self._up, self._down = SAMPLE_RATE // divisor, sample_rate // divisor
        reach = math.ceil(10 * max(self._up, self._down) / self._up) + 1
        self._context = 0 if sample_rate == SAMPLE_RATE else -(-reach // self._down) * self._down
        self._held: np.ndarray | None = None  # input from `_held_start` on, not yet dropped
        self._held_start = 0
        self._done = 0  # input samples whose output has been returned

    def accept(self, block: np.ndarray) -> np.ndarray:
        """(n, channels) float -> (m,) float32 16 kHz samples now final (m >= 0)."""
        held = block if self._held is None else np.concatenate([self._held, block])
        end = self._held_start + len(held)
        ready = (end - self._context) // self._down * self._down
        if ready <= self._done:
            self._held = held
            return np.zeros(0, np.float32)
        return self._convert(held, ready, final=False)

    def finish(self) -> np.ndarray:
        """The rest of the output, up to ceil(n_input * 16000 / sample_rate) samples in all."""
        if self._held is None:
            return np.zeros(0, np.float32)
        return self._convert(self._held, self._held_start + len(self._held), final=True)

    def _convert(self, held: np.ndarray, until: int, final: bool) -> np.ndarray:
        chunk = held if final else held[: until + self._context - self._held_start]
        out = to_16k_mono(chunk, self.sample_rate)
        first = (self._done - self._held_start) * self._up // self._down
        last = len(out) if final else (until - self._held_start) * self._up // self._down
        keep_from = max(until - self._context, 0)
        self._held = held[keep_from - self._held_start :]
        self._held_start, self._done = keep_from, until
        return out[first:last]


def speech_segments(
    source: AudioSource,
    *,
    settings: VadSettings = VadSettings(),
    progress: Callable[[float], None] | None = None,
    name: str | None = None,
) -> Iterator[AudioSegment]:
    """Speech segments of a WAV file of any length, read block by block, in order.

    Any PCM or float WAV (the formats `audio.load_wav(convert=True)` takes) is down-mixed and
    resampled to 16 kHz as it is read. `progress(seconds_read)` is called after each block.
    A stream that cannot seek (a pipe) is buffered whole first, because libsndfile seeks.
    Raises `AudioFormatError` naming `name`, else the path, else "<upload>" (as a generator,
    when iteration starts: a bad header before any segment, bad samples where they are read).
    """
    label = source_name(source, name)
    segmenter = SpeechSegmenter(settings)
    with open_audio(source, label) as sound_file:
        info = check_header(sound_file, label, WAV_FORMATS, WAV_SUBTYPES)
        converter = BlockConverter(info.sample_rate)
        block_frames = max(1, round(READ_BLOCK_SECONDS * info.sample_rate))
        frames_read = 0
        for block in sound_file.blocks(block_frames, dtype="float32", always_2d=True):
            if not np.isfinite(block).all():
                raise AudioFormatError(f"{label}: contains NaN or infinite samples")
            frames_read += len(block)
            if progress is not None:
                progress(frames_read / info.sample_rate)
            yield from segmenter.accept(converter.accept(block))
        yield from segmenter.accept(converter.finish())
    yield from segmenter.finish()


def speech_segments_of_array(
    audio: np.ndarray, *, settings: VadSettings = VadSettings()
) -> Iterator[AudioSegment]:
    """Speech segments of audio already decoded: (n,) float in [-1, 1] at 16 kHz mono."""
    if audio.ndim != 1 or not np.issubdtype(audio.dtype, np.floating):
        raise AudioFormatError(f"audio must be (n_samples,) float, got {audio.shape} {audio.dtype}")
    segmenter = SpeechSegmenter(settings)
    block = round(READ_BLOCK_SECONDS * SAMPLE_RATE)
    for i in range(0, len(audio), block):
        yield from segmenter.accept(audio[i : i + block])
    yield from segmenter.finish()


def _pcm16_bytes(audio: np.ndarray) -> bytes:
    """(n,) float in [-1, 1] -> n little-endian 16-bit samples, what webrtcvad reads."""
    pcm = np.clip(np.round(audio * PCM16_SCALE), -32768, 32767).astype("<i2")
    return pcm.tobytes()
