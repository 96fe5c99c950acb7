"""`deepspeech data import`: your own recordings and their transcripts -> manifests + WAVs.

Public corpora come with their layout and their splits; a user's recordings come with
neither. This module reads one of two layouts into a `CorpusPlan`, and splits it:

- SRC is a folder: every audio file in it and its subfolders, with its transcript in a `.txt`
  of the same stem beside it (`alice/001.flac` + `alice/001.txt`). An audio file without one
  is skipped and counted.
- SRC is a CSV or TSV file (comma or tab, told apart by the header line) whose header names
  a path column (`path`, `file`, `audio`, `wav_filename`, ...) and a transcript column
  (`transcript`, `text`, `sentence`, ...). Relative paths resolve against the table's folder;
  a row naming a missing file is skipped and counted. SRC is the table itself, never a folder
  holding one: a recordings folder may hold stray tables, and guessing which one is meant
  would be worse than asking (the error for a folder without `.txt` files names its tables).

Audio is anything libsndfile decodes (WAV, FLAC, OGG, MP3, ...) at any rate and channel
count; `convert_corpus` writes it as a 16 kHz mono PCM_16 WAV at `OUT/wav/<path>.wav`, the
path relative to SRC (the table layout: to the folder holding the table and every file).
The split is not in the WAV path, so re-splitting with another `--split` or `--seed` reuses
every WAV. `convert_corpus` also normalises transcripts and skips unreadable audio.

The split (`split_groups`) is by number of files, deterministic for a seed: groups are
ordered by a hash of (seed, group) and cut at the cumulative ratios, so adding recordings
moves few of the others. A group is one file, or with a speaker pattern one speaker: a
regular expression searched in each path whose first group (else whole match) names the
speaker, so no speaker is heard in two splits.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import logging
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from deepspeech.corpus import SPLITS
from deepspeech.corpus.convert import MISSING_AUDIO, ConversionJob, CorpusPlan, SkipTally
from deepspeech.errors import ConfigError, CorpusError

logger = logging.getLogger(__name__)

CORPUS = "recordings"
WAV_FOLDER = "wav"  # OUT/wav/: the converted WAVs, whatever split they are in
DEFAULT_RATIOS = (0.8, 0.1, 0.1)  # train, dev, test
TRANSCRIPT_SUFFIX = ".txt"
# What libsndfile (soundfile) decodes, by the suffixes such files usually carry.
AUDIO_SUFFIXES = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc",
     ".au", ".snd", ".caf", ".w64", ".rf64", ".sph", ".nist", ".voc"}
)  # fmt: skip
# Header names accepted for the two table columns, case-insensitive, first match wins.
PATH_COLUMNS = ("path", "file", "filename", "file_name", "audio", "audio_path", "audio_file",
                "wav", "wav_filename", "wav_path")  # fmt: skip
TRANSCRIPT_COLUMNS = ("transcript", "text", "sentence", "transcription")
RATIO_TOLERANCE = 1e-3  # "0.333,0.333,0.333" adds up to 1 closely enough

# Why a file was skipped before conversion; beside `convert_corpus`'s reasons in the summary.
NO_TRANSCRIPT = f"no transcript ({TRANSCRIPT_SUFFIX} of the same name beside it)"
UNREADABLE_TRANSCRIPT = "transcript file unreadable or not UTF-8 text"
NO_PATH = "table row without an audio path"
DUPLICATE = "same output WAV as an earlier file (listed twice, or one name, two extensions)"
NO_SPEAKER = "path does not match --speaker-pattern"

EXPECTED_LAYOUT = (
    "expected a folder of audio files (WAV, FLAC, OGG, MP3, ...) with a .txt transcript of "
    "the same name beside each (e.g. alice/001.flac + alice/001.txt), or a CSV/TSV file whose "
    "header names a path and a transcript column (e.g. path,transcript)"
)


@dataclass(frozen=True)
class SplitConfig:
    """How to split recordings: train/dev/test fractions, the seed, the speaker pattern."""

    ratios: tuple[float, float, float] = DEFAULT_RATIOS
    seed: int = 0
    speaker_pattern: str | None = None  # regex; its first group (else whole match): speaker

    def __post_init__(self) -> None:
        if len(self.ratios) != len(SPLITS) or not all(
            math.isfinite(r) and r >= 0 for r in self.ratios
        ):
            raise ConfigError(
                f"--split: expected {len(SPLITS)} fractions >= 0 for train, dev, test, "
                f"got {self.ratios}"
            )
        if abs(sum(self.ratios) - 1) > RATIO_TOLERANCE:
            raise ConfigError(
                f"--split: the fractions must add up to 1, got {sum(self.ratios):g} "
                f"({','.join(f'{r:g}' for r in self.ratios)})"
            )
        if self.speaker_pattern is not None:
            try:
                re.compile(self.speaker_pattern)
            except re.error as e:
                raise ConfigError(
                    f"--speaker-pattern: {self.speaker_pattern!r} is not a regular expression ({e})"
                ) from None


def parse_ratios(text: str) -> tuple[float, float, float]:
    """ "0.8,0.1,0.1" -> (0.8, 0.1, 0.1); fewer values leave the later splits empty
    ("0.9,0.1": no test set). ConfigError for anything else; `SplitConfig` checks the sum."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if not 1 <= len(values) <= len(SPLITS):
        raise ConfigError(
            f"--split: expected up to {len(SPLITS)} comma-separated fractions for train, dev, "
            f"test (e.g. 0.8,0.1,0.1), got {text!r}"
        )
    values += [0.0] * (len(SPLITS) - len(values))
    return values[0], values[1], values[2]


