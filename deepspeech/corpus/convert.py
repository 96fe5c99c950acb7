"""What every corpus importer does once it knows where the audio and transcripts are.

An importer (`librispeech`, `tedlium`, `commonvoice`) only reads its corpus's layout into a
`CorpusPlan`: per split, a list of `ConversionJob`s (source audio, optional time span, target
WAV, transcript). `convert_corpus` then does the rest the same way for all of them:

- normalises each transcript into the alphabet, and skips those that end up empty or that
  hold characters the alphabet cannot spell (digits, other scripts): dropping them would
  train the model on a transcript that is not what was said;
- decodes the source audio once per file (a TED-LIUM talk is cut into many segments) in a
  pool of worker processes, writes 16 kHz mono PCM_16 WAVs under `OUT/<split>/`, and skips
  clips that are too long (`max_seconds`), too short for their transcript, missing or corrupt;
- reuses WAVs an earlier run wrote (`write_wav` is atomic, so an existing file is complete),
  so an interrupted import resumes and a finished one re-runs in seconds;
- writes `OUT/<split>.csv` per split and returns an `ImportSummary` of what it kept and what
  it skipped, with reasons and examples.

A corrupt file never stops an import: it is counted and named in the summary. Even a decoder
that kills its worker process only costs that file (see `_run_batches`).

From Python, `convert_corpus(plan_librispeech(src, out_dir), config)` imports LibriSpeech;
the other corpora the same way with their own `plan_*`.
"""

from __future__ import annotations

import functools
import itertools
import logging
import multiprocessing
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from multiprocessing.context import BaseContext
from pathlib import Path

import numpy as np

from deepspeech.audio import SAMPLE_RATE, load_audio, n_feature_frames, read_wav_info, write_wav
from deepspeech.data.manifest import Utterance, write_manifest
from deepspeech.errors import AudioFormatError, ConfigError, CorpusError
from deepspeech.parallel import available_cpus
from deepspeech.text import Alphabet, normalize_text
from deepspeech.timing import format_duration

logger = logging.getLogger(__name__)

# 30 s keeps nearly all of LibriSpeech (utterances up to ~35 s), TED-LIUM segments and Common
# Voice (clips under 10 s), while capping the longest sequence a BiRNN batch is padded to
# (3000 frames): a few very long clips would otherwise set the memory and time of every batch.
DEFAULT_MAX_SECONDS = 30.0
MAX_EXAMPLES = 3  # file names the summary shows per skip reason
JOBS_PER_BATCH = 16  # jobs sent to a worker at once: amortises inter-process overhead
BATCHES_IN_FLIGHT_PER_WORKER = 4  # bounds memory on million-clip corpora, keeps workers busy

# Why a job was skipped; the keys of `ImportSummary.skipped`, shown as they are.
TOO_LONG = "longer than --max-seconds"
TOO_SHORT = "too short for its transcript (fewer 10 ms frames than characters; CTC cannot align)"
EMPTY_TRANSCRIPT = "empty transcript after normalisation"
UNSPELLABLE = "characters the alphabet cannot spell (digits, other scripts)"
MISSING_AUDIO = "audio file missing"
UNREADABLE_AUDIO = "unreadable or corrupt audio"
OUTSIDE_RECORDING = "segment starts after the recording ends"


@dataclass(frozen=True)
class ImportConfig:
    """How to convert: the alphabet transcripts must fit, the length limit, the parallelism."""

    alphabet: Alphabet = field(default_factory=Alphabet.default)
    max_seconds: float | None = DEFAULT_MAX_SECONDS  # longer clips are skipped; None: no limit
    workers: int = field(default_factory=available_cpus)  # processes; 1 converts in-process

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"workers must be at least 1, got {self.workers}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ConfigError(
                f"max_seconds must be positive (or None for no limit), got {self.max_seconds}"
            )


@dataclass(frozen=True)
class ConversionJob:
    """One utterance to produce: `source` audio (the span `start`..`end` seconds of it, if
    given) becomes the 16 kHz mono WAV `wav_path` with `transcript`.

    `transcript` is the corpus's text after the corpus's own clean-up (markers removed);
    `convert_corpus` normalises it into the alphabet.
    """

    source: Path
    wav_path: Path
    transcript: str
    start: float | None = None  # seconds; None with `end`: the whole file
    end: float | None = None

    @property
    def label(self) -> str:
        """How messages and the summary name this job: the file, and the span if any."""
        if self.start is None or self.end is None:
            return self.source.name
        return f"{self.source.name} {self.start:.2f}-{self.end:.2f} s"


