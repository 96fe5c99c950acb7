"""`deepspeech data tedlium`: TED-LIUM releases 1, 2 and 3 (openslr.org/7, /19, /51).

Each split folder holds `sph/<talk>.sph` (NIST SPHERE, 16 kHz) and `stm/<talk>.stm`, whose
lines give the time span and transcript of each segment. Releases 1 and 2 have `train/`,
`dev/` and `test/` at their root; release 3 has them under `legacy/` (the release 1-2 dev and
test sets, the usual choice, taken when SRC is the release root) and `speaker-adaptation/`
(point SRC at it to use that split instead). SRC may also be a single split folder (one with
`sph/` and `stm/`, such as release 3's `data/`).

Each segment becomes `OUT/<split>/<talk>/<talk>-<start ms>-<stop ms>.wav`, cut from the talk
by its STM times, and a row of `OUT/<split>.csv`. Segments marked
`ignore_time_segment_in_scoring` are skipped. Transcripts lose their markers (`<unk>`,
`{NOISE}`, `[laughter]`, the `(2)` of alternative pronunciations) and get their contractions
joined back ("it 's" -> "it's").
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from deepspeech.corpus import SPLITS
from deepspeech.corpus.convert import (
    ConversionJob,
    CorpusPlan,
    SkipTally,
    require_folder,
    splits_in_order,
)
from deepspeech.errors import CorpusError
from deepspeech.stm import parse_stm_file

logger = logging.getLogger(__name__)

CORPUS = "TED-LIUM"
RELEASE3_DEFAULT = "legacy"  # release 3's folder with the release 1-2 style splits
NOT_SCORED = "marked ignore_time_segment_in_scoring (no transcribed speech)"
EXPECTED_LAYOUT = (
    "expected <split>/sph/<talk>.sph and <split>/stm/<talk>.stm for splits train, dev, test "
    "(TEDLIUM_release1, TEDLIUM_release2, TEDLIUM_release-3/legacy or its "
    "speaker-adaptation folder), or one such split folder"
)

_MARKER = re.compile(r"<[^>]*>|\{[^}]*\}|\[[^\]]*\]")  # <unk>, {NOISE}, [laughter]
_ALTERNATIVE = re.compile(r"\(\d+\)")  # what(2): the dictionary's second pronunciation
_SPLIT_CONTRACTION = re.compile(r"\s+'(?=\w)")  # it 's, we 're, i 'm


def clean_tedlium_transcript(text: str) -> str:
    """TED-LIUM's tokenised transcript -> plain words: markers dropped, contractions joined.

    "it 's a {NOISE} test <unk> of what(2) we 're doing" -> "it's a test of what we're doing".
    A dropped `<unk>` leaves the transcript one word short of the audio; TED-LIUM marks few
    words that way, and skipping every segment with one would cost far more data.
    """
    text = _MARKER.sub(" ", text)
    text = _ALTERNATIVE.sub("", text)
    text = _SPLIT_CONTRACTION.sub("'", text)
    return " ".join(text.split())


def find_splits(src: Path) -> list[Path]:
    """The split folders of the release (or the one split folder) at `src`: train, dev,
    test first, then any others by name. CorpusError with the expected layout if none."""
    require_folder(src, CORPUS)
    if _is_split(src):
        return [src]
    base = src / RELEASE3_DEFAULT if (src / RELEASE3_DEFAULT).is_dir() else src
    found = {p.name: p for p in base.iterdir() if p.is_dir() and _is_split(p)}
    if not found:
        raise CorpusError(f"{src}: no TED-LIUM split found; {EXPECTED_LAYOUT}")
    if base != src:
        logger.info("%s: using the splits in %s", CORPUS, base)
    return [found[name] for name in splits_in_order(found, SPLITS)]


def _is_split(folder: Path) -> bool:
    stm = folder / "stm"
    return (folder / "sph").is_dir() and stm.is_dir() and next(stm.glob("*.stm"), None) is not None


def plan_tedlium(src: Path, out_dir: Path) -> CorpusPlan:
    """One job per scored STM segment of every split in `src`, in file and time order.

    A malformed STM line raises STMFormatError naming its file and line, before any audio
    is converted.
    """
    src, out_dir = Path(src), Path(out_dir)
    not_scored = SkipTally()
    splits: dict[str, list[ConversionJob]] = {}
    for split in find_splits(src):
        jobs = []
        for stm_file in sorted((split / "stm").glob("*.stm")):
            for segment in parse_stm_file(stm_file):
                talk = segment.filename
                start_ms, stop_ms = (
                    round(segment.start_time * 1000),
                    round(segment.stop_time * 1000),
                )
                job = ConversionJob(
                    source=split / "sph" / f"{talk}.sph",
                    wav_path=out_dir
                    / split.name
                    / talk
                    / f"{talk}-{start_ms:08d}-{stop_ms:08d}.wav",
                    transcript=clean_tedlium_transcript(segment.transcript),
                    start=segment.start_time,
                    end=segment.stop_time,
                )
                if segment.ignore_in_scoring:
                    not_scored.add(job.label)
                else:
                    jobs.append(job)
        splits[split.name] = jobs
        logger.info("%s: %d segments in %s", CORPUS, len(jobs), split)
    skipped = {NOT_SCORED: not_scored} if not_scored.count else {}
    return CorpusPlan(corpus=CORPUS, out_dir=out_dir, splits=splits, skipped=skipped)
