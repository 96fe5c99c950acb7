"""`deepspeech lm …`: build the word n-gram model the beam decoder uses; shared decoder options.

The option types below (`DecoderOption`, `BeamWidthOption`, `LmOption`, `AlphaOption`,
`BetaOption`, `AlphasOption`, `BetasOption`) and `decoder_config` are for every command that
decodes (evaluate, transcribe, serve, lm tune), so they all spell and check the settings alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from deepspeech.cli.data import AlphabetOption, FeatureCacheOption
from deepspeech.config import DEFAULT_FEATURE_CACHE

if TYPE_CHECKING:
    from deepspeech.decoding.decoders import DecoderConfig

lm_app = typer.Typer(
    help="Build the word n-gram language model for beam search decoding.",
    no_args_is_help=True,
)

# Defaults belong to each command (the usual ones are DEFAULT_* in deepspeech.decoding.decoders).
DecoderOption = Annotated[
    str,
    typer.Option(
        "--decoder",
        help="greedy (best path, fast) or beam (CTC beam search; with --lm, word LM scoring).",
    ),
]
BeamWidthOption = Annotated[
    int, typer.Option("--beam-width", help="Hypotheses kept per frame by the beam decoder.")
]
LmOption = Annotated[
    Path | None,
    typer.Option(
        "--lm",
        help="ARPA word LM (`deepspeech lm build`) for the beam decoder. [default: no LM]",
        dir_okay=False,
    ),
]
AlphaOption = Annotated[
    float, typer.Option("--alpha", help="LM weight on ln p(words); tune it with `lm tune`.")
]
BetaOption = Annotated[
    float, typer.Option("--beta", help="Bonus per word in nats; tune it with `lm tune`.")
]
AlphasOption = Annotated[
    str,
    typer.Option("--alphas", help="alpha grid: values '0.5,1,2' or start:stop:step '0:2:0.25'."),
]
BetasOption = Annotated[
    str,
    typer.Option("--betas", help="beta grid: values '0,1,2' or start:stop:step '-1:4:1'."),
]


def decoder_config(
    decoder: str, beam_width: int, lm: Path | None, alpha: float, beta: float
) -> DecoderConfig:
    """The options above -> a checked `DecoderConfig` (errors are one-line ConfigErrors)."""
    from deepspeech.decoding.decoders import DecoderConfig

    return DecoderConfig(
        decoder=decoder,  # checked there: "greedy" or "beam"
        beam_width=beam_width,
        alpha=alpha,
        beta=beta,
        lm_path=lm,
    )


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
    from deepspeech.decoding.lm import build_arpa
    from deepspeech.text import Alphabet

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
    beam_width: BeamWidthOption = 32,
    feature_cache: FeatureCacheOption = Path(DEFAULT_FEATURE_CACHE),
    experiment_name: Annotated[
        str, typer.Option(help="MLflow experiment for the run.")
    ] = "lm-tune",
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="MLflow store (else $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)."),
    ] = None,
) -> None:
    """Grid-search the LM weight (alpha) and word bonus (beta) on a dev set.

    Runs the model once, then beam-decodes the dev set at every grid point; prints the best
    point and logs the grid, the best WER/CER and a heatmap to one MLflow run.
    """
    from deepspeech.cli.console import progress_bar
    from deepspeech.data.cache import open_cached_set, read_manifests
    from deepspeech.decoding.tuning import float_grid, plot_tuning, tune_alpha_beta
    from deepspeech.training.checkpoint import restore_inference_model
    from deepspeech.training.evaluate import make_eval_step, model_outputs
    from deepspeech.training.mlflow_store import resolve_tracking_uri
    from deepspeech.training.tracking import log_tuning_run

    alpha_grid, beta_grid = float_grid(alphas), float_grid(betas)
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
    points = len(alpha_grid) * len(beta_grid)
    with progress_bar("alpha x beta", points) as advance:
        result = tune_alpha_beta(
            scores,
            lengths,
            references,
            info.alphabet,
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