@dataclass(frozen=True)
class _Found:
    """A recording with its transcript: `name` is its path as the user wrote or sees it
    (relative to SRC, or as in the table), for labels and the speaker pattern."""

    name: str
    job: ConversionJob


def plan_recordings(src: Path, out_dir: Path, split: SplitConfig | None = None) -> CorpusPlan:
    """Find the recordings at `src` (a folder or a CSV/TSV file) and split them.

    Files skipped before conversion (no transcript, missing, listed twice, no speaker) are in
    the plan's `skipped`. Raises CorpusError when `src` has no usable layout, ConfigError
    for a speaker pattern that matches no path at all.
    """
    src, out_dir = Path(src), Path(out_dir)
    split = split or SplitConfig()
    skipped: dict[str, SkipTally] = {}
    if src.is_dir():
        found = _find_in_folder(src, out_dir, skipped)
    elif src.is_file():
        found = _read_table(src, out_dir / WAV_FOLDER, skipped)
    else:
        raise CorpusError(f"{src}: no such file or folder; {EXPECTED_LAYOUT}")
    found = _drop_duplicates(found, skipped)
    groups = _group_by_speaker(found, split.speaker_pattern, skipped)
    assignment = split_groups({key: len(items) for key, items in groups.items()}, split)
    splits: dict[str, list[ConversionJob]] = {name: [] for name in SPLITS}
    for key, items in groups.items():
        splits[assignment[key]].extend(item.job for item in items)
    for jobs in splits.values():
        jobs.sort(key=lambda job: job.wav_path)  # manifest order: by output path
    speakers = f" of {len(groups)} speakers" if split.speaker_pattern else ""
    counts = ", ".join(f"{name} {len(jobs)}" for name, jobs in splits.items())
    logger.info(
        "%s: %d files%s split into %s", CORPUS, sum(map(len, splits.values())), speakers, counts
    )
    return CorpusPlan(corpus=CORPUS, out_dir=out_dir, splits=splits, skipped=skipped)


# ---- the folder layout --------------------------------------------------------------------


def _find_in_folder(src: Path, out_dir: Path, skipped: dict[str, SkipTally]) -> list[_Found]:
    """Audio files under `src` with their `.txt` transcripts, by path.

    CorpusError if there is no audio file, or none has a transcript (naming any CSV/TSV
    tables in `src`, which may be what was meant).
    """
    audio = list(_audio_files(src, exclude=out_dir / WAV_FOLDER))
    if not audio:
        raise CorpusError(f"{src}: no audio file found; {EXPECTED_LAYOUT}")
    found: list[_Found] = []
    for path in audio:
        name = path.relative_to(src).as_posix()
        transcript_file = path.with_suffix(TRANSCRIPT_SUFFIX)
        if not transcript_file.is_file():
            skipped.setdefault(NO_TRANSCRIPT, SkipTally()).add(name)
            continue
        try:
            transcript = transcript_file.read_text(encoding="utf-8-sig").strip()
        except (OSError, UnicodeDecodeError):
            skipped.setdefault(UNREADABLE_TRANSCRIPT, SkipTally()).add(name)
            continue
        wav_path = out_dir / WAV_FOLDER / Path(name).with_suffix(".wav")
        found.append(_Found(name, ConversionJob(path, wav_path, transcript)))
    if not found and NO_TRANSCRIPT in skipped:
        raise CorpusError(_no_transcripts_message(src, len(audio)))
    return found


