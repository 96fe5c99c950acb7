"""`deepspeech lm build` and `deepspeech lm tune`: the word n-gram model the beam decoder uses,
and its weights tuned on a dev set. Decoding options of the other commands come from
`DecoderConfig` (`deepspeech.decoding.decoders`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from deepspeech.cli.console import progress_bar
from deepspeech.cli.data import AlphabetOption, FeatureCacheOption
from deepspeech.cli.options import TrackingUriOption
from deepspeech.data.cache import DEFAULT_FEATURE_CACHE, open_cached_set, read_manifests
from deepspeech.decoding.lm import build_arpa
from deepspeech.decoding.tuning import float_grid, plot_tuning, tune_alpha_beta
from deepspeech.text import Alphabet
from deepspeech.training.mlflow_store import resolve_tracking_uri

lm_app = typer.Typer(
    help="Build the word n-gram language model for beam search decoding.",
    no_args_is_help=True,
)

AlphasOption = Annotated[
    str,
    typer.Option("--alphas", help="alpha grid: values '0.5,1,2' or start:stop:step '0:2:0.25'."),
]
BetasOption = Annotated[
    str,
    typer.Option("--betas", help="beta grid: values '0,1,2' or start:stop:step '-1:4:1'."),
]


@lm_app.command("build")
def build(
    text: Annotated[
        Path,
        typer.Option(
            "--text", help="Training text, one sentence a line (UTF-8).", show_default=False
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", help="ARPA file to write.", show_default=False)
    ],
    order: Annotated[int, typer.Option("--order", help="n of the n-grams (1-9).")] = 3,
    alphabet: AlphabetOption = None,
) -> None:
    """Build an interpolated modified Kneser-Ney word n-gram model as an ARPA file.

    The text is normalised like manifest transcripts (lower case, accents folded, punctuation
    dropped; characters outside the alphabet removed), so the LM's words are spelt the way the
    acoustic model can spell them. Decode with `--decoder beam --lm OUTPUT`.
    """
    chosen = Alphabet.from_file(alphabet) if alphabet else Alphabet.default()
    summary = build_arpa(text, output, order, chosen)
    counts = ", ".join(f"{n}-grams {c}" for n, c in enumerate(summary.ngrams, start=1))
    typer.echo(
        f"{summary.output_path}: order {order}, {summary.sentences} sentences, "
        f"{summary.words} words, vocabulary {summary.vocabulary}; {counts}; "
        f"{summary.seconds:.1f} s"
    )


@lm_app.command("tune")
def tune(
    checkpoint_dir: Annotated[
        Path, typer.Option(help="A folder written by `deepspeech train`.", file_okay=False)
    ],
    dev_files: Annotated[str, typer.Option(help="Dev manifest(s) to tune on, comma-separated.")],
    lm: Annotated[
        Path, typer.Option("--lm", help="ARPA word LM to tune the weights of.", dir_okay=False)
    ],
    alphas: AlphasOption = "0:2:0.25",
    betas: BetasOption = "0:3:0.5",
    beam_width: Annotated[
        int, typer.Option(help="Hypotheses kept per frame by the beam decoder while tuning.")
    ] = 32,
    feature_cache: FeatureCacheOption = Path(DEFAULT_FEATURE_CACHE),
    experiment_name: Annotated[
        str, typer.Option(help="MLflow experiment for the run.")
    ] = "lm-tune",
    tracking_uri: TrackingUriOption = None,
) -> None:
    """Grid-search the LM weight (alpha) and word bonus (beta) on a dev set.

    Runs the model once, then beam-decodes the dev set at every grid point; prints the best
    point and logs the grid, the best WER/CER and a heatmap to one MLflow run, whose
    `best_alpha` and `best_beta` metrics `export --lm LM --decoder-from RUN_ID` packs.
    """
    from deepspeech.training.tracking import log_tuning_run  # MLflow, TensorFlow

    alpha_grid, beta_grid = float_grid(alphas), float_grid(betas)
    alphabet, scores, lengths, references = _dev_logits(checkpoint_dir, dev_files, feature_cache)
    points = len(alpha_grid) * len(beta_grid)
    with progress_bar("alpha x beta", points) as advance:
        result = tune_alpha_beta(
            scores,
            lengths,
            references,
            alphabet,
            lm,
            alpha_grid,
            beta_grid,
            beam_width,
            progress=advance,
            kind="logits",
        )
    run_id = log_tuning_run(
        resolve_tracking_uri(tracking_uri),
        experiment_name,
        {
            "checkpoint_dir": checkpoint_dir,
            "dev_files": dev_files,
            "lm": lm,
            "alphas": alphas,
            "betas": betas,
            "beam_width": beam_width,
        },
        result.rows(),
        {
            "best_alpha": result.best_alpha,
            "best_beta": result.best_beta,
            "best_wer": result.best_wer,
            "best_cer": result.best_cer,
        },
        plot_tuning(result),
    )
    typer.echo(
        f"best alpha {result.best_alpha:g}, beta {result.best_beta:g}: dev WER "
        f"{result.best_wer:.2%}, CER {result.best_cer:.2%} (mlflow run {run_id})"
    )
    typer.echo(
        f"pack them with the model: deepspeech export ... --register NAME --lm {lm} "
        f"--decoder-from {run_id}"
    )


def _dev_logits(
    checkpoint_dir: Path, dev_files: str, feature_cache: Path
) -> tuple[Alphabet, list[np.ndarray], list[int], list[str]]:
    """The model's (T, n_classes) logits of every dev utterance, run once, with their
    lengths and transcripts."""
    from deepspeech.training.checkpoint import restore_inference_model  # TensorFlow
    from deepspeech.training.evaluate import make_eval_step, model_outputs

    model, info = restore_inference_model(checkpoint_dir)
    cached = open_cached_set(
        read_manifests(dev_files, info.alphabet),
        feature_cache,
        info.features.numcep,
        info.alphabet,
        progress_factory=progress_bar,
    )
    scores, lengths, references = [], [], []
    eval_step = make_eval_step(model, info.features.numcep)
    for indices, _, logits, frame_counts in model_outputs(eval_step, cached, info.features.stride):
        for i, matrix, n in zip(indices, logits, frame_counts, strict=True):
            scores.append(matrix[:n])
            lengths.append(int(n))
            references.append(cached.utterances[i].transcript)
    return info.alphabet, scores, lengths, references
