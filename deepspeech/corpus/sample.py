"""`deepspeech data sample`: a synthetic English speech corpus, made offline with espeak-ng.

It exists so that `make run` can train, export and score a real model in minutes on a laptop,
with no download. What makes the score mean something (FACTS.md, "A prototype on synthetic
speech"):

- dev and test are spoken by voices train never hears (`voices.plan_voices`), and test and dev
  sentences never occur in train (`grammar.sentence_split`);
- prosody varies per clip, in every split: speaking rate, pitch, pitch range (monotone to
  lively), extra pauses between words, and the tune of a statement, question, exclamation or
  unfinished clause (espeak-ng follows the unspoken final punctuation);
- training clips get a random speaker warp (resampled by 1 ± 0.2 and read back at 16 kHz,
  which moves formants and pitch together): the largest single gain of the prototype, because
  otherwise the model overfits to the training voices;
- every clip is a pure function of (seed, split, index): same seed, same bytes, whatever the
  worker count, and a killed run resumes where it stopped.

Layout of OUT: `train.csv`, `dev.csv`, `test.csv`, `wav/<split>/<split>-<index>.wav` (16 kHz
mono PCM_16), `metadata.json` (settings, voices per split, sentence and hour counts) and beside
each manifest its word times, `<split>.words.jsonl` (`word_times`): where espeak-ng put each
word in each clip, the truth for word-timing measurements. espeak-ng speaks some pairs as one
word ("in the", "there are": about 1 utterance in 8) and times only the first; such
utterances get no word times rather than guessed ones.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import multiprocessing
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import firwin, resample_poly

from deepspeech.audio import SAMPLE_RATE, read_wav_info, write_wav
from deepspeech.corpus import DEFAULT_UTTERANCES, SPLITS, grammar
from deepspeech.corpus.espeak import (
    PITCH_RANGE,
    PITCH_RANGE_LIMITS,
    RATE_WPM_RANGE,
    WORD_GAP_LIMITS,
    EspeakSynthesizer,
    WordEvent,
    list_variants,
)
from deepspeech.corpus.voices import ACCENTS, VoicePlan, plan_voices
from deepspeech.corpus.word_times import WordTime, word_times_path, write_word_times
from deepspeech.data.manifest import Utterance, write_manifest
from deepspeech.errors import AudioFormatError, ConfigError, CorpusError
from deepspeech.files import atomic_write
from deepspeech.parallel import available_cpus

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2  # bump when the same settings would produce different files
# The prototype's training-set size (FACTS.md: 12,000 clips, CER 1.3 % after 10 minutes of
# training). About 5 h of training audio, made in about a minute on 2 idle cores.
METADATA_NAME = "metadata.json"
STATE_NAME = ".sample-corpus.json"  # the settings of a run that has not finished yet
WAV_FOLDER = "wav"

PEAK_LEVEL = 0.9  # clips are scaled so their largest sample is this (about -1 dBFS)
SILENCE_FRAME_SECONDS = 0.01
SILENCE_BELOW_PEAK_DB = 45.0  # frames this far below the loudest frame count as silence
KEEP_SILENCE_SECONDS = 0.1  # silence left before the first and after the last sound
WARP_STEPS = 100  # warp factors are multiples of 1/100, so resampling ratios stay exact
RESAMPLE_HALF_LENGTH = 10  # scipy's resample_poly defaults: filter half-length per rate step,
RESAMPLE_WINDOW = ("kaiser", 5.0)  # and its window

_SPLIT_STREAM = {"train": 10, "dev": 11, "test": 12}  # random streams, apart from voices.py's
CLAUSE_ENDINGS = ".?!,"  # statement, question, exclamation, unfinished clause: four tunes


@dataclass(frozen=True)
class SampleCorpusConfig:
    """What to generate. Everything but `workers` decides the files' bytes."""

    utterances: int = DEFAULT_UTTERANCES  # total over train, dev and test
    seed: int = 0
    dev_fraction: float = 0.04  # share of utterances in dev (at least one)
    test_fraction: float = 0.05  # share of utterances in test (at least one)
    workers: int = field(default_factory=available_cpus)  # processes; 1 runs in-process
    rate_wpm: tuple[int, int] = (120, 220)  # speaking rate, drawn uniformly per utterance
    pitch: tuple[int, int] = (25, 75)  # espeak-ng pitch (0-100, 50: the voice's own)
    pitch_range: tuple[int, int] = (15, 85)  # intonation width (0: monotone, 50: the voice's)
    word_gap: tuple[int, int] = (0, 4)  # extra pause between words, 10 ms units
    clause_endings: str = CLAUSE_ENDINGS  # each clip ends with one: its intonation
    speaker_warp: float = 0.2  # training clips are resampled by 1 ± up to this (in 1/100 steps)
    held_out_variant_share: float = 1 / 3  # share of typical voice variants kept from train
    held_out_sentence_share: float = 0.1  # share of all sentences reserved for dev, and for test

    def __post_init__(self) -> None:
        if self.utterances < len(SPLITS):
            raise ConfigError(f"utterances must be at least {len(SPLITS)}, got {self.utterances}")
        if self.seed < 0:
            raise ConfigError(f"seed must be 0 or more, got {self.seed}")
        if self.workers < 1:
            raise ConfigError(f"workers must be at least 1, got {self.workers}")
        for name in ("dev_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0 < value < 0.5:
                raise ConfigError(f"{name} must be between 0 and 0.5, got {value}")
        if self.split_sizes()["train"] < 1:
            raise ConfigError(
                f"{self.utterances} utterances leave none for train after dev and test; "
                "ask for more utterances or smaller fractions"
            )
        _check_range("rate_wpm", self.rate_wpm, RATE_WPM_RANGE)
        _check_range("pitch", self.pitch, PITCH_RANGE)
        _check_range("pitch_range", self.pitch_range, PITCH_RANGE_LIMITS)
        _check_range("word_gap", self.word_gap, WORD_GAP_LIMITS)
        if not self.clause_endings or set(self.clause_endings) - set(CLAUSE_ENDINGS):
            raise ConfigError(
                f"clause_endings must be some of {CLAUSE_ENDINGS!r}, got {self.clause_endings!r}"
            )
        if not 0 <= self.speaker_warp < 0.5:
            raise ConfigError(f"speaker_warp must be in [0, 0.5), got {self.speaker_warp}")
        if not 0 < self.held_out_variant_share < 1:
            raise ConfigError(
                f"held_out_variant_share must be between 0 and 1, got {self.held_out_variant_share}"
            )
        if not 0 < self.held_out_sentence_share <= 0.25:
            raise ConfigError(
                f"held_out_sentence_share must be in (0, 0.25], got {self.held_out_sentence_share}"
            )

    def split_sizes(self) -> dict[str, int]:
        """Utterances per split: dev and test get their fraction (at least 1), train the rest."""
        dev = max(1, round(self.utterances * self.dev_fraction))
        test = max(1, round(self.utterances * self.test_fraction))
        return {"train": self.utterances - dev - test, "dev": dev, "test": test}

    @property
    def sentence_shares(self) -> grammar.SentenceShares:
        """The sentence space reserved for dev and for test."""
        return grammar.SentenceShares(
            dev=self.held_out_sentence_share, test=self.held_out_sentence_share
        )


def _check_range(name: str, value: tuple[int, int], limits: tuple[int, int]) -> None:
    low, high = limits
    if len(value) != 2 or not low <= value[0] <= value[1] <= high:
        raise ConfigError(f"{name} must be (min, max) within [{low}, {high}], got {value}")


@dataclass(frozen=True)
class UtteranceSpec:
    """Everything that determines one clip; a pure function of (seed, split, index)."""

    split: str
    index: int
    text: str
    voice: str  # "accent+variant", e.g. "en-gb-scotland+f2"
    rate_wpm: int
    pitch: int
    warp_percent: int  # 100: no speaker warp (dev, test); 80-120 for train
    pitch_range: int
    word_gap: int  # 10 ms units
    ending: str  # final punctuation, spoken as intonation only (not in the transcript)

    @property
    def id(self) -> str:
        """The clip's name, unique in the corpus: "train-000042"."""
        return clip_id(self.split, self.index)

    def wav_path(self, out_dir: Path) -> Path:
        """Where the clip lives under a corpus folder."""
        return wav_path(out_dir, self.split, self.index)


def clip_id(split: str, index: int) -> str:
    """The name of clip `index` of `split`: "train-000042"."""
    return f"{split}-{index:06d}"


def wav_path(out_dir: Path, split: str, index: int) -> Path:
    """Where clip `index` of `split` lives: OUT/wav/<split>/<split>-<index>.wav."""
    return out_dir / WAV_FOLDER / split / f"{clip_id(split, index)}.wav"


@dataclass(frozen=True)
class SampleCorpusSummary:
    """What `make_sample_corpus` produced, for the CLI to report."""

    out_dir: Path
    manifests: dict[str, Path]  # split -> CSV
    metadata_path: Path
    utterances: dict[str, int]  # split -> count
    hours: dict[str, float]  # split -> hours of audio
    generated: int  # clips synthesised by this call
    reused: int  # clips already on disk (a resumed or finished run)
    seconds: float  # wall time of this call


def plan_utterances(config: SampleCorpusConfig, voices: VoicePlan) -> list[UtteranceSpec]:
    """The corpus as a list of clip specifications, train then dev then test.

    Each clip's draws come from a random stream seeded with (seed, split, index) alone, so
    clip 42 of train is the same whether the corpus has 100 or 100,000 utterances.
    """
    specs: list[UtteranceSpec] = []
    warp_steps = round(config.speaker_warp * WARP_STEPS)
    for split, count in config.split_sizes().items():
        split_voices = voices.for_split(split)
        for index in range(count):
            rng = np.random.default_rng([config.seed, _SPLIT_STREAM[split], index])
            text = grammar.draw_sentence(rng, split, config.seed, config.sentence_shares)
            voice = split_voices[int(rng.integers(len(split_voices)))]
            rate = int(rng.integers(config.rate_wpm[0], config.rate_wpm[1] + 1))
            pitch = int(rng.integers(config.pitch[0], config.pitch[1] + 1))
            warp = WARP_STEPS
            if split == "train":
                warp += int(rng.integers(-warp_steps, warp_steps + 1))
            # Drawn last, so adding them left every clip's sentence, voice and warp as it was.
            pitch_range = int(rng.integers(config.pitch_range[0], config.pitch_range[1] + 1))
            word_gap = int(rng.integers(config.word_gap[0], config.word_gap[1] + 1))
            ending = config.clause_endings[int(rng.integers(len(config.clause_endings)))]
            specs.append(
                UtteranceSpec(
                    split, index, text, voice, rate, pitch, warp, pitch_range, word_gap, ending
                )
            )
    return specs


def voiced_span(audio: np.ndarray, sample_rate: int) -> tuple[int, int] | None:
    """Where the sound is: (first sample, one past the last) of the voiced 10 ms frames.

    Silence is any 10 ms frame whose RMS is SILENCE_BELOW_PEAK_DB below the loudest frame's;
    None if the audio is shorter than a frame or silent throughout.
    """
    frame = max(1, round(SILENCE_FRAME_SECONDS * sample_rate))
    n_frames = len(audio) // frame
    if n_frames == 0:
        return None
    rms = np.sqrt(np.mean(np.square(audio[: n_frames * frame].reshape(n_frames, frame)), axis=1))
    loud = np.flatnonzero(rms > rms.max() * 10 ** (-SILENCE_BELOW_PEAK_DB / 20))
    if len(loud) == 0:
        return None
    return int(loud[0]) * frame, (int(loud[-1]) + 1) * frame


def _trim_bounds(n_samples: int, span: tuple[int, int] | None, sample_rate: int) -> slice:
    """What `trim_silence` keeps of `n_samples` samples with `voiced_span` `span`."""
    if span is None:
        return slice(0, n_samples)
    keep = round(KEEP_SILENCE_SECONDS * sample_rate)
    return slice(max(0, span[0] - keep), min(n_samples, span[1] + keep))


def trim_silence(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Cut leading and trailing silence down to KEEP_SILENCE_SECONDS: (n,) -> (m,), m <= n.

    Silence as in `voiced_span`.
    """
    return audio[_trim_bounds(len(audio), voiced_span(audio, sample_rate), sample_rate)]


def warp_to_16k(audio: np.ndarray, sample_rate: int, warp_percent: int) -> np.ndarray:
    """Resample to SAMPLE_RATE, stretched by warp_percent / 100: (n,) -> (~n * 16000 / sr * w,).

    Played back at 16 kHz, a warp above 100 lowers pitch and formants together and slows the
    speech, like a larger speaker; below 100 the reverse. 100 is a plain resample (22050 Hz ->
    16 kHz is the polyphase ratio 320/441).
    """
    ratio = Fraction(SAMPLE_RATE * warp_percent, sample_rate * WARP_STEPS)
    if ratio == 1:
        return audio.astype(np.float32)
    up, down = ratio.numerator, ratio.denominator
    resampled = resample_poly(audio.astype(np.float64), up, down, window=_lowpass(up, down))
    return resampled.astype(np.float32)


@functools.lru_cache(maxsize=64)
def _lowpass(up: int, down: int) -> np.ndarray:
    """resample_poly's own anti-aliasing filter, designed once per ratio.

    A warp such as 83/100 makes the polyphase ratio 1328/2205 and a 44,101-tap filter whose
    design costs more than the filtering; there are only 41 warps, so each is designed once.
    """
    max_rate = max(up, down)
    return firwin(2 * RESAMPLE_HALF_LENGTH * max_rate + 1, 1.0 / max_rate, window=RESAMPLE_WINDOW)


def clip_seconds(sample: int, trim_start: int, sample_rate: int, warp_percent: int) -> float:
    """Where sample `sample` of espeak-ng's output lands in the final clip, in seconds.

    Trimming drops the first `trim_start` samples; `warp_to_16k` maps input time t (seconds at
    `sample_rate`) to output time t * warp_percent / 100 (resample_poly keeps time zero).
    """
    return (sample - trim_start) * warp_percent / (sample_rate * WARP_STEPS)


def time_words(
    spec: UtteranceSpec,
    events: tuple[WordEvent, ...],
    span: tuple[int, int],
    trim_start: int,
    sample_rate: int,
) -> tuple[WordTime, ...]:
    """The transcript's words with their times in the final clip; () when they cannot be known.

    A word starts at espeak-ng's event for it (its first phoneme, a stop's silent closure
    included), the first word not before the first voiced frame (espeak-ng puts it at sample
    0, in the leading pause). A word ends where the next one starts, so a pause between words
    belongs to the word before it; the last word ends with the last voiced frame (`span`, from
    `voiced_span`). Events are matched to words by their character offsets in the text spoken
    (the transcript + the unspoken final punctuation); when a word has no event of its own
    (espeak-ng speaks "in the" as one word) the utterance gets no word times, not wrong ones.
    """
    words = list(re.finditer(r"\S+", spec.text))
    if [e.text_offset for e in events] != [w.start() for w in words]:
        return ()
    bounds = [max(events[0].sample, span[0]), *(e.sample for e in events[1:]), span[1]]
    if any(later <= earlier for earlier, later in itertools.pairwise(bounds)):
        return ()
    seconds = [clip_seconds(b, trim_start, sample_rate, spec.warp_percent) for b in bounds]
    return tuple(
        WordTime(word.group(), start, end)
        for word, start, end in zip(words, seconds[:-1], seconds[1:], strict=True)
    )


@dataclass(frozen=True)
class RenderedClip:
    """What `render_clip` makes."""

    audio: np.ndarray  # (n,) float32 at SAMPLE_RATE, trimmed, peak at PEAK_LEVEL
    words: tuple[WordTime, ...]  # the transcript's words timed in `audio`, or () (time_words)


def _speak(
    synthesizer: EspeakSynthesizer, spec: UtteranceSpec
) -> tuple[np.ndarray, tuple[WordTime, ...]]:
    """Synthesise and trim one clip: -> (its samples, still at espeak-ng's rate; its words
    timed in the final clip)."""
    speech = synthesizer.synthesize_with_words(
        spec.text + spec.ending,
        spec.voice,
        spec.rate_wpm,
        spec.pitch,
        pitch_range=spec.pitch_range,
        word_gap=spec.word_gap,
    )
    rate = synthesizer.sample_rate
    span = voiced_span(speech.audio, rate)
    kept = _trim_bounds(len(speech.audio), span, rate)
    words = time_words(spec, speech.words, span, kept.start, rate) if span else ()
    return speech.audio[kept], words


def render_clip(synthesizer: EspeakSynthesizer, spec: UtteranceSpec) -> RenderedClip:
    """Synthesise one clip: trimmed, at SAMPLE_RATE, peak at PEAK_LEVEL, with its word times."""
    trimmed, words = _speak(synthesizer, spec)
    audio = warp_to_16k(trimmed, synthesizer.sample_rate, spec.warp_percent)
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if peak == 0.0:
        raise CorpusError(f"espeak-ng produced no sound for {spec.text!r} with {spec.voice}")
    return RenderedClip((audio * (PEAK_LEVEL / peak)).astype(np.float32), words)


def clip_word_times(synthesizer: EspeakSynthesizer, spec: UtteranceSpec) -> tuple[WordTime, ...]:
    """`render_clip(synthesizer, spec).words` without resampling: for clips already on disk."""
    return _speak(synthesizer, spec)[1]


_worker_synthesizer: EspeakSynthesizer | None = None  # one per worker process


# What making one clip returns: its id, its length in samples (None: it was on disk already)
# and its word times.
_ClipResult = tuple[str, int | None, tuple[WordTime, ...]]


def _make_clip(
    spec: UtteranceSpec, out_dir: Path, synthesizer: EspeakSynthesizer, on_disk: bool
) -> _ClipResult:
    """Render and atomically write one clip, or only time its words if it is `on_disk`.

    A clip's words are timed by synthesising it again (deterministic; about 85 % of the cost
    of rendering, which is mostly synthesis): resumed runs and folders made before word times
    existed keep their WAVs as they are.
    """
    if on_disk:
        return spec.id, None, clip_word_times(synthesizer, spec)
    clip = render_clip(synthesizer, spec)
    write_wav(spec.wav_path(out_dir), clip.audio, SAMPLE_RATE)
    return spec.id, len(clip.audio), clip.words


def _make_clip_in_worker(task: tuple[UtteranceSpec, Path, bool]) -> _ClipResult:
    """Pool entry point: make one clip with this worker's synthesizer.

    The synthesizer is made lazily rather than in a pool initializer: a failing initializer
    makes the pool respawn workers forever, while an exception here reaches the caller.
    """
    global _worker_synthesizer
    if _worker_synthesizer is None:
        _worker_synthesizer = EspeakSynthesizer()
    spec, out_dir, on_disk = task
    return _make_clip(spec, out_dir, _worker_synthesizer, on_disk)


def _render_all(
    specs: list[UtteranceSpec],
    out_dir: Path,
    workers: int,
    synthesizer: EspeakSynthesizer,
    on_disk: set[str],
) -> Iterator[_ClipResult]:
    """Make the clips of `specs` (those in `on_disk` only timed), yielding each as it is done."""
    if workers == 1 or len(specs) <= 1:
        for spec in specs:
            yield _make_clip(spec, out_dir, synthesizer, spec.id in on_disk)
        return
    processes = min(workers, len(specs))
    chunksize = max(1, min(32, len(specs) // (processes * 16)))
    # spawn: a fresh interpreter per worker, safe whatever threads the caller runs.
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes=processes) as pool:
        tasks = ((spec, out_dir, spec.id in on_disk) for spec in specs)
        yield from pool.imap_unordered(_make_clip_in_worker, tasks, chunksize=chunksize)


def _settings(config: SampleCorpusConfig, espeak_version: str) -> dict[str, Any]:
    """What decides the corpus's bytes, as JSON values: equal settings, identical folders."""
    settings = asdict(config)
    del settings["workers"]
    settings.update(
        format_version=FORMAT_VERSION,
        espeak_ng_version=espeak_version,
        grammar=grammar.grammar_fingerprint(),
        sample_rate=SAMPLE_RATE,
    )
    return json.loads(json.dumps(settings))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CorpusError(f"{path}: unreadable ({e}); delete the folder and generate again") from e


