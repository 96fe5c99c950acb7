"""Manifest CSVs (`wav_filename,wav_filesize,transcript`): the one way corpora reach training.

Validation happens here, before any training starts, so that a bad row fails in seconds with
its file and line instead of hours later inside an input pipeline. The checks are plain
`os.stat` calls and set lookups: 100k rows validate in seconds.
"""

from __future__ import annotations

import csv
import logging
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from deepspeech.errors import ManifestError
from deepspeech.files import atomic_write
from deepspeech.text import Alphabet

logger = logging.getLogger(__name__)

MANIFEST_HEADER = ("wav_filename", "wav_filesize", "transcript")


@dataclass(frozen=True)
class Utterance:
    """One manifest row: an absolute WAV path, its size in bytes and its transcript."""

    wav_path: Path
    wav_filesize: int
    transcript: str


def read_manifest(
    csv_path: Path, alphabet: Alphabet | None = None, *, check_files: bool = True
) -> list[Utterance]:
    """Read and validate one manifest; relative WAV paths resolve against the CSV's folder.

    Raises ManifestError naming `csv_path:line` for a wrong header, a malformed row, an empty
    transcript, characters outside `alphabet`, and (with `check_files`) a missing WAV or one
    whose size differs from `wav_filesize` (a sign of a truncated copy).
    """
    alphabet = alphabet or Alphabet.default()
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise ManifestError(f"{csv_path}: manifest not found")
    base = csv_path.parent.resolve()
    utterances: list[Utterance] = []
    with csv_path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            if header is None or tuple(h.strip() for h in header) != MANIFEST_HEADER:
                raise ManifestError(
                    f"{csv_path}:1: header is {header!r}, expected {','.join(MANIFEST_HEADER)}"
                )
            for row in reader:
                if not row or row == [""]:
                    continue
                where = f"{csv_path}:{reader.line_num}"
                utterances.append(_parse_row(row, where, base, alphabet, check_files))
        except UnicodeDecodeError:
            raise ManifestError(_not_utf8(csv_path)) from None
        except csv.Error as e:
            raise ManifestError(f"{csv_path}:{reader.line_num}: not valid CSV ({e})") from None
    if not utterances:
        raise ManifestError(f"{csv_path}: manifest has a header but no rows")
    return utterances


def _not_utf8(csv_path: Path) -> str:
    """Where the first non-UTF-8 byte is: the decoder saw a block, the user needs a line."""
    data = csv_path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        bad = data[e.start : e.start + 1]
        return f"{csv_path}:{line}: byte {bad!r} is not UTF-8; save the manifest as UTF-8"
    return f"{csv_path}: not UTF-8 text; save the manifest as UTF-8"


def _parse_row(
    row: list[str], where: str, base: Path, alphabet: Alphabet, check_files: bool
) -> Utterance:
    if len(row) != len(MANIFEST_HEADER):
        raise ManifestError(f"{where}: expected 3 fields, got {len(row)}: {row!r}")
    wav_filename, size_field, transcript = row
    try:
        wav_filesize = int(size_field)
    except ValueError:
        raise ManifestError(f"{where}: wav_filesize {size_field!r} is not a whole number") from None
    if not transcript.strip():
        raise ManifestError(f"{where}: empty transcript for {wav_filename}")
    unknown = alphabet.unknown_chars(transcript)
    if unknown:
        shown = ", ".join(repr(c) for c in sorted(unknown))
        raise ManifestError(
            f"{where}: transcript {transcript!r} has characters outside the alphabet: {shown}; "
            "normalise it (the importers do) or extend the alphabet file"
        )
    wav_path = Path(wav_filename)
    if not wav_path.is_absolute():
        wav_path = base / wav_path
    if check_files:
        try:
            status = os.stat(wav_path)
        except FileNotFoundError:
            raise ManifestError(f"{where}: audio file {wav_path} does not exist") from None
        except (OSError, ValueError) as e:  # a NUL in the name, a name too long, no permission
            raise ManifestError(f"{where}: cannot read audio file {wav_path!r}: {e}") from None
        if not stat.S_ISREG(status.st_mode):
            raise ManifestError(f"{where}: audio file {wav_path} is not a regular file")
        actual = status.st_size
        if actual != wav_filesize:
            raise ManifestError(
                f"{where}: {wav_path} is {actual} bytes, manifest says {wav_filesize}; "
                "the file was changed or truncated since the manifest was written"
            )
    return Utterance(wav_path=wav_path, wav_filesize=wav_filesize, transcript=transcript)


def parse_manifest_list(spec: str | Path | Sequence[str | Path]) -> list[Path]:
    """Split the CLI's comma-separated manifest list into paths (a list passes through)."""
    if isinstance(spec, (str, Path)):
        parts = [p.strip() for p in str(spec).split(",")]
    else:
        parts = [str(p).strip() for p in spec]
    paths = [Path(p) for p in parts if p]
    if not paths:
        raise ManifestError("no manifest given")
    return paths


def read_manifests(
    spec: str | Path | Sequence[str | Path],
    alphabet: Alphabet | None = None,
    *,
    check_files: bool = True,
) -> list[Utterance]:
    """Read several manifests (comma-separated string or a list) into one list, in order."""
    utterances: list[Utterance] = []
    for path in parse_manifest_list(spec):
        utterances.extend(read_manifest(path, alphabet, check_files=check_files))
    return utterances


def write_manifest(csv_path: Path, utterances: Iterable[Utterance]) -> None:
    """Write a manifest atomically, WAV paths relative to the CSV's folder where possible.

    Relative paths keep a corpus folder movable; the temp-file-and-rename write means a killed
    importer never leaves a half-written manifest behind.
    """
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    base = csv_path.parent.resolve()
    with atomic_write(csv_path, newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(MANIFEST_HEADER)
        for u in utterances:
            writer.writerow([_relative_to(u.wav_path, base), u.wav_filesize, u.transcript])


def _relative_to(path: Path, base: Path) -> str:
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(base).as_posix()
    except ValueError:
        return str(resolved)
