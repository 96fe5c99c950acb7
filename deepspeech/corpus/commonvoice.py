"""`deepspeech data commonvoice`: a Common Voice language folder (commonvoice.mozilla.org).

Layout: `cv-corpus-<version>/<language>/clips/*.mp3` beside `train.tsv`, `dev.tsv` and
`test.tsv`, tab-separated with a header; the `path` column names the clip in `clips/` and
`sentence` is its transcript (other columns are ignored). SRC is the language folder, or the
release folder when it holds only one language. Each split tsv present becomes
`OUT/<split>.csv` over `OUT/<split>/<clip name>.wav`; `validated.tsv`, `other.tsv` and
`invalidated.tsv` are not imported.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from deepspeech.corpus import SPLITS
from deepspeech.corpus.convert import ConversionJob, CorpusPlan, SkipTally, require_folder
from deepspeech.errors import CorpusError

logger = logging.getLogger(__name__)

CORPUS = "Common Voice"
CLIPS_FOLDER = "clips"
REQUIRED_COLUMNS = ("path", "sentence")
AUDIO_SUFFIX = ".mp3"  # early releases list clips without their extension
NO_PATH = "tsv row without a clip path"
EXPECTED_LAYOUT = (
    "expected a Common Voice language folder with clips/*.mp3 and train.tsv, dev.tsv or "
    "test.tsv (e.g. cv-corpus-17.0-2024-03-15/en)"
)


def find_language_folder(src: Path) -> Path:
    """`src` if it is a Common Voice language folder, else its only language subfolder.

    CorpusError if there is none, or several (naming them, so the user can pick one).
    """
    require_folder(src, CORPUS)
    if _is_language_folder(src):
        return src
    languages = sorted(p for p in src.iterdir() if p.is_dir() and _is_language_folder(p))
    if len(languages) == 1:
        return languages[0]
    if languages:
        names = ", ".join(p.name for p in languages)
        raise CorpusError(f"{src}: holds several languages ({names}); give one of their folders")
    raise CorpusError(f"{src}: not a Common Voice folder; {EXPECTED_LAYOUT}")


def _is_language_folder(folder: Path) -> bool:
    return (folder / CLIPS_FOLDER).is_dir() and any(
        (folder / f"{split}.tsv").is_file() for split in SPLITS
    )


def plan_commonvoice(src: Path, out_dir: Path) -> CorpusPlan:
    """One job per row of each split tsv in `src`, in tsv order.

    A clip the tsv names but `clips/` lacks is reported as missing audio when converting.
    Raises CorpusError for a tsv without `path` and `sentence` columns.
    """
    src, out_dir = Path(src), Path(out_dir)
    folder = find_language_folder(src)
    no_path = SkipTally()
    splits: dict[str, list[ConversionJob]] = {}
    for split in SPLITS:
        tsv = folder / f"{split}.tsv"
        if tsv.is_file():
            splits[split] = _jobs_of(tsv, folder / CLIPS_FOLDER, out_dir / split, no_path)
            logger.info("%s: %d clips in %s", CORPUS, len(splits[split]), tsv)
    skipped = {NO_PATH: no_path} if no_path.count else {}
    return CorpusPlan(corpus=CORPUS, out_dir=out_dir, splits=splits, skipped=skipped)


def _jobs_of(tsv: Path, clips: Path, target: Path, no_path: SkipTally) -> list[ConversionJob]:
    """Jobs for the rows of one tsv. Quoting is off: sentences hold bare `"` characters."""
    jobs = []
    with tsv.open(encoding="utf-8", newline="") as stream:
        reader = csv.DictReader(stream, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise CorpusError(
                f"{tsv}: no {' or '.join(missing)} column in header {reader.fieldnames}; "
                f"{EXPECTED_LAYOUT}"
            )
        for row in reader:
            clip = Path((row["path"] or "").strip()).name  # .name: never outside clips/
            if not clip:
                no_path.add(f"{tsv.name} line {reader.line_num}")
                continue
            if not Path(clip).suffix:
                clip += AUDIO_SUFFIX
            jobs.append(
                ConversionJob(
                    source=clips / clip,
                    wav_path=target / f"{Path(clip).stem}.wav",
                    transcript=row["sentence"] or "",
                )
            )
    return jobs