def _audio_files(folder: Path, exclude: Path) -> Iterator[Path]:
    """Audio files under `folder` by suffix, in sorted order. Hidden files and folders (such
    as macOS `._x.wav` shadows) are left out, and so is `exclude`, the WAVs an import wrote
    when OUT lies inside SRC."""
    excluded = exclude.resolve()
    for root, folders, files in os.walk(folder):
        folders[:] = sorted(
            name
            for name in folders
            if not name.startswith(".") and (Path(root) / name).resolve() != excluded
        )
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_SUFFIXES:
                yield Path(root) / name


def _no_transcripts_message(src: Path, n_audio: int) -> str:
    tables = sorted(p.name for p in src.iterdir() if p.suffix.lower() in (".csv", ".tsv"))
    message = f"{src}: none of its {n_audio} audio files has a {TRANSCRIPT_SUFFIX} transcript"
    if tables:
        return f"{message}; to import a table, give it as SRC: {src / tables[0]}"
    return f"{message} beside it; {EXPECTED_LAYOUT}"


# ---- the table layout ---------------------------------------------------------------------


def _read_table(table: Path, wav_root: Path, skipped: dict[str, SkipTally]) -> list[_Found]:
    """The rows of a CSV/TSV naming existing audio files, in table order.

    CorpusError for a table without a usable header, one that is not UTF-8 text or not
    valid CSV, one without rows, or one whose files are all missing.
    """
    rows = list(_table_rows(table))
    if not rows:
        raise CorpusError(f"{table}: the table has a header but no rows")
    sources: list[tuple[str, Path, str]] = []  # (path as written, absolute path, transcript)
    missing: list[Path] = []
    for line, raw_path, transcript in rows:
        if not raw_path:
            skipped.setdefault(NO_PATH, SkipTally()).add(f"{table.name} line {line}")
            continue
        source = Path(os.path.abspath(table.parent / raw_path))
        if source.is_file():
            sources.append((raw_path, source, transcript))
        else:
            skipped.setdefault(MISSING_AUDIO, SkipTally()).add(raw_path)
            missing.append(source)
    if missing and not sources:
        raise CorpusError(
            f"{table}: none of the {len(missing)} files it names exists (e.g. {missing[0]}); "
            "relative paths resolve against the table's folder"
        )
    # WAV paths mirror the sources relative to the folder holding the table and every file.
    base = os.path.commonpath([table.parent.absolute(), *(s.parent for _, s, _ in sources)])
    found = []
    for raw_path, source, transcript in sources:
        wav_path = wav_root / source.relative_to(base).with_suffix(".wav")
        found.append(_Found(raw_path, ConversionJob(source, wav_path, transcript)))
    return found


def _table_rows(table: Path) -> Iterator[tuple[int, str, str]]:
    """(line number, path, transcript) per non-blank row of a CSV or TSV with a header.

    Tab-separated if the header line holds a tab, else comma-separated. A TSV is read without
    quoting (as Common Voice's are: transcripts hold bare `"`), a CSV with standard quoting.
    """
    try:
        with table.open(encoding="utf-8-sig", newline="") as stream:  # -sig: Excel's BOM
            first = stream.readline()
            delimiter = "\t" if "\t" in first else ","
            quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
            header = next(csv.reader([first], delimiter=delimiter, quoting=quoting), [])
            path_at, text_at = _table_columns(table, header)
            reader = csv.reader(stream, delimiter=delimiter, quoting=quoting)
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                path = row[path_at].strip() if path_at < len(row) else ""
                text = row[text_at].strip() if text_at < len(row) else ""
                yield reader.line_num + 1, path, text
    except UnicodeDecodeError:
        raise CorpusError(f"{table}: not UTF-8 text; save the table as UTF-8") from None
    except csv.Error as e:
        raise CorpusError(f"{table}: not a valid CSV/TSV table ({e})") from None


