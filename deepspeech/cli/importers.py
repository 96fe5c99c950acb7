"""`deepspeech data librispeech|tedlium|commonvoice SRC OUT`: import extracted corpora.

Thin commands: each finds the corpus's conversion jobs, converts them with a progress bar and
prints the summary. The work is in `deepspeech.corpus`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from deepspeech.cli.data import AlphabetOption, data_app

if TYPE_CHECKING:
    from deepspeech.corpus.convert import CorpusPlan

SourceArgument = Annotated[
    Path, typer.Argument(help="The extracted corpus folder.", show_default=False)
]
OutArgument = Annotated[
    Path,
    typer.Argument(
        help="Folder for the manifests (`<split>.csv`) and WAVs.",
        file_okay=False,
        show_default=False,
    ),
]
MaxSecondsOption = Annotated[
    float,
    typer.Option(
        min=0.0,
        help="Skip clips longer than this many seconds (long clips make every batch slow "
        "and memory-hungry); 0 keeps every length.",
    ),
]
WorkersOption = Annotated[
    int | None,
    typer.Option(min=1, help="Conversion processes. [default: the usable CPUs]"),
]
# `deepspeech.corpus.convert.DEFAULT_MAX_SECONDS`, repeated because importing the library
# here would slow every `deepspeech` command by a second; a test checks they agree.
DEFAULT_MAX_SECONDS = 30.0


@data_app.command("librispeech")
def librispeech(
    src: SourceArgument,
    out: OutArgument,
    alphabet: AlphabetOption = None,
    max_seconds: MaxSecondsOption = DEFAULT_MAX_SECONDS,
    workers: WorkersOption = None,
) -> None:
    """Import LibriSpeech (openslr.org/12): FLAC + upper-case transcripts -> manifests + WAVs.

    Expects the archives' layout (SRC may also be the folder holding `LibriSpeech/`, or one
    subset folder such as `LibriSpeech/dev-clean`):

        SRC/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<n>.flac
        SRC/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt

    Writes `OUT/<subset>.csv` (e.g. `dev-clean.csv`) per subset and the 16 kHz mono WAVs
    under `OUT/<subset>/`. Re-running reuses the WAVs already written; the summary lists
    what was skipped and why.
    """
    from deepspeech.corpus.librispeech import plan_librispeech

    _convert(plan_librispeech(src, out), alphabet, max_seconds, workers)


@data_app.command("tedlium")
def tedlium(
    src: SourceArgument,
    out: OutArgument,
    alphabet: AlphabetOption = None,
    max_seconds: MaxSecondsOption = DEFAULT_MAX_SECONDS,
    workers: WorkersOption = None,
) -> None:
    """Import TED-LIUM release 1, 2 or 3: talks cut into segments by their STM times.

    Expects, for the splits `train`, `dev` and `test`:

        SRC/<split>/sph/<talk>.sph    (NIST SPHERE)
        SRC/<split>/stm/<talk>.stm    (segment times and transcripts)

    SRC is `TEDLIUM_release1` or `TEDLIUM_release2`; for release 3, `TEDLIUM_release-3`
    (its `legacy/` splits are used) or its `speaker-adaptation/` folder. One split folder
    (such as release 3's `data/`) works too. Writes `OUT/<split>.csv` and the segments as
    16 kHz mono WAVs under `OUT/<split>/<talk>/`. Segments marked
    `ignore_time_segment_in_scoring` are skipped; `<unk>` and `{NOISE}` markers are dropped
    and split contractions joined ("it 's" -> "it's").
    """
    from deepspeech.corpus.tedlium import plan_tedlium

    _convert(plan_tedlium(src, out), alphabet, max_seconds, workers)


@data_app.command("commonvoice")
def commonvoice(
    src: SourceArgument,
    out: OutArgument,
    alphabet: AlphabetOption = None,
    max_seconds: MaxSecondsOption = DEFAULT_MAX_SECONDS,
    workers: WorkersOption = None,
) -> None:
    """Import a Common Voice language folder: MP3 clips + train/dev/test tsv -> manifests + WAVs.

    Expects a language folder such as `cv-corpus-17.0-2024-03-15/en` (or a release folder
    holding just one language):

        SRC/clips/<clip>.mp3
        SRC/<split>.tsv    (train, dev, test; tab-separated: path, sentence, ...)

    Writes `OUT/<split>.csv` for each tsv present and the 16 kHz mono WAVs under
    `OUT/<split>/`. Sentences with digits or letters the alphabet cannot spell are skipped:
    dropping those characters would leave a transcript that no longer matches the audio.
    """
    from deepspeech.corpus.commonvoice import plan_commonvoice

    _convert(plan_commonvoice(src, out), alphabet, max_seconds, workers)


def _convert(
    plan: CorpusPlan, alphabet: Path | None, max_seconds: float, workers: int | None
) -> None:
    """Convert `plan` under a progress bar and print the summary; exit 2 if nothing is kept."""
    from deepspeech.cli.console import progress_bar
    from deepspeech.corpus.convert import ImportConfig, convert_corpus
    from deepspeech.errors import CorpusError
    from deepspeech.parallel import available_cpus
    from deepspeech.text import Alphabet

    config = ImportConfig(
        alphabet=Alphabet.from_file(alphabet) if alphabet else Alphabet.default(),
        max_seconds=max_seconds or None,
        workers=workers or available_cpus(),
    )
    with progress_bar(f"converting {plan.corpus}", plan.total) as advance:
        summary = convert_corpus(plan, config, progress=advance)
    typer.echo(summary.to_text())
    if not summary.kept:
        raise CorpusError(f"{plan.out_dir}: no utterance kept; see the reasons above")
