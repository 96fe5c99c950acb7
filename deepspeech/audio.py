"""Audio in, features out: WAV reading and checks, 16 kHz mono conversion, MFCC + context windows.

Training, export checks and serving all compute features here, so a model never sees features
made differently from the ones it was trained on. NumPy only: no TensorFlow import.
"""

import functools
import io
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeAlias

import numpy as np
import python_speech_features
import soundfile
from numpy.lib.stride_tricks import sliding_window_view
from scipy.fftpack import dct as scipy_dct
from scipy.signal import resample_poly

from deepspeech.errors import AudioFormatError
from deepspeech.files import atomic_write

SAMPLE_RATE = 16000  # Hz; every model input is 16 kHz mono
N_CEPSTRUM = 26  # MFCC coefficients per frame
N_CONTEXT = 9  # frames of context on each side of the current frame
N_INPUT = N_CEPSTRUM * (2 * N_CONTEXT + 1)  # 494 features per time step
WINDOW_SECONDS = 0.025  # MFCC analysis window
STEP_SECONDS = 0.01  # MFCC hop: 100 frames per second
N_FILTERS = 26  # mel filters (python_speech_features default); numcep may not exceed it
N_FFT = 512  # FFT size for the 400-sample window (python_speech_features default)
PREEMPHASIS = 0.97  # y[n] = x[n] - 0.97 x[n-1] before framing (python_speech_features default)
CEPSTRAL_LIFTER = 22  # python_speech_features default
WINDOW_SAMPLES = round(WINDOW_SECONDS * SAMPLE_RATE)  # 400
STEP_SAMPLES = round(STEP_SECONDS * SAMPLE_RATE)  # 160

MIN_SAMPLE_RATE = 1000  # Hz; a header below this is corrupt, not audio
MAX_SAMPLE_RATE = 384000  # Hz; the highest rate real recorders write
WAV_FORMATS = frozenset({"WAV", "WAVEX", "RF64"})  # soundfile's names for RIFF WAVE containers
WAV_SUBTYPES = frozenset({"PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"})
TRAINING_SUBTYPE = "PCM_16"  # what manifests hold (DeepSpeech's format)
PCM16_SCALE = 32768.0  # load_wav divides 16-bit samples by this; the 2017 MFCCs did not
# The quietest a 16-bit recording gets: white noise one quantisation step (1/32768) in std.
# Model features floor each frame's energy and mel bands at this noise's expected power.
NOISE_FLOOR_STD = 1 / PCM16_SCALE
_READ_BLOCK_FRAMES = 1 << 20  # decode in blocks, so a header's claimed length is never allocated

AudioSource: TypeAlias = str | os.PathLike[str] | bytes | BinaryIO


@dataclass(frozen=True)
class FeatureConfig:
    """How audio becomes model input; stored with checkpoints and in the ONNX metadata.

    The model reads `numcep` MFCC per kept frame and builds the context windows itself.
    """

    numcep: int = N_CEPSTRUM
    numcontext: int = N_CONTEXT
    stride: int = 1  # keep every stride-th MFCC frame (the 2017 "BiRNN stride")

    @property
    def n_input(self) -> int:
        """Width of the context windows: numcep x (2 numcontext + 1)."""
        return self.numcep * (2 * self.numcontext + 1)

    @property
    def frame_seconds(self) -> float:
        """Seconds between two of the model's frames: the MFCC hop times the stride."""
        return STEP_SECONDS * self.stride


@dataclass(frozen=True)
class WavInfo:
    """What a WAV header says, read without decoding samples (to reject long audio cheaply)."""

    sample_rate: int  # Hz
    channels: int
    frames: int  # samples per channel; libsndfile caps a claimed length at what the file holds
    subtype: str  # soundfile's sample encoding name: "PCM_16", "FLOAT", ...

    @property
    def duration_seconds(self) -> float:
        """Length of the audio in seconds."""
        return self.frames / self.sample_rate


def source_name(source: AudioSource, name: str | None) -> str:
    """The label error messages use: the caller's name, else the path, else "<upload>"."""
    if name is not None:
        return name
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return "<upload>"


