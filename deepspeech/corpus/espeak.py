"""A small ctypes binding to espeak-ng, as shipped by the `espeakng-loader` wheel.

The wheel carries `libespeak-ng` and its data folder, so synthetic speech needs no system
package and no download. espeak-ng keeps its synthesis state in C globals: the pitch-flutter
phase, the automatic gain and the Klatt noise generator carry over from one utterance to the
next, and `espeak_Initialize` does not reset them. A clip would then depend on whatever the
process synthesised before it, and a corpus would change with the worker count. So every
`synthesize` call loads a fresh copy of the library, seeds its random generators, speaks, and
unloads it again (about 0.3 ms): each clip depends only on its own arguments.

With the samples, espeak-ng reports where each word starts (`WordEvent`): the corpus turns
them into word times, the truth that word-timing measurements are scored against.
"""

from __future__ import annotations

import _ctypes
import ctypes
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from deepspeech.errors import CorpusError

logger = logging.getLogger(__name__)

# Constants from espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2  # samples go to the callback, espeak_Synth returns when done
_EE_OK = 0
_EE_NOT_FOUND = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAMETER_RATE = 1  # words per minute
_PARAMETER_PITCH = 3  # 0-100, 50 is the voice's own pitch
_PARAMETER_RANGE = 4  # pitch range 0-100: 0 is a monotone, 50 the voice's own
_PARAMETER_WORDGAP = 7  # extra pause between words, in units of 10 ms at the default speed
_MAX_PCM = 32768.0  # espeak-ng writes signed 16-bit samples
_EVENT_LIST_TERMINATED = 0  # espeak_EVENT_TYPE: the last entry of an event list
_EVENT_WORD = 1  # espeak_EVENT_TYPE: a word starts (sent without any espeak_Initialize option)

RATE_WPM_RANGE = (80, 450)  # espeak-ng's own limits for the speaking rate
PITCH_RANGE = (0, 100)
PITCH_RANGE_LIMITS = (0, 100)  # limits of the pitch range (intonation width) setting
WORD_GAP_LIMITS = (0, 50)  # 0: espeak-ng's own gaps; 50: half a second more between words
VARIANT_FOLDER = Path("voices") / "!v"  # where espeak-ng keeps voice variants ("+m3", "+klatt")