def _table_columns(table: Path, header: Sequence[str]) -> tuple[int, int]:
    """Indices of the path and transcript columns in `header`; CorpusError if either lacks."""
    names = [h.strip().lower() for h in header]
    found = []
    for kind, accepted in (("path", PATH_COLUMNS), ("transcript", TRANSCRIPT_COLUMNS)):
        index = next((names.index(a) for a in accepted if a in names), None)
        if index is None:
            raise CorpusError(
                f"{table}: no {kind} column in the header {[h.strip() for h in header]}; "
                f"the first line must name the columns: the audio path "
                f"({', '.join(PATH_COLUMNS[:5])}, ...) and the transcript "
                f"({', '.join(TRANSCRIPT_COLUMNS)}), e.g. path,transcript"
            )
        found.append(index)
    return found[0], found[1]


# ---- duplicates, speakers and the split ---------------------------------------------------


def _drop_duplicates(found: Sequence[_Found], skipped: dict[str, SkipTally]) -> list[_Found]:
    """The first of the recordings that would write one WAV (a file listed twice, `a.wav`
    and `a.mp3` beside one `a.txt`); the others are skipped."""
    seen: set[Path] = set()
    kept = []
    for item in found:
        if item.job.wav_path in seen:
            skipped.setdefault(DUPLICATE, SkipTally()).add(item.name)
        else:
            seen.add(item.job.wav_path)
            kept.append(item)
    return kept


def _group_by_speaker(
    found: Sequence[_Found], pattern: str | None, skipped: dict[str, SkipTally]
) -> dict[str, list[_Found]]:
    """Speaker -> their recordings; without a pattern every file is its own group.

    A path the pattern does not match is skipped; ConfigError if it matches none at all
    (a mistyped pattern should not silently skip a whole corpus).
    """
    if pattern is None:
        return {item.name: [item] for item in found}
    regex = re.compile(pattern)
    groups: dict[str, list[_Found]] = {}
    for item in found:
        speaker = speaker_of(item.name, regex)
        if speaker is None:
            skipped.setdefault(NO_SPEAKER, SkipTally()).add(item.name)
        else:
            groups.setdefault(speaker, []).append(item)
    if found and not groups:
        raise ConfigError(
            f"--speaker-pattern {pattern!r} matches none of the {len(found)} paths "
            f"(e.g. {found[0].name!r}; paths are relative to SRC, or as written in the table)"
        )
    return groups


def speaker_of(path: str, pattern: re.Pattern[str]) -> str | None:
    """The speaker `pattern` finds in `path`: its first group, else the whole match; None if
    it does not match (or its first group takes no part in the match)."""
    match = pattern.search(path)
    if match is None:
        return None
    return match.group(1) if pattern.groups else match.group(0)


def split_groups(sizes: Mapping[str, int], split: SplitConfig) -> dict[str, str]:
    """Group -> split name, with about `split.ratios` of the files (not groups) in each.

    Groups are ordered by a hash of the seed and their name, then laid end to end and each
    given to the split whose share its middle falls in. The same groups and seed always give
    the same split; adding a group moves only the groups near a boundary.
    """
    total = sum(sizes.values())
    bounds = list(itertools.accumulate(r * total for r in split.ratios))
    last = max(i for i, r in enumerate(split.ratios) if r > 0)  # for rounding at the very end
    order = sorted(sizes, key=lambda key: _hash(split.seed, key))
    assignment: dict[str, str] = {}
    position = 0
    for key in order:
        middle = position + sizes[key] / 2
        index = next((i for i, bound in enumerate(bounds) if middle < bound), last)
        assignment[key] = SPLITS[index]
        position += sizes[key]
    return assignment


def _hash(seed: int, key: str) -> bytes:
    """A stable pseudo-random sort key (Python's `hash` of a str changes between runs)."""
    return hashlib.sha256(f"{seed}\0{key}".encode()).digest()