@contextmanager
def open_audio(source: AudioSource, label: str) -> Iterator[soundfile.SoundFile]:
    """Open `source` for reading with soundfile, turning every decoder failure into one type.

    File objects are read from their start and left at the position they were found in, so a
    server can check the header with `read_wav_info` and then decode the same upload.
    """
    position = None
    if isinstance(source, (str, os.PathLike)):
        target: str | BinaryIO = os.fspath(source)
        if not os.path.isfile(target):
            raise AudioFormatError(f"{label}: no such file")
    elif isinstance(source, (bytes, bytearray, memoryview)):
        target = io.BytesIO(source)
    elif source.seekable():
        position = source.tell()
        source.seek(0)
        target = source
    else:  # libsndfile needs to seek: buffer a stream such as a pipe
        target = io.BytesIO(source.read())
    try:
        with soundfile.SoundFile(target) as sound_file:
            yield sound_file
    except soundfile.LibsndfileError as e:
        raise AudioFormatError(f"{label}: cannot decode audio ({e.error_string})") from e
    except (soundfile.SoundFileError, RuntimeError) as e:
        raise AudioFormatError(f"{label}: cannot decode audio ({e})") from e
    finally:
        if position is not None:
            source.seek(position)


def check_header(
    sound_file: soundfile.SoundFile,
    label: str,
    formats: frozenset[str] | None,
    subtypes: frozenset[str] | None,
) -> WavInfo:
    """Reject containers, encodings and header values the caller does not accept."""
    if formats is not None and sound_file.format not in formats:
        raise AudioFormatError(
            f"{label}: {sound_file.format_info} audio, expected a WAV file; convert it "
            f"(e.g. `sox {label} -r {SAMPLE_RATE} -c 1 -b 16 out.wav`)"
        )
    if sound_file.channels < 1:
        raise AudioFormatError(f"{label}: header says {sound_file.channels} channels")
    if not MIN_SAMPLE_RATE <= sound_file.samplerate <= MAX_SAMPLE_RATE:
        raise AudioFormatError(
            f"{label}: header says {sound_file.samplerate} Hz, outside "
            f"{MIN_SAMPLE_RATE}–{MAX_SAMPLE_RATE} Hz; the file is corrupt"
        )
    if subtypes is not None and sound_file.subtype not in subtypes:
        raise AudioFormatError(
            f"{label}: {sound_file.subtype} ({sound_file.subtype_info}) samples are not "
            f"supported; re-encode as PCM (e.g. `sox {label} -e signed-integer -b 16 out.wav`)"
        )
    return WavInfo(
        sample_rate=sound_file.samplerate,
        channels=sound_file.channels,
        frames=sound_file.frames,
        subtype=sound_file.subtype,
    )


def _read_samples(sound_file: soundfile.SoundFile, label: str) -> np.ndarray:
    """Decode all samples: -> (n_frames, channels) float32, scaled to [-1, 1] for PCM.

    Reads block by block until the data ends, so memory follows the data actually present,
    never a length a (possibly hostile) header claims.
    """
    blocks = []
    while True:
        block = sound_file.read(_READ_BLOCK_FRAMES, dtype="float32", always_2d=True)
        if len(block):
            blocks.append(block)
        if len(block) < _READ_BLOCK_FRAMES:
            break
    if not blocks:
        raise AudioFormatError(f"{label}: contains no audio (0 samples)")
    samples = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    if not np.isfinite(samples).all():
        raise AudioFormatError(f"{label}: contains NaN or infinite samples")
    return samples


def _require_training_format(info: WavInfo, label: str) -> None:
    """Manifest audio must be 16 kHz mono PCM_16 already: silent conversion would hide bad data."""
    problems = []
    if info.sample_rate != SAMPLE_RATE:
        problems.append(f"{info.sample_rate} Hz, expected {SAMPLE_RATE} Hz")
    if info.channels != 1:
        problems.append(f"{info.channels} channels, expected mono")
    if info.subtype != TRAINING_SUBTYPE:
        problems.append(f"{info.subtype}, expected {TRAINING_SUBTYPE}")
    if problems:
        raise AudioFormatError(
            f"{label}: {'; '.join(problems)}; resample it (e.g. `deepspeech data` importers "
            f"or `sox {label} -r {SAMPLE_RATE} -c 1 -b 16 out.wav`)"
        )