class _EspeakEvent(ctypes.Structure):
    """espeak_EVENT from speak_lib.h (the union `id` is 8 bytes: int, char pointer, char[8])."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based, in characters of the text given
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms
        ("sample", ctypes.c_int),  # samples since the start of the synthesis
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent)
)
_unload_library = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary", None)
_synthesis_lock = threading.Lock()  # the library's globals are per process, not per object


def default_library_path() -> Path:
    """Where `espeakng-loader` put `libespeak-ng`; CorpusError if the package is missing."""
    return Path(_loader().get_library_path())


def default_data_path() -> Path:
    """Where `espeakng-loader` put `espeak-ng-data`; CorpusError if the package is missing."""
    try:
        return Path(_loader().get_data_path())
    except RuntimeError as e:
        raise CorpusError(
            f"{e}; reinstall it: pip install --force-reinstall espeakng-loader"
        ) from e


def _loader() -> ModuleType:
    try:
        import espeakng_loader
    except ImportError as e:
        raise CorpusError(
            "the synthetic corpus needs espeak-ng from the `espeakng-loader` package; "
            "install it: pip install espeakng-loader"
        ) from e
    return espeakng_loader


@dataclass(frozen=True)
class WordEvent:
    """espeak-ng's report that a word starts.

    espeak-ng speaks some unstressed pairs as one word ("in the", "there are") and reports
    only the first of them: not every word of the text has an event.
    """

    text_offset: int  # 0-based character offset of the word in the text spoken
    sample: int  # where its sound starts, in samples at `sample_rate` from the clip's start


@dataclass(frozen=True)
class Speech:
    """What `EspeakSynthesizer.synthesize_with_words` returns."""

    audio: np.ndarray  # (n_samples,) float32 in [-1, 1] at the synthesizer's sample_rate
    words: tuple[WordEvent, ...]  # in the order spoken


@dataclass(frozen=True)
class VoiceVariant:
    """What one espeak-ng variant file (`voices/!v/<name>`) sets, as far as corpus design cares.

    Frequencies are percentages of the base voice's; `None` means "left at the default".
    """

    name: str  # the file name, used after "+" in a voice name ("en-us+m3")
    klatt: int  # 0: espeak's own synthesiser; 1-6: a Klatt formant synthesiser
    pitch_hz: tuple[int, int] | None  # base and top of the pitch range in Hz
    formant_percent: dict[int, int]  # formant number -> frequency in % of the default voice
    voicing_percent: int  # loudness of the voiced source; low values sound whispered
    breath: int  # strongest breath-noise setting (0: none)
    echo_percent: int  # echo amplitude (espeak-ng caps it at 100)
    flutter: int | None  # pitch jitter; None: the default
    unknown_keywords: frozenset[str]  # settings this parser does not model

    @property
    def vowel_formants(self) -> tuple[int, int, int]:
        """Frequencies of formants 1-3 (the ones that tell vowels apart) in % of the default."""
        return tuple(self.formant_percent.get(i, 100) for i in (1, 2, 3))  # type: ignore[return-value]


_KNOWN_KEYWORDS = frozenset(
    {
        "language",
        "name",
        "gender",
        "pitch",
        "formant",
        "voicing",
        "breath",
        "breathw",
        "echo",
        "flutter",
        "roughness",
        "klatt",
        "tone",
        "consonants",
        "stressadd",
        "stressamp",
        "stresslength",
        "intonation",
    }
)


def parse_variant(path: Path) -> VoiceVariant:
    """Read the settings of one variant file (espeak-ng's voice file syntax).

    `//` starts a comment; lines starting with `#` are comments in some contributed files.
    Unknown keywords are kept by name so callers can stay away from variants they do not model.
    """
    klatt = 0
    pitch: tuple[int, int] | None = None
    formants: dict[int, int] = {}
    voicing = 100
    breath = 0
    echo = 0
    flutter: int | None = None
    unknown: set[str] = set()
    for raw_line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw_line.split("//", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        keyword, *args = line.split()
        keyword = keyword.lower()
        numbers = [int(a) for a in args if a.lstrip("-").isdigit()]
        if keyword not in _KNOWN_KEYWORDS:
            unknown.add(keyword)
        elif keyword == "klatt" and numbers:
            klatt = numbers[0]
        elif keyword == "pitch" and len(numbers) >= 2:
            pitch = (numbers[0], numbers[1])
        elif keyword == "formant" and len(numbers) >= 2:
            formants[numbers[0]] = numbers[1]
        elif keyword == "voicing" and numbers:
            voicing = numbers[0]
        elif keyword == "breath" and numbers:
            breath = max(numbers)
        elif keyword == "echo" and len(numbers) >= 2:
            echo = min(numbers[1], 100)
        elif keyword == "flutter" and numbers:
            flutter = numbers[0]
    return VoiceVariant(
        name=path.name,
        klatt=klatt,
        pitch_hz=pitch,
        formant_percent=formants,
        voicing_percent=voicing,
        breath=breath,
        echo_percent=echo,
        flutter=flutter,
        unknown_keywords=frozenset(unknown),
    )


def list_variants(data_path: Path | None = None) -> list[VoiceVariant]:
    """All voice variants in an espeak-ng data folder, sorted by name.

    Reading the folder (rather than a hard-coded list) keeps the corpus in step with the
    espeak-ng release that is installed.
    """
    folder = (data_path or default_data_path()) / VARIANT_FOLDER
    if not folder.is_dir():
        raise CorpusError(f"{folder}: no espeak-ng voice variants there; reinstall espeakng-loader")
    return [parse_variant(p) for p in sorted(folder.iterdir()) if p.is_file()]


class EspeakSynthesizer:
    """Text -> speech with espeak-ng, one clip at a time, at espeak-ng's native sample rate.

    espeak-ng is not thread-safe (its state is process-global): use one synthesizer per
    process; calls are serialised by a lock. Parallel corpus generation uses processes.
    """

    def __init__(self, library_path: Path | None = None, data_path: Path | None = None) -> None:
        self.library_path = library_path or default_library_path()
        self.data_path = data_path or default_data_path()
        self._variants = {v.name for v in list_variants(self.data_path)}
        self._chunks: list[np.ndarray] = []
        self._words: list[WordEvent] = []
        self._callback = _SynthCallback(self._on_samples)  # kept alive as long as self
        self._libc = ctypes.CDLL(None)  # Klatt voices draw noise from libc's rand()
        self._sample_rate = 0  # known once the library has been initialised
        with _synthesis_lock:
            library = self._load()
            try:
                library.espeak_Info.restype = ctypes.c_char_p
                self.version: str = library.espeak_Info(None).decode()
            finally:
                self._unload(library)
        if _unload_library is None:
            logger.warning("cannot unload libespeak-ng here: clips may depend on their order")
        logger.debug(
            "espeak-ng %s, %d Hz, data in %s", self.version, self._sample_rate, self.data_path
        )

    @property
    def sample_rate(self) -> int:
        """espeak-ng's output rate in Hz (22050 for its own voices)."""
        return self._sample_rate

    @property
    def variants(self) -> frozenset[str]:
        """Names of the voice variants in the data folder ("m3", "f1", "klatt4", ...)."""
        return frozenset(self._variants)

    def check_voices(self, voices: Iterable[str]) -> None:
        """Raise CorpusError for the first voice espeak-ng does not have (before a long run)."""
        with _synthesis_lock:
            library = self._load()
            try:
                for voice in voices:
                    self._set_voice(library, voice)
            finally:
                self._unload(library)

    def synthesize(
        self,
        text: str,
        voice: str,
        rate_wpm: int,
        pitch: int,
        pitch_range: int = 50,
        word_gap: int = 0,
    ) -> np.ndarray:
        """Speak `text`: -> (n_samples,) float32 in [-1, 1] at `sample_rate`.

        The audio of `synthesize_with_words` with the same arguments; see there.
        """
        return self.synthesize_with_words(
            text, voice, rate_wpm, pitch, pitch_range=pitch_range, word_gap=word_gap
        ).audio

    def synthesize_with_words(
        self,
        text: str,
        voice: str,
        rate_wpm: int,
        pitch: int,
        pitch_range: int = 50,
        word_gap: int = 0,
    ) -> Speech:
        """Speak `text`: -> its samples and where espeak-ng says each word starts.

        `voice` is "language[+variant]" ("en-us+f3"), `rate_wpm` the speaking rate in words
        per minute, `pitch` 0-100 (50: the voice's own), `pitch_range` how far the intonation
        moves 0-100 (0: a monotone, 50: the voice's own), `word_gap` an extra pause between
        words in 10 ms units. The tune follows the final punctuation of `text` (".", "?", "!",
        ","), which is not spoken. The same arguments give the same samples, whatever was
        synthesised before. Asking for the word events leaves the samples as they are.
        """
        for name, value, limits in (
            ("rate_wpm", rate_wpm, RATE_WPM_RANGE),
            ("pitch", pitch, PITCH_RANGE),
            ("pitch_range", pitch_range, PITCH_RANGE_LIMITS),
            ("word_gap", word_gap, WORD_GAP_LIMITS),
        ):
            if not limits[0] <= value <= limits[1]:
                raise ValueError(f"{name} must be in {limits}, got {value}")
        encoded = text.encode("utf-8")
        with _synthesis_lock:
            library = self._load()
            try:
                self._set_voice(library, voice)
                library.espeak_SetParameter(_PARAMETER_RATE, rate_wpm, 0)
                library.espeak_SetParameter(_PARAMETER_PITCH, pitch, 0)
                library.espeak_SetParameter(_PARAMETER_RANGE, pitch_range, 0)
                library.espeak_SetParameter(_PARAMETER_WORDGAP, word_gap, 0)
                library.espeak_ng_SetRandSeed(ctypes.c_long(0))
                self._libc.srand(0)
                self._chunks, self._words = [], []
                status = library.espeak_Synth(
                    encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
                )
                library.espeak_Synchronize()
                if status != _EE_OK:
                    raise CorpusError(f"espeak-ng failed (status {status}) to speak {text!r}")
                chunks, self._chunks = self._chunks, []
                words, self._words = tuple(self._words), []
            finally:
                self._unload(library)
        if not chunks:
            return Speech(np.zeros(0, dtype=np.float32), words)
        return Speech(np.concatenate(chunks).astype(np.float32) / _MAX_PCM, words)

    def _load(self) -> ctypes.CDLL:
        """Load and initialise a fresh copy of the library (its globals start from zero)."""
        try:
            library = ctypes.CDLL(str(self.library_path))
        except OSError as e:
            raise CorpusError(
                f"{self.library_path}: cannot load libespeak-ng ({e}); "
                "reinstall it: pip install --force-reinstall espeakng-loader"
            ) from e
        rate = library.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(self.data_path).encode(), 0
        )
        if rate <= 0:
            self._unload(library)
            raise CorpusError(
                f"{self.data_path}: espeak-ng could not initialise from this data folder; "
                "reinstall it: pip install --force-reinstall espeakng-loader"
            )
        self._sample_rate = int(rate)
        library.espeak_SetSynthCallback(self._callback)
        return library

    def _unload(self, library: ctypes.CDLL) -> None:
        library.espeak_Terminate()
        if _unload_library is not None:
            _unload_library(library._handle)

    def _set_voice(self, library: ctypes.CDLL, voice: str) -> None:
        language, _, variant = voice.partition("+")
        # espeak-ng silently ignores an unknown variant, so check it against the folder.
        if variant and variant not in self._variants:
            raise CorpusError(
                f"espeak-ng has no voice variant {variant!r} (in {voice!r}); "
                f"the variants in {self.data_path / VARIANT_FOLDER} are "
                f"{', '.join(sorted(self._variants))}"
            )
        status = library.espeak_SetVoiceByName(voice.encode("utf-8"))
        if status == _EE_NOT_FOUND:
            raise CorpusError(
                f"espeak-ng has no voice {language!r} (in {voice!r}); "
                "English ones include en-us, en, en-gb-x-rp, en-gb-scotland, en-029"
            )
        if status != _EE_OK:
            raise CorpusError(f"espeak-ng could not select voice {voice!r} (status {status})")

    def _on_samples(self, wav: ctypes._Pointer, n_samples: int, events: ctypes._Pointer) -> int:
        """espeak-ng's callback: copy each block of samples and its word events out (both
        buffers are reused). `events` ends with an event of type LIST_TERMINATED."""
        if wav and n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n_samples,)).copy())
        index = 0
        while events and events[index].type != _EVENT_LIST_TERMINATED:
            event = events[index]
            if event.type == _EVENT_WORD:
                self._words.append(WordEvent(event.text_position - 1, event.sample))
            index += 1
        return 0  # 0: carry on synthesising
