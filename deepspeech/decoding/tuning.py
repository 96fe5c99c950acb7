"""Choose the beam decoder's LM weight (alpha) and word bonus (beta) on a dev set.

The best values depend on the acoustic model (how peaky and how right it is) and on the LM,
so they are searched, not guessed: every (alpha, beta) pair of a grid decodes the same dev
scores, and the pair with the lowest corpus WER (CER breaks ties) wins. The acoustic model
runs once; only decoding repeats, with the LM loaded once per decoding process.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deepspeech.decoding.decoders import (
    DEFAULT_BEAM_THRESHOLD,
    DEFAULT_BEAM_WIDTH,
    DEFAULT_TOKEN_BEAM,
    DecoderConfig,
    ScoreKind,
    to_log_probs,
)
from deepspeech.decoding.pool import DecoderPool
from deepspeech.errors import ConfigError
from deepspeech.metrics import corpus_error_rates
from deepspeech.text import Alphabet

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

Progress = Callable[..., None]  # advance(n=1, info=None), as deepspeech.cli.console yields


@dataclass(frozen=True)
class TuneResult:
    """Corpus WER and CER for every grid point; `wer[i, j]` is for alphas[i], betas[j]."""

    alphas: tuple[float, ...]
    betas: tuple[float, ...]
    wer: np.ndarray  # (len(alphas), len(betas)) total word edits / total reference words
    cer: np.ndarray  # (len(alphas), len(betas)) the same for characters
    beam_width: int
    lm_path: Path

    @property
    def best_index(self) -> tuple[int, int]:
        """(i, j) of the lowest WER, ties broken by CER, then by the smaller alpha and beta."""
        order = np.lexsort((self.cer.ravel(), self.wer.ravel()))  # stable: grid order breaks ties
        i, j = np.unravel_index(int(order[0]), self.wer.shape)
        return int(i), int(j)

    @property
    def best_alpha(self) -> float:
        return self.alphas[self.best_index[0]]

    @property
    def best_beta(self) -> float:
        return self.betas[self.best_index[1]]

    @property
    def best_wer(self) -> float:
        return float(self.wer[self.best_index])

    @property
    def best_cer(self) -> float:
        return float(self.cer[self.best_index])

    def rows(self) -> list[dict[str, float]]:
        """One dict per grid point (alpha, beta, wer, cer), e.g. for MLflow or a table."""
        return [
            {"alpha": a, "beta": b, "wer": float(self.wer[i, j]), "cer": float(self.cer[i, j])}
            for i, a in enumerate(self.alphas)
            for j, b in enumerate(self.betas)
        ]


def tune_alpha_beta(
    score_matrices: Sequence[np.ndarray],
    lengths: Sequence[int] | np.ndarray | None,
    references: Sequence[str],
    alphabet: Alphabet,
    lm_path: Path | str,
    alphas: Sequence[float],
    betas: Sequence[float],
    beam_width: int = DEFAULT_BEAM_WIDTH,
    progress: Progress | None = None,
    *,
    kind: ScoreKind = "auto",
    token_beam: int = DEFAULT_TOKEN_BEAM,
    beam_threshold: float = DEFAULT_BEAM_THRESHOLD,
    workers: int | None = None,
) -> TuneResult:
    """Decode the dev set at every (alpha, beta) and score it against the references.

    `score_matrices` are per-utterance (n_frames, n_classes) model outputs (logits or
    probabilities, see `deepspeech.decoding.decoders.to_log_probs`); `lengths` gives the
    valid frames of each (None: all). `progress(1, info)` is called after each grid point.
    Each grid point's utterances are decoded in `workers` processes (default: every usable
    CPU; see `deepspeech.decoding.pool`).
    """
    alphas, betas = tuple(float(a) for a in alphas), tuple(float(b) for b in betas)
    if not alphas or not betas:
        raise ConfigError("the alpha and beta grids need at least one value each")
    if len(score_matrices) != len(references):
        raise ConfigError(
            f"{len(score_matrices)} score matrices but {len(references)} references; "
            "they must pair up"
        )
    if not references:
        raise ConfigError("no dev utterances to tune on")
    if lengths is None:
        lengths = [len(m) for m in score_matrices]
    if len(lengths) != len(score_matrices):
        raise ConfigError(f"{len(lengths)} lengths for {len(score_matrices)} score matrices")
    # Convert once; the decoder then sees log-probabilities and converts nothing.
    log_probs = [
        to_log_probs(m[: int(n)], kind) for m, n in zip(score_matrices, lengths, strict=True)
    ]
    base = DecoderConfig(
        decoder="beam",
        beam_width=beam_width,
        lm_path=Path(lm_path),
        token_beam=token_beam,
        beam_threshold=beam_threshold,
    )
    wer = np.zeros((len(alphas), len(betas)))
    cer = np.zeros((len(alphas), len(betas)))
    with DecoderPool(base, alphabet, kind="logits", workers=workers) as pool:
        for i, alpha in enumerate(alphas):
            for j, beta in enumerate(betas):
                config = dataclasses.replace(base, alpha=alpha, beta=beta)
                hypotheses = pool.decode_many(log_probs, config)
                wer[i, j], cer[i, j] = corpus_error_rates(references, hypotheses)
                logger.debug(
                    "alpha %g beta %g: WER %.4f CER %.4f", alpha, beta, wer[i, j], cer[i, j]
                )
                if progress is not None:
                    progress(1, f"alpha {alpha:g} beta {beta:g}: WER {wer[i, j]:.2%}")
    result = TuneResult(alphas, betas, wer, cer, beam_width, Path(lm_path))
    logger.info(
        "best alpha %g beta %g: WER %.2f%% CER %.2f%% (beam %d, %d utterances)",
        result.best_alpha,
        result.best_beta,
        100 * result.best_wer,
        100 * result.best_cer,
        beam_width,
        len(references),
    )
    return result


def float_grid(spec: str) -> tuple[float, ...]:
    """Parse a grid option: "0.5,1,2" (the values) or "0:2:0.25" (start:stop:step, inclusive).

    For the CLI's --alphas/--betas; errors say what was wrong with the text.
    """
    text = spec.strip()
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) != 3 or parts[2] <= 0 or parts[1] < parts[0]:
                raise ValueError
            start, stop, step = parts
            count = int(np.floor((stop - start) / step + 1e-9)) + 1
            return tuple(round(start + k * step, 10) for k in range(count))
        values = tuple(float(p) for p in text.split(",") if p.strip())
        if not values:
            raise ValueError
        return values
    except ValueError:
        raise ConfigError(
            f"grid {spec!r} is not valid; write values ('0.5,1,2') or start:stop:step "
            "('0:2:0.25', step > 0, stop >= start)"
        ) from None


def plot_tuning(result: TuneResult) -> Figure:
    """Heatmap of WER over alpha (rows) x beta (columns), the best point marked.

    Uses `matplotlib.figure.Figure` directly (no pyplot), so it is safe in threads and needs
    no display; save it with `figure.savefig(path)` or `mlflow.log_figure`.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(1.2 + 0.75 * len(result.betas), 1.2 + 0.5 * len(result.alphas)))
    axes = figure.add_subplot()
    image = axes.imshow(100 * result.wer, cmap="viridis_r", aspect="auto", origin="lower")
    figure.colorbar(image, ax=axes, label="WER (%)")
    axes.set_xticks(range(len(result.betas)), [f"{b:g}" for b in result.betas])
    axes.set_yticks(range(len(result.alphas)), [f"{a:g}" for a in result.alphas])
    axes.set_xlabel("beta (word bonus)")
    axes.set_ylabel("alpha (LM weight)")
    midpoint = 100 * (result.wer.min() + result.wer.max()) / 2
    for i in range(len(result.alphas)):
        for j in range(len(result.betas)):
            value = 100 * result.wer[i, j]
            axes.text(
                j,
                i,
                f"{value:.1f}",
                ha="center",
                va="center",
                fontsize=7,
                color="black" if value < midpoint else "white",
            )
    i, j = result.best_index
    axes.scatter([j], [i], marker="s", s=260, facecolors="none", edgecolors="red", linewidths=2)
    axes.set_title(
        f"WER, beam {result.beam_width}: best alpha {result.best_alpha:g}, "
        f"beta {result.best_beta:g} ({100 * result.best_wer:.1f}%)",
        fontsize=9,
    )
    figure.tight_layout()
    return figure