def read_wav_info(source: AudioSource, *, name: str | None = None) -> WavInfo:
    """Read and check a WAV header without decoding its samples.

    A server calls this to reject over-long or unsupported audio before paying for decoding.
    Raises `AudioFormatError` for anything that is not a RIFF WAVE file with PCM or float
    samples, a sane sample rate and at least one channel. `name` labels error messages.
    """
    label = source_name(source, name)
    with open_audio(source, label) as sound_file:
        return check_header(sound_file, label, WAV_FORMATS, WAV_SUBTYPES)


def load_wav(source: AudioSource, *, convert: bool = False, name: str | None = None) -> np.ndarray:
    """Read a WAV file: -> (n_samples,) float32 in [-1, 1], mono, at SAMPLE_RATE.

    With `convert=False` (training manifests) the file must already be 16 kHz mono PCM_16,
    and anything else is an error naming the file and the value. With `convert=True`
    (serving, importers) any PCM_U8/16/24/32 or FLOAT/DOUBLE WAV is down-mixed and resampled.
    Raises `AudioFormatError`, naming `name`, else the path, else "<upload>".
    """
    label = source_name(source, name)
    with open_audio(source, label) as sound_file:
        info = check_header(sound_file, label, WAV_FORMATS, WAV_SUBTYPES)
        if not convert:
            _require_training_format(info, label)
        samples = _read_samples(sound_file, label)
    return to_16k_mono(samples, info.sample_rate)


def load_audio(source: AudioSource, *, name: str | None = None) -> np.ndarray:
    """Read any container libsndfile decodes: -> (n_samples,) float32 in [-1, 1], mono, 16 kHz.

    For corpus importers, whose sources are FLAC (LibriSpeech), NIST SPHERE (TED-LIUM) or MP3
    (Common Voice): any encoding is accepted. Serving and training use `load_wav` instead.
    """
    label = source_name(source, name)
    with open_audio(source, label) as sound_file:
        info = check_header(sound_file, label, formats=None, subtypes=None)
        samples = _read_samples(sound_file, label)
    return to_16k_mono(samples, info.sample_rate)