@dataclass
class SkipTally:
    """How many jobs were skipped for one reason, and the first few of them by name."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, example: str) -> None:
        self.count += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(example)


@dataclass
class CorpusPlan:
    """What an importer found: jobs per split (manifest order) and what it already skipped.

    `skipped` holds what the importer rules out from the layout alone (TED-LIUM's segments
    marked not to be scored); the summary of `convert_corpus` lists it beside its own skips.
    """

    corpus: str
    out_dir: Path
    splits: dict[str, list[ConversionJob]]
    skipped: dict[str, SkipTally] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Jobs in all splits: the length of the progress bar."""
        return sum(len(jobs) for jobs in self.splits.values())

    def manifest_path(self, split: str) -> Path:
        return self.out_dir / f"{split}.csv"


@dataclass(frozen=True)
class SplitSummary:
    """One split's manifest; `manifest` is None when nothing was kept (no file written)."""

    manifest: Path | None
    utterances: int
    hours: float


@dataclass(frozen=True)
class ImportSummary:
    """What an import kept and skipped; `to_text()` is what the CLI prints."""

    corpus: str
    out_dir: Path
    splits: dict[str, SplitSummary]
    converted: int  # WAVs written by this run
    reused: int  # WAVs an earlier run had written
    skipped: dict[str, SkipTally]  # reason -> count and examples
    seconds: float  # wall-clock time of the import
    max_seconds: float | None

    @property
    def kept(self) -> int:
        return sum(s.utterances for s in self.splits.values())

    @property
    def hours(self) -> float:
        return sum(s.hours for s in self.splits.values())

    @property
    def manifests(self) -> dict[str, Path]:
        """Split -> manifest path, for the splits that kept anything."""
        return {name: s.manifest for name, s in self.splits.items() if s.manifest is not None}

    def to_text(self) -> str:
        """A few lines for a terminal: per split kept counts, then skip reasons with examples."""
        lines = [
            f"{self.corpus}: kept {self.kept} utterances ({self.hours:.2f} h) in "
            f"{format_duration(self.seconds)}; {self.converted} converted, {self.reused} reused"
        ]
        width = max((len(name) for name in self.splits), default=0)
        for name, split in self.splits.items():
            where = split.manifest if split.manifest is not None else "(no manifest)"
            counts = f"{split.utterances:>7} utterances  {split.hours:8.2f} h"
            lines.append(f"  {name:<{width}}  {counts}  {where}")
        total_skipped = sum(t.count for t in self.skipped.values())
        if not total_skipped:
            lines.append("skipped nothing")
            return "\n".join(lines)
        lines.append(f"skipped {total_skipped}:")
        for reason, tally in self.skipped.items():
            if reason == TOO_LONG and self.max_seconds is not None:
                reason = f"{reason} ({self.max_seconds:g} s)"
            lines.append(f"  {reason}: {tally.count}, e.g. {', '.join(tally.examples)}")
        return "\n".join(lines)


def prepare_transcript(text: str, alphabet: Alphabet) -> tuple[str, str | None]:
    """(transcript normalised into `alphabet`, skip reason or None).

    `normalize_text` folds accents and case and drops punctuation; it also drops letters and
    digits it cannot spell, and that would make the transcript lie about the audio ("3 cats"
    -> "cats"). So an utterance with such a character is skipped (UNSPELLABLE), as is one with
    nothing left (EMPTY_TRANSCRIPT).
    """
    normalised = normalize_text(text, alphabet)
    if unspellable_chars(text, alphabet):
        return normalised, UNSPELLABLE
    if not normalised.strip():
        return normalised, EMPTY_TRANSCRIPT
    return normalised, None


def unspellable_chars(text: str, alphabet: Alphabet) -> set[str]:
    """Letters and digits of `text` that `normalize_text` would drop instead of spelling."""
    return {c for c in set(text) if c not in alphabet and _is_unspellable(c, alphabet)}


@functools.lru_cache(maxsize=4096)
def _is_unspellable(char: str, alphabet: Alphabet) -> bool:
    """Cached: a corpus has millions of transcripts but only a few hundred characters."""
    return char.isalnum() and not normalize_text(char, alphabet)


