"""`deepspeech data librispeech`: LibriSpeech (openslr.org/12) as its archives extract.

Layout: `LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utterance>.flac` beside
`<speaker>-<chapter>.trans.txt`, whose lines are `<speaker>-<chapter>-<utterance> TRANSCRIPT`
in upper case. SRC may be the folder holding `LibriSpeech/`, `LibriSpeech/` itself, or one
subset folder. Each subset becomes one manifest, `OUT/<subset>.csv` (`train-clean-100.csv`,
`dev-clean.csv`, ...), over `OUT/<subset>/<speaker>/<chapter>/<utterance id>.wav`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from deepspeech.corpus.convert import ConversionJob, CorpusPlan, require_folder
from deepspeech.errors import CorpusError

logger = logging.getLogger(__name__)

CORPUS = "LibriSpeech"
TRANSCRIPT_GLOB = "*/*/*.trans.txt"  # <speaker>/<chapter>/<speaker>-<chapter>.trans.txt
AUDIO_SUFFIX = ".flac"
EXPECTED_LAYOUT = (
    "expected LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt with the "
    ".flac files beside it (e.g. LibriSpeech/dev-clean/84/121123/84-121123.trans.txt); give "
    "the folder holding LibriSpeech/, LibriSpeech/ itself or one subset folder"
)


def find_subsets(src: Path) -> list[Path]:
    """The subset folders (`dev-clean`, `train-clean-100`, ...) SRC holds or is, by name.

    Raises CorpusError, saying which layout was expected, when there are none.
    """
    require_folder(src, CORPUS)
    if _is_subset(src):
        return [src]
    base = src / "LibriSpeech" if (src / "LibriSpeech").is_dir() else src
    subsets = sorted(p for p in base.iterdir() if p.is_dir() and _is_subset(p))
    if not subsets:
        raise CorpusError(f"{src}: no LibriSpeech subset found; {EXPECTED_LAYOUT}")
    return subsets


def _is_subset(folder: Path) -> bool:
    return next(folder.glob(TRANSCRIPT_GLOB), None) is not None


def plan_librispeech(src: Path, out_dir: Path) -> CorpusPlan:
    """Read the transcripts of every subset in `src` into conversion jobs, one split each.

    Jobs come from transcript lines, so a FLAC without a line is not imported and a line
    without its FLAC is reported as missing audio.
    """
    src, out_dir = Path(src), Path(out_dir)
    splits: dict[str, list[ConversionJob]] = {}
    for subset in find_subsets(src):
        jobs = []
        for transcript_file in sorted(subset.glob(TRANSCRIPT_GLOB)):
            chapter = transcript_file.parent
            target = out_dir / subset.name / chapter.parent.name / chapter.name
            jobs.extend(_jobs_of(transcript_file, target))
        splits[subset.name] = jobs
        logger.info("%s: %d utterances in %s", CORPUS, len(jobs), subset)
    return CorpusPlan(corpus=CORPUS, out_dir=out_dir, splits=splits)


def _jobs_of(transcript_file: Path, target: Path) -> list[ConversionJob]:
    """One job per `ID TRANSCRIPT` line; a line with no text gets an empty transcript."""
    jobs = []
    for line in transcript_file.read_text(encoding="utf-8").splitlines():
        utterance_id, _, text = line.strip().partition(" ")
        if not utterance_id:
            continue
        jobs.append(
            ConversionJob(
                source=transcript_file.parent / f"{utterance_id}{AUDIO_SUFFIX}",
                wav_path=target / f"{utterance_id}.wav",
                transcript=text,
            )
        )
    return jobs
