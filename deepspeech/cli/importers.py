"""`deepspeech data librispeech|tedlium|commonvoice|import SRC OUT`: import corpora.

Thin commands: each finds the corpus's conversion jobs, converts them with a progress bar and
prints the summary. The work is in `deepspeech.corpus`. The three public-corpus commands take
the same arguments and options and differ only in the corpus's `plan_*` function and the help
text; `import` (your own recordings) adds the options that split them into train/dev/test.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from deepspeech.cli.console import progress_bar
from deepspeech.cli.data import AlphabetOption, data_app
from deepspeech.corpus.commonvoice import plan_commonvoice
from deepspeech.corpus.convert import DEFAULT_MAX_SECONDS, CorpusPlan, ImportConfig, convert_corpus
from deepspeech.corpus.librispeech import plan_librispeech
from deepspeech.corpus.recordings import DEFAULT_RATIOS, SplitConfig, parse_ratios, plan_recordings
from deepspeech.corpus.tedlium import plan_tedlium
from deepspeech.errors import CorpusError
from deepspeech.parallel import available_cpus
from deepspeech.text import Alphabet

Planner = Callable[[Path, Path], CorpusPlan]  # (SRC, OUT) -> the conversion jobs

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

LIBRISPEECH_HELP = """
Import LibriSpeech (openslr.org/12): FLAC + upper-case transcripts -> manifests + WAVs.

Expects the archives' layout (SRC may also be the folder holding `LibriSpeech/`, or one
subset folder such as `LibriSpeech/dev-clean`):

    SRC/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<n>.flac
    SRC/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt

Writes `OUT/<subset>.csv` (e.g. `dev-clean.csv`) per subset and the 16 kHz mono WAVs
under `OUT/<subset>/`. Re-running reuses the WAVs already written; the summary lists
what was skipped and why.
"""

TEDLIUM_HELP = """
Import TED-LIUM release 1, 2 or 3: talks cut into segments by their STM times.

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

COMMONVOICE_HELP = """
Import a Common Voice language folder: MP3 clips + train/dev/test tsv -> manifests + WAVs.

Expects a language folder such as `cv-corpus-17.0-2024-03-15/en` (or a release folder
holding just one language):

    SRC/clips/<clip>.mp3
    SRC/<split>.tsv    (train, dev, test; tab-separated: path, sentence, ...)

Writes `OUT/<split>.csv` for each tsv present and the 16 kHz mono WAVs under
`OUT/<split>/`. Sentences with digits or letters the alphabet cannot spell are skipped:
dropping those characters would leave a transcript that no longer matches the audio.
"""


IMPORT_HELP = """
Import your own recordings: audio files + transcripts -> train/dev/test manifests + WAVs.

SRC is either a folder of audio files (subfolders too), each with its transcript in a
`.txt` of the same name beside it:

    SRC/alice/001.flac    SRC/alice/001.txt    (holding e.g.: Hello, world!)

or a CSV or TSV file whose header names the audio path column (`path`, `file`, `audio`,
`wav_filename`, ...) and the transcript column (`transcript`, `text`, `sentence`);
relative paths resolve against the table's folder:

    path,transcript
    alice/001.flac,"Hello, world!"

Any audio soundfile reads (WAV, FLAC, OGG, MP3, ...) at any rate and channel count becomes
a 16 kHz mono WAV under `OUT/wav/`, and transcripts are normalised to the alphabet. The
files are split into `OUT/train.csv`, `dev.csv` and `test.csv` by `--split` (by number of
files; the same split for the same `--seed`); `--speaker-pattern '^[^/]+'` (here: the first
folder names the speaker) keeps each speaker's files in one split. Audio without a
transcript, unreadable audio and transcripts the alphabet cannot spell are skipped and
counted in the summary. Re-running reuses the WAVs already written, even with another split.
"""


def import_command(plan: Planner) -> Callable[..., None]:
    """The command `data <corpus> SRC OUT [options]` for the corpus that `plan` reads."""

    def import_corpus(
        src: SourceArgument,
        out: OutArgument,
        alphabet: AlphabetOption = None,
        max_seconds: MaxSecondsOption = DEFAULT_MAX_SECONDS,
        workers: WorkersOption = None,
    ) -> None:
        _convert(plan(src, out), alphabet, max_seconds, workers)

    return import_corpus


librispeech = data_app.command("librispeech", help=LIBRISPEECH_HELP)(
    import_command(plan_librispeech)
)
tedlium = data_app.command("tedlium", help=TEDLIUM_HELP)(import_command(plan_tedlium))
commonvoice = data_app.command("commonvoice", help=COMMONVOICE_HELP)(
    import_command(plan_commonvoice)
)


def _convert(
    plan: CorpusPlan, alphabet: Path | None, max_seconds: float, workers: int | None
) -> None:
    """Convert `plan` under a progress bar and print the summary; exit 2 if nothing is kept."""
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


@data_app.command("import", help=IMPORT_HELP)
def import_recordings(
    src: Annotated[
        Path,
        typer.Argument(
            help="A folder of audio files with a .txt transcript beside each, or a CSV/TSV "
            "file of path and transcript.",
            show_default=False,
        ),
    ],
    out: OutArgument,
    split: Annotated[
        str,
        typer.Option(
            metavar="TRAIN,DEV,TEST",
            help="Fractions of the files for train,dev,test, adding up to 1 (0.9,0.1: no test).",
        ),
    ] = ",".join(f"{r:g}" for r in DEFAULT_RATIOS),
    seed: Annotated[int, typer.Option(help="Same files and seed, same split.")] = 0,
    speaker_pattern: Annotated[
        str | None,
        typer.Option(
            metavar="REGEX",
            help="Regular expression searched in each file's path (relative to SRC, or as "
            "written in the table): its first group, else the whole match, names the speaker, "
            "and all files of a speaker land in one split. Files it does not match are skipped.",
        ),
    ] = None,
    alphabet: AlphabetOption = None,
    max_seconds: MaxSecondsOption = DEFAULT_MAX_SECONDS,
    workers: WorkersOption = None,
) -> None:
    config = SplitConfig(ratios=parse_ratios(split), seed=seed, speaker_pattern=speaker_pattern)
    _convert(plan_recordings(src, out, config), alphabet, max_seconds, workers)