def convert_corpus(
    plan: CorpusPlan,
    config: ImportConfig | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Convert every job of `plan`, write `OUT/<split>.csv` per split, and summarise.

    `progress(n)` is called as jobs finish (converted, reused or skipped), `plan.total` in
    all. Manifest rows follow the plan's order whatever order the workers finish in, so
    re-running gives identical manifests. A split that keeps nothing gets no manifest (an
    earlier one is removed, so no stale manifest survives) and a warning.
    """
    started = time.perf_counter()
    config = config or ImportConfig()
    report = progress or (lambda _n: None)
    skipped = {reason: replace(t, examples=list(t.examples)) for reason, t in plan.skipped.items()}

    indexed = [(split, job) for split, jobs in plan.splits.items() for job in jobs]
    ready = _screen_transcripts([job for _, job in indexed], config.alphabet, skipped, report)
    logger.info(
        "%s: %d utterances to convert with %d worker(s), %d skipped for their transcripts",
        plan.corpus,
        len(ready),
        config.workers,
        len(indexed) - len(ready),
    )
    outcomes = _convert_jobs(ready, config, report)
    splits, converted, reused = _write_manifests(plan, indexed, ready, outcomes, skipped)
    summary = ImportSummary(
        corpus=plan.corpus,
        out_dir=plan.out_dir,
        splits=splits,
        converted=converted,
        reused=reused,
        skipped=skipped,
        seconds=time.perf_counter() - started,
        max_seconds=config.max_seconds,
    )
    logger.info(
        "%s: kept %d utterances (%.2f h), skipped %d",
        plan.corpus,
        summary.kept,
        summary.hours,
        sum(t.count for t in skipped.values()),
    )
    return summary


def _screen_transcripts(
    jobs: Sequence[ConversionJob],
    alphabet: Alphabet,
    skipped: dict[str, SkipTally],
    report: Callable[[int], None],
) -> list[tuple[int, ConversionJob]]:
    """(index, job with its transcript normalised) for the jobs whose transcript is usable.

    The others are added to `skipped` under their reason, each reported as done.
    """
    ready: list[tuple[int, ConversionJob]] = []
    for index, job in enumerate(jobs):
        transcript, reason = prepare_transcript(job.transcript, alphabet)
        if reason is None:
            ready.append((index, replace(job, transcript=transcript)))
            continue
        example = job.label
        if reason == UNSPELLABLE:
            shown = "".join(sorted(unspellable_chars(job.transcript, alphabet)))
            example = f"{job.label} ({shown!r})"
        skipped.setdefault(reason, SkipTally()).add(example)
        report(1)
    return ready


def _convert_jobs(
    ready: Sequence[tuple[int, ConversionJob]],
    config: ImportConfig,
    report: Callable[[int], None],
) -> dict[int, _Outcome]:
    """Convert the ready jobs in worker processes: job index -> what became of it."""
    _prepare_folders(job.wav_path.parent for _, job in ready)
    outcomes: dict[int, _Outcome] = {}
    for batch_outcomes in _run_batches(_batches(ready, config.workers), config):
        for outcome in batch_outcomes:
            outcomes[outcome.index] = outcome
        report(len(batch_outcomes))
    return outcomes


def _write_manifests(
    plan: CorpusPlan,
    indexed: Sequence[tuple[str, ConversionJob]],
    ready: Sequence[tuple[int, ConversionJob]],
    outcomes: dict[int, _Outcome],
    skipped: dict[str, SkipTally],
) -> tuple[dict[str, SplitSummary], int, int]:
    """Write each split's manifest of kept utterances: (split summaries, converted, reused).

    Jobs that were skipped while converting are added to `skipped`.
    """
    rows: dict[str, list[Utterance]] = {split: [] for split in plan.splits}
    samples = dict.fromkeys(plan.splits, 0)
    converted = reused = 0
    for index, job in ready:  # in plan order: manifests, examples and logs are deterministic
        outcome = outcomes[index]
        if outcome.reason is None:
            split = indexed[index][0]
            rows[split].append(Utterance(job.wav_path, job.wav_path.stat().st_size, job.transcript))
            samples[split] += outcome.n_samples
            reused += outcome.reused
            converted += not outcome.reused
        else:
            if outcome.reason == UNREADABLE_AUDIO:  # worth a look; the rest is routine
                logger.warning("skipping %s", outcome.detail)
            else:
                logger.debug("skipping %s: %s", job.label, outcome.reason)
            skipped.setdefault(outcome.reason, SkipTally()).add(job.label)
    splits = {
        split: _write_split(plan, split, rows[split], samples[split]) for split in plan.splits
    }
    return splits, converted, reused


def _write_split(plan: CorpusPlan, split: str, rows: list[Utterance], samples: int) -> SplitSummary:
    path = plan.manifest_path(split)
    if not rows:
        logger.warning("%s: %s kept no utterance; no manifest written", plan.corpus, split)
        path.unlink(missing_ok=True)
        return SplitSummary(manifest=None, utterances=0, hours=0.0)
    write_manifest(path, rows)
    return SplitSummary(manifest=path, utterances=len(rows), hours=samples / SAMPLE_RATE / 3600)


def _prepare_folders(folders: Iterable[Path]) -> None:
    """Create the WAV folders and delete temporary files a killed run left in them."""
    for folder in set(folders):
        folder.mkdir(parents=True, exist_ok=True)
        for partial in folder.glob(".*.tmp"):  # `write_wav` writes `.<name>.<random>.tmp`
            partial.unlink(missing_ok=True)


# ---- conversion in worker processes -------------------------------------------------------

Group = list[tuple[int, ConversionJob]]  # jobs sharing one source file, decoded once
Batch = list[Group]  # what one worker task converts


@dataclass(frozen=True)
class _Outcome:
    """What became of one job: kept (`reason` None) with its length, or skipped and why."""

    index: int
    n_samples: int = 0
    reason: str | None = None
    detail: str = ""  # the error message, for unreadable audio
    reused: bool = False


def _batches(ready: Sequence[tuple[int, ConversionJob]], workers: int) -> list[Batch]:
    """Group jobs by source file (first-seen order), then pack groups into batches.

    Batches are small enough that every worker gets several, so one slow file does not
    leave the others idle at the end.
    """
    groups: dict[Path, Group] = {}
    for index, job in ready:
        groups.setdefault(job.source, []).append((index, job))
    size = max(1, min(JOBS_PER_BATCH, len(ready) // (workers * BATCHES_IN_FLIGHT_PER_WORKER)))
    batches: list[Batch] = []
    current: Batch = []
    count = 0
    for group in groups.values():
        current.append(group)
        count += len(group)
        if count >= size:
            batches.append(current)
            current, count = [], 0
    if current:
        batches.append(current)
    return batches


def _convert_batch(batch: Batch, max_seconds: float | None) -> list[_Outcome]:
    """Worker entry point: convert each group of a batch."""
    return [outcome for group in batch for outcome in _convert_group(group, max_seconds)]


def _convert_group(group: Group, max_seconds: float | None) -> list[_Outcome]:
    """Convert jobs that share a source: reuse finished WAVs, decode the source only if needed.

    Audio problems become skip outcomes; anything else (a full disk, a bug) propagates.
    """
    outcomes: list[_Outcome] = []
    todo: Group = []
    for index, job in group:
        existing = _existing_samples(job.wav_path)
        if existing is not None:
            reason = _length_problem(existing, len(job.transcript), max_seconds)
            outcomes.append(_Outcome(index, existing, reason, reused=True))
        elif _span_too_long(job, max_seconds):  # known from the STM times: no need to decode
            outcomes.append(_Outcome(index, reason=TOO_LONG))
        else:
            todo.append((index, job))
    if not todo:
        return outcomes
    source = todo[0][1].source
    if not source.is_file():
        return outcomes + [_Outcome(i, reason=MISSING_AUDIO, detail=str(source)) for i, _ in todo]
    try:
        audio = load_audio(source)
    except AudioFormatError as e:
        return outcomes + [_Outcome(i, reason=UNREADABLE_AUDIO, detail=str(e)) for i, _ in todo]
    for index, job in todo:
        clip = _cut(audio, job)
        if clip is None:
            outcomes.append(_Outcome(index, reason=OUTSIDE_RECORDING))
            continue
        reason = _length_problem(len(clip), len(job.transcript), max_seconds)
        if reason is None:
            write_wav(job.wav_path, clip)
        outcomes.append(_Outcome(index, len(clip), reason))
    return outcomes


def _existing_samples(wav_path: Path) -> int | None:
    """Length of a WAV an earlier run wrote, or None if there is none (or it is unreadable)."""
    if not wav_path.exists():
        return None
    try:
        return read_wav_info(wav_path).frames
    except AudioFormatError:
        return None  # not one of ours after all: convert again, replacing it


def _span_too_long(job: ConversionJob, max_seconds: float | None) -> bool:
    if max_seconds is None or job.start is None or job.end is None:
        return False
    return job.end - job.start > max_seconds


def _cut(audio: np.ndarray, job: ConversionJob) -> np.ndarray | None:
    """The job's span of 16 kHz `audio` (all of it without a span); None if the span starts
    at or after the end of the recording. A span running past the end is cut short."""
    if job.start is None or job.end is None:
        return audio
    first = round(job.start * SAMPLE_RATE)
    if first >= len(audio):
        return None
    return audio[first : round(job.end * SAMPLE_RATE)]


def _length_problem(n_samples: int, n_chars: int, max_seconds: float | None) -> str | None:
    """TOO_LONG, TOO_SHORT or None for a clip of `n_samples` with an `n_chars` transcript.

    CTC emits at most one label per feature frame (10 ms), so a clip with fewer frames than
    characters cannot be aligned to its transcript at all: it only adds infinite losses.
    """
    if max_seconds is not None and n_samples > max_seconds * SAMPLE_RATE:
        return TOO_LONG
    if n_samples == 0 or n_feature_frames(n_samples) < n_chars:
        return TOO_SHORT
    return None


# ---- the process pool ---------------------------------------------------------------------

BatchConverter = Callable[[Batch, float | None], list[_Outcome]]


def _run_batches(
    batches: list[Batch], config: ImportConfig, convert: BatchConverter = _convert_batch
) -> Iterator[list[_Outcome]]:
    """Yield each batch's outcomes as it finishes, using `config.workers` processes.

    A worker that dies (a decoder crashing on a corrupt file, the OOM killer) breaks a
    `ProcessPoolExecutor`, and with it every batch in flight. Those batches are then run
    again one file at a time in a single worker, so the file that kills it is found and
    counted as unreadable; then the pool resumes with the batches not yet started.
    """
    if config.workers == 1 or len(batches) <= 1:
        for batch in batches:
            yield convert(batch, config.max_seconds)
        return
    context = multiprocessing.get_context("spawn")  # fresh interpreters: safe with any threads
    pending = iter(batches)
    workers = min(config.workers, len(batches))
    while True:
        interrupted = yield from _run_pool(pending, workers, config.max_seconds, context, convert)
        if not interrupted:
            return
        groups = [group for batch in interrupted for group in batch]
        logger.warning(
            "a worker process died; converting the %d files it may have been on one at a time",
            len(groups),
        )
        yield from _run_isolated(groups, config.max_seconds, context, convert)


def _run_pool(
    pending: Iterator[Batch],
    workers: int,
    max_seconds: float | None,
    context: BaseContext,
    convert: BatchConverter,
) -> Generator[list[_Outcome], None, list[Batch]]:
    """Run batches from `pending` until it is empty (-> []) or the pool breaks (-> the
    batches that were in flight and did not finish)."""
    limit = workers * BATCHES_IN_FLIGHT_PER_WORKER
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        in_flight: dict[Future[list[_Outcome]], Batch] = {}

        def fill() -> None:
            for batch in itertools.islice(pending, limit - len(in_flight)):
                in_flight[pool.submit(convert, batch, max_seconds)] = batch

        fill()
        while in_flight:
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                wait(in_flight)  # once the pool is broken, every future fails at once
                interrupted = []
                for future, batch in in_flight.items():
                    if isinstance(future.exception(), BrokenProcessPool):
                        interrupted.append(batch)
                    else:
                        yield future.result()
                return interrupted
            for future in done:
                del in_flight[future]
                yield future.result()
            fill()
    return []


def _run_isolated(
    groups: Sequence[Group],
    max_seconds: float | None,
    context: BaseContext,
    convert: BatchConverter,
) -> Iterator[list[_Outcome]]:
    """Convert groups one at a time in one worker; a group that kills it is unreadable."""
    pool: ProcessPoolExecutor | None = None
    try:
        for group in groups:
            if pool is None:
                pool = ProcessPoolExecutor(max_workers=1, mp_context=context)
            try:
                yield pool.submit(convert, [group], max_seconds).result()
            except BrokenProcessPool:
                pool.shutdown()
                pool = None
                source = group[0][1].source
                logger.debug("%s: the worker converting it died", source)
                detail = f"{source}: the decoder process died reading it"
                yield [
                    _Outcome(index, reason=UNREADABLE_AUDIO, detail=detail) for index, _ in group
                ]
    finally:
        if pool is not None:
            pool.shutdown()


def require_folder(src: Path, corpus: str) -> Path:
    """`src` if it is a folder, else a CorpusError saying what is wrong with it."""
    if not src.exists():
        raise CorpusError(f"{src}: no such folder; give the extracted {corpus} folder")
    if not src.is_dir():
        raise CorpusError(f"{src}: not a folder; extract the {corpus} archive and give its folder")
    return src


def splits_in_order(names: Iterable[str], preferred: Sequence[str]) -> list[str]:
    """`preferred` names first in that order (train, dev, test), then the rest sorted."""
    names = set(names)
    return [n for n in preferred if n in names] + sorted(names - set(preferred))
