"""`deepspeech data …`: make, import and check corpora in the manifest format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
    from deepspeech.manifest import parse_manifest_list, read_manifest
    from deepspeech.text import Alphabet

    chosen = Alphabet.from_file(alphabet) if alphabet else Alphabet.default()
    for path in parse_manifest_list(manifests):
        rows = read_manifest(path, chosen)
        seconds = sum(read_wav_info(r.wav_path).duration_seconds for r in rows)
        typer.echo(f"{path}: {len(rows)} utterances, {seconds / 3600:.2f} h of audio, ok")