def to_16k_mono(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Down-mix and resample: (n,) or (n, channels) float -> (n',) float32 at SAMPLE_RATE.

    Channels are averaged; the rate changes by the reduced fraction SAMPLE_RATE / sample_rate
    with a polyphase filter, so n' = ceil(n * SAMPLE_RATE / sample_rate). The result is
    clipped to [-1, 1], the range of the 16-bit PCM the models are trained on.
    """
    if samples.ndim not in (1, 2) or not np.issubdtype(samples.dtype, np.floating):
        raise ValueError(
            f"samples must be float (n,) or (n, channels), got {samples.shape} {samples.dtype}"
        )
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if samples.ndim == 1 or samples.shape[1] == 1:
        mono = samples.reshape(-1)
    else:
        mono = samples.mean(axis=1, dtype=np.float64)
    if sample_rate != SAMPLE_RATE:
        divisor = math.gcd(SAMPLE_RATE, sample_rate)
        mono = resample_poly(mono, SAMPLE_RATE // divisor, sample_rate // divisor)
    return np.clip(mono, -1.0, 1.0).astype(np.float32)


def write_wav(path: Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write (n,) float samples in [-1, 1] as a mono PCM_16 WAV, atomically.

    The file appears complete or not at all (temporary file in the same folder, then
    `os.replace`), so a killed importer never leaves a half-written WAV in a corpus.
    Samples are rounded to the nearest of 65536 levels, so `load_wav` reads back exactly
    the values written (values outside [-1, 1] are clipped).
    """
    path = Path(path)
    if audio.ndim != 1 or not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"audio must be (n,) float, got shape {audio.shape} {audio.dtype}")
    if not np.isfinite(audio).all():
        raise ValueError(f"{path}: audio contains NaN or infinite samples")
    pcm = np.clip(np.round(audio * PCM16_SCALE), -32768, 32767).astype(np.int16)
    with atomic_write(path, "wb") as stream:
        soundfile.write(stream, pcm, sample_rate, format="WAV", subtype=TRAINING_SUBTYPE)


def n_feature_frames(n_samples: int, stride: int = 1) -> int:
    """Rows `audio_to_features` returns for `n_samples` samples, without computing them.

    python_speech_features' framesig: one frame up to WINDOW_SAMPLES samples, else
    1 + ceil((n - WINDOW_SAMPLES) / STEP_SAMPLES), the last frame zero-padded; then every
    `stride`-th frame is kept.
    """
    if n_samples <= WINDOW_SAMPLES:
        frames = 1
    else:
        frames = 1 + -(-(n_samples - WINDOW_SAMPLES) // STEP_SAMPLES)
    return -(-frames // stride)


def _require_signal(audio: np.ndarray) -> None:
    if audio.ndim != 1 or len(audio) == 0:
        raise AudioFormatError(f"audio must be (n_samples,) with n > 0, got shape {audio.shape}")


def mfcc(audio: np.ndarray, numcep: int = N_CEPSTRUM) -> np.ndarray:
    """MFCCs of 16 kHz audio: (n_samples,) float -> (n_frames, numcep) float32.

    python_speech_features with a 25 ms window every 10 ms, 26 mel filters, a 512-point FFT,
    and coefficient 0 replaced by the log frame energy, as DeepSpeech 2017 computed them (the
    2017 API's numbers; the model reads `audio_to_features`, which floors digital silence).
    The signal is taken as float64 so float32 and float64 callers get identical features.
    """
    _require_signal(audio)
    if not 1 <= numcep <= N_FILTERS:
        raise ValueError(f"numcep must be in 1..{N_FILTERS}, got {numcep}")
    features = python_speech_features.mfcc(
        np.asarray(audio, dtype=np.float64),
        samplerate=SAMPLE_RATE,
        winlen=WINDOW_SECONDS,
        winstep=STEP_SECONDS,
        numcep=numcep,
        nfilt=N_FILTERS,
        nfft=N_FFT,
        preemph=PREEMPHASIS,
    )
    return features.astype(np.float32)


class MfccStream:
    """The model's MFCC frames of a signal that arrives in pieces (`audio_to_features` is one
    piece), frame for frame the same numbers however the signal is cut.

    python_speech_features pre-emphasises the whole signal, then cuts 400-sample frames every
    160 samples and zero-pads the last one. Here pre-emphasis carries the previous sample
    across pieces, a frame is computed once its 400 samples are in (the 240-sample overlap
    stays buffered), and `finish` computes the remaining frames of the zero-padded tail, so
    the frames equal the offline MFCC of the whole signal. Work per piece depends on the piece
    only: at most WINDOW_SAMPLES + a piece's samples are held.
    """

    def __init__(self, numcep: int = N_CEPSTRUM, stride: int = 1) -> None:
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        if not 1 <= numcep <= N_FILTERS:
            raise ValueError(f"numcep must be in 1..{N_FILTERS}, got {numcep}")
        self.numcep = numcep
        self.stride = stride
        self.n_samples = 0  # samples accepted so far
        self._next_frame = 0  # index of the first frame not computed yet
        self._buffer = np.zeros(0, np.float64)  # pre-emphasised samples from that frame on
        self._last_sample: float | None = None  # for the pre-emphasis of the next piece
        self.finished = False

    def accept(self, audio: np.ndarray) -> np.ndarray:
        """(n,) float samples in [-1, 1] -> (k, numcep) float32 frames now complete (k >= 0)."""
        if self.finished:
            raise RuntimeError("the MFCC stream is finished")
        x = np.asarray(audio, dtype=np.float64).reshape(-1)
        if len(x) == 0:
            return np.zeros((0, self.numcep), np.float32)
        if self._last_sample is None:  # the signal's first sample is kept as it is
            emphasised = np.append(x[0], x[1:] - PREEMPHASIS * x[:-1])
        else:
            emphasised = x - PREEMPHASIS * np.append(self._last_sample, x[:-1])
        self._last_sample = float(x[-1])
        self.n_samples += len(x)
        self._buffer = np.concatenate([self._buffer, emphasised])
        if len(self._buffer) < WINDOW_SAMPLES:
            return np.zeros((0, self.numcep), np.float32)
        n_frames = 1 + (len(self._buffer) - WINDOW_SAMPLES) // STEP_SAMPLES
        segment = self._buffer[: (n_frames - 1) * STEP_SAMPLES + WINDOW_SAMPLES]
        frames = self._frames(segment)
        self._buffer = self._buffer[n_frames * STEP_SAMPLES :]
        return frames

    def finish(self) -> np.ndarray:
        """The frames of the zero-padded end of the signal: (k, numcep) float32, k >= 0."""
        if self.finished:
            raise RuntimeError("the MFCC stream is finished")
        self.finished = True
        if self.n_samples == 0 or self._next_frame >= n_feature_frames(self.n_samples):
            return np.zeros((0, self.numcep), np.float32)
        return self._frames(self._buffer)

    def _frames(self, emphasised: np.ndarray) -> np.ndarray:
        """MFCC of pre-emphasised samples starting at frame `_next_frame`, kept by stride.

        python_speech_features' own steps (framing with zero padding, power spectrum, mel
        filterbank, log, DCT, lifter, log energy as c0) with the same numpy and scipy calls, so
        the numbers are identical wherever the signal is above the 16-bit noise floor; only its
        per-call rebuilding of the filterbank (a Python loop that cost more than the rest for
        a 20 ms piece) is done once.

        Below the floor they differ on purpose. python_speech_features takes log(eps) of a
        frame of exact zeros: c0 = -36, where the quietest speech sits near -9. Synthetic
        corpora start and end in digital silence (6 % of the sample corpus's frames), so that
        outlier set the training set's c0 statistics (std 8.2 against 2.3 without it), and any
        real recording or added noise moves those frames by 20 nats. Flooring at the power of
        one-step noise makes digital silence look like the quietest real recording instead.
        """
        n_samples = len(emphasised)
        n_frames = n_feature_frames(n_samples)
        padded = np.concatenate(
            (emphasised, np.zeros((n_frames - 1) * STEP_SAMPLES + WINDOW_SAMPLES - n_samples))
        )
        frames = sliding_window_view(padded, WINDOW_SAMPLES)[::STEP_SAMPLES]
        power = 1.0 / N_FFT * np.square(np.absolute(np.fft.rfft(frames, N_FFT)))
        energy_floor, bank_floor = _noise_floor()
        energy = np.maximum(np.sum(power, 1), energy_floor)
        banks = np.maximum(np.dot(power, _mel_filterbank().T), bank_floor)
        cepstra = scipy_dct(np.log(banks), type=2, axis=1, norm="ortho")[:, : self.numcep]
        features = python_speech_features.lifter(cepstra, CEPSTRAL_LIFTER)
        features[:, 0] = np.log(energy)
        features = features.astype(np.float32)
        first = self._next_frame
        self._next_frame += len(features)
        return features[(-first) % self.stride :: self.stride]


@functools.cache
def _mel_filterbank() -> np.ndarray:
    """(N_FILTERS, N_FFT // 2 + 1): python_speech_features' mel filterbank for 16 kHz."""
    return python_speech_features.get_filterbanks(N_FILTERS, N_FFT, SAMPLE_RATE, 0, SAMPLE_RATE / 2)


@functools.cache
def _noise_floor() -> tuple[float, np.ndarray]:
    """Expected frame energy and (N_FILTERS,) mel band powers of white noise of std
    NOISE_FLOOR_STD, pre-emphasised and framed as `MfccStream` does, so the floor has the
    shape of a real recording's noise. A frame's FFT bin k weighs the W + 1 noise samples it
    reads: the W - 1 inside by |1 - PREEMPHASIS e^(-i w_k)|^2 (pre-emphasis' high-pass tilt),
    the last by 1 and the one before the frame by PREEMPHASIS^2; E|X_k|^2 / N_FFT sums them."""
    omega = 2 * np.pi * np.arange(N_FFT // 2 + 1) / N_FFT
    tilt = 1 + PREEMPHASIS**2 - 2 * PREEMPHASIS * np.cos(omega)
    weights = (WINDOW_SAMPLES - 1) * tilt + 1 + PREEMPHASIS**2
    per_bin = NOISE_FLOOR_STD**2 * weights / N_FFT
    return float(per_bin.sum()), _mel_filterbank() @ per_bin


def add_context_windows(features: np.ndarray, numcontext: int) -> np.ndarray:
    """Stack each frame with its neighbours: (T, numcep) -> (T, numcep * (2*numcontext + 1)).

    Row t is frames t-numcontext ... t+numcontext concatenated in that order, with zero frames
    past either edge, so the model sees a fixed window around every time step.
    """
    if numcontext < 0:
        raise ValueError(f"numcontext must be >= 0, got {numcontext}")
    n_frames, numcep = features.shape
    padded = np.pad(features, ((numcontext, numcontext), (0, 0)))
    width = 2 * numcontext + 1
    windows = sliding_window_view(padded, width, axis=0)  # (T, numcep, width)
    return windows.transpose(0, 2, 1).reshape(n_frames, width * numcep)


def whiten(x: np.ndarray) -> np.ndarray:
    """Scale to zero mean, unit variance using the whole array's scalar mean and std (2017).

    Statistics are accumulated in float64; the result keeps x's dtype. A constant array
    (std 0) is only centred, instead of dividing by zero.
    """
    mean = x.mean(dtype=np.float64)
    std = x.std(dtype=np.float64)
    centred = x - x.dtype.type(mean)
    if std > 0:
        centred /= x.dtype.type(std)
    return centred


def audio_to_features(audio: np.ndarray, numcep: int = N_CEPSTRUM, stride: int = 1) -> np.ndarray:
    """What the model reads: (n_samples,) float in [-1, 1] -> (T, numcep) float32 MFCC frames.

    The 2017 MFCCs (`mfcc`) with digital silence floored at the 16-bit noise floor (see
    `MfccStream._frames`). Every `stride`-th frame is kept (2017's BiRNN stride);
    T = n_feature_frames(n_samples, stride). Normalisation and context windows are the model's
    own first operations, so training (from the feature cache), export checks, serving and
    streaming all feed it exactly this.
    """
    _require_signal(audio)
    stream = MfccStream(numcep, stride)
    return np.concatenate([stream.accept(audio), stream.finish()])


def audio_to_input_vector(
    audio: np.ndarray, numcep: int = N_CEPSTRUM, numcontext: int = N_CONTEXT
) -> np.ndarray:
    """The 2017 input vector of 16 kHz audio: (n_samples,) float -> (T, numcep*(2*numcontext+1)).

    2017 handed python_speech_features the int16 sample values, so the signal is scaled back
    to that range first: the MFCCs (c0 especially, by 2 ln 32768) and hence the whitened
    numbers are the 2017 ones. MFCC, context windows, then scalar whitening of the array.
    """
    int16_scale = np.asarray(audio, dtype=np.float64) * PCM16_SCALE
    return whiten(add_context_windows(mfcc(int16_scale, numcep), numcontext))


def audiofile_to_input_vector(
    audio_filename: str | os.PathLike[str],
    numcep: int = N_CEPSTRUM,
    numcontext: int = N_CONTEXT,
) -> np.ndarray:
    """The 2017 API: a 16 kHz mono PCM_16 WAV -> (T, numcep * (2*numcontext + 1)) float32.

    Strict about the format (see `load_wav`), as training manifests must be; the numbers are
    2017's (see `audio_to_input_vector`). The model itself reads `audio_to_features`.
    """
    return audio_to_input_vector(load_wav(Path(audio_filename)), numcep, numcontext)
