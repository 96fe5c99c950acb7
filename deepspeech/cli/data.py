"""`deepspeech data …`: make, import and check corpora in the manifest format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deepspeech.audio import N_CEPSTRUM, read_wav_info
from deepspeech.cli.console import progress_bar
from deepspeech.corpus import DEFAULT_UTTERANCES
from deepspeech.corpus.sample import SampleCorpusConfig, make_sample_corpus
from deepspeech.data.cache import DEFAULT_FEATURE_CACHE, open_cached_set, read_manifests
from deepspeech.data.manifest import parse_manifest_list, read_manifest
from deepspeech.parallel import available_cpus
from deepspeech.text import Alphabet

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

FeatureCacheOption = Annotated[
    Path,
    typer.Option(
        help="Folder of the on-disk MFCC cache: entries missing there are built (in parallel), "
        "entries present are reused; a changed manifest gets a new entry.",
        file_okay=False,
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
    their WER measures generalisation. Beside each manifest, OUT/train.words.jsonl (dev, test)
    says where each word is spoken ({"wav_filename", "words": [{"word", "start", "end"}]} in
    seconds; no words for the ~1 utterance in 8 that espeak-ng does not time word by word): the
    truth for word timings. Re-running into a finished folder does nothing; a folder from a
    killed run, or one made before word times existed, is completed.
    """

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


@data_app.command("featurize")
def featurize(
    manifests: Annotated[
        str, typer.Argument(help="Manifest CSV(s), comma-separated.", show_default=False)
    ],
    feature_cache: FeatureCacheOption = Path(DEFAULT_FEATURE_CACHE),
    numcep: Annotated[int, typer.Option(help="MFCC coefficients per frame.")] = N_CEPSTRUM,
    alphabet: AlphabetOption = None,
    workers: Annotated[
        int | None, typer.Option(help="Feature processes. [default: the usable CPUs]")
    ] = None,
) -> None:
    """Build the on-disk feature cache of manifests ahead of training (e.g. on a CPU box).

    Per-frame MFCC (float16) and labels, in shards of up to 256 utterances that tf.data reads,
    one entry per manifest contents, numcep and alphabet. `train`, `evaluate` and `lm tune`
    with the same `--feature-cache` reuse it; a killed build resumes where it stopped.
    """

    chosen = Alphabet.from_file(alphabet) if alphabet else Alphabet.default()
    for path, utterances in read_manifests(manifests, chosen):
        cached = open_cached_set(
            [(path, utterances)],
            feature_cache,
            numcep,
            chosen,
            workers=workers,
            progress_factory=progress_bar,
        )
        typer.echo(
            f"{path}: {len(cached)} utterances, {cached.audio_hours:.2f} h of audio, "
            f"{len(cached.shards)} shards, {cached.nbytes / 1e6:.1f} MB "
            f"({cached.megabytes_per_audio_hour:.1f} MB per audio hour) in {feature_cache}"
        )