def _write_json(path: Path, value: dict[str, Any]) -> None:
    """Write JSON atomically, so a killed run never leaves a half-written marker."""
    with atomic_write(path, encoding="utf-8") as stream:
        json.dump(value, stream, indent=2, sort_keys=True)
        stream.write("\n")


def _settings_mismatch(out_dir: Path, found: dict[str, Any], wanted: dict[str, Any]) -> str:
    keys = sorted(k for k in found.keys() | wanted.keys() if found.get(k) != wanted.get(k))
    differences = "; ".join(f"{k}: {found.get(k)!r} there, {wanted.get(k)!r} now" for k in keys)
    return (
        f"{out_dir} holds a sample corpus made with other settings ({differences}); "
        "pick another folder or delete this one"
    )


def _claim_folder(out_dir: Path, settings: dict[str, Any]) -> bool:
    """Make `out_dir` ours, or refuse. -> True if it holds a finished corpus with `settings`.

    A finished corpus (metadata.json) or an unfinished one (the state file) with the same
    settings is reused; with other settings, or a folder that is not a sample corpus at all,
    raises CorpusError rather than mixing two corpora or deleting someone's files.
    """
    metadata_path = out_dir / METADATA_NAME
    state_path = out_dir / STATE_NAME
    if metadata_path.exists():
        found = _read_json(metadata_path).get("settings", {})
        if found != settings:
            raise CorpusError(_settings_mismatch(out_dir, found, settings))
        return True
    if state_path.exists():
        found = _read_json(state_path)
        if found != settings:
            raise CorpusError(_settings_mismatch(out_dir, found, settings))
        logger.info("%s: resuming an unfinished sample corpus", out_dir)
        return False
    if out_dir.exists() and not out_dir.is_dir():
        raise CorpusError(f"{out_dir} is a file, not a folder; pick another output folder")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise CorpusError(
            f"{out_dir} is not empty and holds no sample corpus; "
            "pick another folder or empty this one"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(state_path, settings)
    return False


def _is_complete(out_dir: Path, config: SampleCorpusConfig) -> bool:
    """Whether every manifest, word-times file and clip of a finished corpus is still there
    (stat calls only). A corpus made before word times existed is not: a run completes it."""
    sizes = config.split_sizes()
    manifests = [out_dir / f"{split}.csv" for split in SPLITS]
    return all(p.exists() and word_times_path(p).exists() for p in manifests) and all(
        wav_path(out_dir, split, index).exists()
        for split, count in sizes.items()
        for index in range(count)
    )


def _existing_lengths(specs: Iterable[UtteranceSpec], out_dir: Path) -> dict[str, int]:
    """Lengths in samples of the clips already on disk (writes are atomic: they are whole)."""
    lengths: dict[str, int] = {}
    for spec in specs:
        path = spec.wav_path(out_dir)
        if not path.exists():
            continue
        try:
            lengths[spec.id] = read_wav_info(path).frames
        except AudioFormatError:
            logger.warning("%s: unreadable, synthesising it again", path)
            path.unlink()
    return lengths


def _remove_partial_files(out_dir: Path) -> None:
    """Delete temporary files a killed run left behind (`write_wav` writes `.<name>.*.tmp`)."""
    for split in SPLITS:
        for partial in (out_dir / WAV_FOLDER / split).glob(".*.tmp"):
            partial.unlink(missing_ok=True)


def _metadata(
    config: SampleCorpusConfig,
    settings: dict[str, Any],
    specs: list[UtteranceSpec],
    lengths: dict[str, int],
    words: dict[str, tuple[WordTime, ...]],
    voices: VoicePlan,
    native_rate: int,
) -> dict[str, Any]:
    """metadata.json: settings, and per split what was said, by whom, for how long, and how
    many utterances have no word times (`time_words`)."""
    sentences = {s: {u.text for u in specs if u.split == s} for s in SPLITS}
    used_voices = {s: sorted({u.voice for u in specs if u.split == s}) for s in SPLITS}
    splits: dict[str, Any] = {}
    for split in SPLITS:
        samples = sum(lengths[u.id] for u in specs if u.split == split)
        entry: dict[str, Any] = {
            "utterances": sum(1 for u in specs if u.split == split),
            "hours": round(samples / SAMPLE_RATE / 3600, 4),
            "sentences": len(sentences[split]),
            "voices_available": list(voices.for_split(split)),
            "voices_used": used_voices[split],
            "speaker_warp": split == "train",
            "utterances_without_word_times": sum(
                1 for u in specs if u.split == split and not words[u.id]
            ),
        }
        if split != "train":
            entry["sentences_unseen_in_train"] = len(sentences[split] - sentences["train"])
        splits[split] = entry
    available = {s: set(voices.for_split(s)) for s in SPLITS}
    return {
        "format_version": FORMAT_VERSION,
        "generator": "deepspeech data sample (espeak-ng)",
        "seed": config.seed,
        "sample_rate": SAMPLE_RATE,
        "vocabulary_size": len(grammar.vocabulary()),
        "templates": len(grammar.TEMPLATES),
        "accents": list(ACCENTS),
        "variants": {
            "train": list(voices.train_variants),
            "held_out": list(voices.held_out_variants),
            "excluded": list(voices.excluded_variants),
        },
        "voices_disjoint": {
            "train_dev": not available["train"] & available["dev"],
            "train_test": not available["train"] & available["test"],
            "dev_test": not available["dev"] & available["test"],
        },
        "espeak_ng": {"version": settings["espeak_ng_version"], "native_sample_rate": native_rate},
        "settings": settings,
        "splits": splits,
    }


def _summary(
    out_dir: Path, metadata: dict[str, Any], generated: int, reused: int, started: float
) -> SampleCorpusSummary:
    return SampleCorpusSummary(
        out_dir=out_dir,
        manifests={split: out_dir / f"{split}.csv" for split in SPLITS},
        metadata_path=out_dir / METADATA_NAME,
        utterances={s: metadata["splits"][s]["utterances"] for s in SPLITS},
        hours={s: metadata["splits"][s]["hours"] for s in SPLITS},
        generated=generated,
        reused=reused,
        seconds=time.perf_counter() - started,
    )


def make_sample_corpus(
    out_dir: Path,
    config: SampleCorpusConfig,
    progress: Callable[[int], None] | None = None,
) -> SampleCorpusSummary:
    """Generate (or finish, or reuse) a synthetic corpus in `out_dir`.

    `progress(n)` is called with the number of clips just finished. Clips already on disk are
    kept, but synthesised again for their word times (which are written only at the end), and
    reported as that is done. A folder finished with the same config returns at once; a
    folder from a killed run resumes; a finished folder made before word times existed gets
    its `<split>.words.jsonl`; a folder made with another config, or holding other files,
    raises CorpusError. With `workers` > 1 clips are made in spawned processes, so a
    script calling this needs the usual `if __name__ == "__main__":` guard.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    report = progress or (lambda _n: None)
    synthesizer = EspeakSynthesizer()
    settings = _settings(config, synthesizer.version)
    if _claim_folder(out_dir, settings) and _is_complete(out_dir, config):
        report(config.utterances)
        logger.info("%s: sample corpus already complete", out_dir)
        metadata = _read_json(out_dir / METADATA_NAME)
        return _summary(out_dir, metadata, 0, config.utterances, started)

    voices = plan_voices(
        list_variants(synthesizer.data_path), config.seed, config.held_out_variant_share
    )
    specs = plan_utterances(config, voices)
    synthesizer.check_voices(ACCENTS)
    for split in SPLITS:
        (out_dir / WAV_FOLDER / split).mkdir(parents=True, exist_ok=True)
    _remove_partial_files(out_dir)
    lengths = _existing_lengths(specs, out_dir)
    reused = len(lengths)
    logger.info(
        "%s: synthesising %d clips (%d already there, only timing their words) with %d worker(s)",
        out_dir,
        len(specs) - reused,
        reused,
        config.workers,
    )
    words: dict[str, tuple[WordTime, ...]] = {}
    # closing(): on an exception (Ctrl-C, a failing clip) the pool stops now, not at garbage
    # collection; clips already written stay, and the next run resumes from them.
    clips = _render_all(specs, out_dir, config.workers, synthesizer, set(lengths))
    with contextlib.closing(clips):
        for clip_id, n_samples, clip_words in clips:
            if n_samples is not None:
                lengths[clip_id] = n_samples
            words[clip_id] = clip_words
            report(1)

    _write_manifests(out_dir, specs, words)
    metadata = _metadata(config, settings, specs, lengths, words, voices, synthesizer.sample_rate)
    _write_json(out_dir / METADATA_NAME, metadata)
    (out_dir / STATE_NAME).unlink(missing_ok=True)
    return _summary(out_dir, metadata, len(specs) - reused, reused, started)


def _write_manifests(
    out_dir: Path, specs: list[UtteranceSpec], words: dict[str, tuple[WordTime, ...]]
) -> None:
    """Write each split's manifest and, beside it, its word times (same rows, same order)."""
    for split in SPLITS:
        rows = [(spec.wav_path(out_dir), spec) for spec in specs if spec.split == split]
        manifest = out_dir / f"{split}.csv"
        write_manifest(manifest, [Utterance(p, p.stat().st_size, u.text) for p, u in rows])
        # The manifest's wav_filename: the path relative to the CSV's folder, OUT.
        times = [(p.relative_to(out_dir).as_posix(), words[u.id]) for p, u in rows]
        write_word_times(word_times_path(manifest), times)
