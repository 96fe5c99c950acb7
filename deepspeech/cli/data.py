"""`deepspeech data …`: make, import and check corpora in the manifest format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deepspeech.corpus import DEFAULT_UTTERANCES

data_app = typer.Typer(
    help="Make the synthetic sample corpus, import real corpora, check manifests.",
    no_args_is_help=True,
)

AlphabetOption = Annotated[
    Path | None,
    typer.Option(
        "--alphabet",
        help="Alphabet file, one character a line (default: space, a-z, apostrophe).",
        exists=True,
        dir_okay=False,
    ),
]


@data_app.command("check")
def check(
    manifests: Annotated[
        str, typer.Argument(help="Manifest CSV(s), comma-separated.", show_default=False)
    ],
    alphabet: AlphabetOption = None,
) -> None:
    """Validate manifests the way training will, and summarise them.

    Checks the header, that every WAV exists with the size the manifest gives, and that every
    transcript is non-empty and inside the alphabet; reads each WAV header for the durations.
    Fails on the first bad row with its file and line.
    """
    from deepspeech.audio import read_wav_info
    from deepspeech.data.manifest import parse_manifest_list, read_manifest
    from deepspeech.text import Alphabet

    chosen = Alphabet.from_file(alphabet) if alphabet else Alphabet.default()
    for path in parse_manifest_list(manifests):
        rows = read_manifest(path, chosen)
        seconds = sum(read_wav_info(r.wav_path).duration_seconds for r in rows)
        typer.echo(f"{path}: {len(rows)} utterances, {seconds / 3600:.2f} h of audio, ok")


@data_app.command("sample")
def sample(
    out: Annotated[Path, typer.Argument(help="Folder to write the corpus to.", file_okay=False)],
    utterances: Annotated[
        int, typer.Option(help="Utterances over train, dev and test (about 90 % train).")
    ] = DEFAULT_UTTERANCES,
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 0,
    workers: Annotated[
        int | None, typer.Option(help="Synthesis processes. [default: the usable CPUs]")
    ] = None,
) -> None:
    """Make the synthetic English speech corpus with espeak-ng, offline.

    Writes OUT/train.csv, dev.csv, test.csv, the 16 kHz WAVs and OUT/metadata.json. Dev and
    test are spoken by voices train never hears, and test holds sentences train never sees, so
    their WER measures generalisation. Re-running into a finished folder does nothing; a
    folder from a killed run is completed.
    """
    from deepspeech.cli.console import progress_bar
    from deepspeech.corpus.sample import SampleCorpusConfig, make_sample_corpus
    from deepspeech.parallel import available_cpus

    config = SampleCorpusConfig(
        utterances=utterances, seed=seed, workers=workers or available_cpus()
    )
    with progress_bar("synthesising", config.utterances) as advance:
        summary = make_sample_corpus(out, config, progress=advance)
    for split, path in summary.manifests.items():
        typer.echo(
            f"{split}: {summary.utterances[split]} utterances, "
            f"{summary.hours[split]:.2f} h -> {path}"
        )
    typer.echo(
        f"{summary.generated} clips made, {summary.reused} reused, in {summary.seconds:.0f} s; "
        f"voices and sentence counts in {summary.metadata_path}"
    )
