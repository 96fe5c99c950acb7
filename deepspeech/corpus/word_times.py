"""Word-times files: where each word of a manifest's utterances is spoken, in seconds.

`deepspeech data sample` writes one beside each manifest (`train.csv` -> `train.words.jsonl`),
the truth that word-timing measurements are scored against. One JSON object a line, in
manifest order, keyed by the manifest's own `wav_filename` (relative to the CSV's folder):

    {"wav_filename": "wav/dev/dev-000003.wav",
     "words": [{"word": "put", "start": 0.0, "end": 0.31}, ...]}

`words` holds the transcript's words in order, or nothing when the corpus could not time them
(the sample corpus leaves an utterance untimed rather than guess).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from deepspeech.errors import ManifestError
from deepspeech.files import atomic_write

WORDS_SUFFIX = ".words.jsonl"  # "train.csv" -> "train.words.jsonl"
SECONDS_DECIMALS = 5  # 10 µs: finer than a 16 kHz sample (62.5 µs)


class WordTime(NamedTuple):
    """One word and where it is spoken, in seconds from the start of its clip."""

    word: str
    start: float
    end: float


def word_times_path(manifest: Path) -> Path:
    """The word-times file that belongs to a manifest: beside it, `<stem>.words.jsonl`."""
    manifest = Path(manifest)
    return manifest.with_name(manifest.stem + WORDS_SUFFIX)


def write_word_times(path: Path, rows: Iterable[tuple[str, Sequence[WordTime]]]) -> None:
    """Write (wav_filename, word times) rows atomically, one JSON object a line."""
    with atomic_write(path, encoding="utf-8") as stream:
        for wav_filename, words in rows:
            entry = {
                "wav_filename": wav_filename,
                "words": [
                    {
                        "word": w.word,
                        "start": round(w.start, SECONDS_DECIMALS),
                        "end": round(w.end, SECONDS_DECIMALS),
                    }
                    for w in words
                ],
            }
            stream.write(json.dumps(entry) + "\n")


def read_word_times(path: Path) -> dict[str, list[WordTime]]:
    """Read a word-times file: wav_filename (as written) -> its words, in file order."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ManifestError(f"{path}: cannot read word times ({e})") from e
    times: dict[str, list[WordTime]] = {}
    for number, line in enumerate(lines, start=1):
        try:
            entry = json.loads(line)
            times[entry["wav_filename"]] = [
                WordTime(w["word"], float(w["start"]), float(w["end"])) for w in entry["words"]
            ]
        except (ValueError, KeyError, TypeError) as e:
            raise ManifestError(
                f"{path}:{number}: not a word-times line ({e!r}); expected "
                '{"wav_filename": str, "words": [{"word": str, "start": s, "end": s}]}'
            ) from e
    return times
