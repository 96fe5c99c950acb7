"""Alpha/beta grid search on hand-built dev score matrices, its plot and its grid option."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_decode import ALPHABET, LM_TEXT, frames, spell

from deepspeech.decoding.lm import build_kneser_ney
from deepspeech.decoding.tuning import (
    TuneResult,
    float_grid,
    plot_tuning,
    tune_alpha_beta,
)
from deepspeech.errors import ConfigError

AMBIGUOUS = {"k": 0.55, "c": 0.44}  # the acoustics slightly prefer the non-word "kat"
REFERENCES = ["the cat sat", "the cat ran", "the dog sat"]


@pytest.fixture(scope="module")
def lm_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lm") / "lm.arpa"
    build_kneser_ney(LM_TEXT, order=3).write_arpa(path)
    return path


def dev_set() -> tuple[list[np.ndarray], list[int]]:
    """Score matrices for REFERENCES, the first two with padding past their lengths."""
    matrices = [
        frames(*spell("the "), AMBIGUOUS, "_", *spell("at sat"), *spell(" xx")),
        frames(*spell("the "), AMBIGUOUS, "_", *spell("at ran")),
        frames(*spell("the dog sat")),
    ]
    lengths = [22, 22, 22]
    return matrices, lengths


def test_grid_finds_the_lm_weight_that_fixes_the_dev_set(lm_path: Path) -> None:
    matrices, lengths = dev_set()
    calls: list[str | None] = []
    result = tune_alpha_beta(
        matrices,
        lengths,
        REFERENCES,
        ALPHABET,
        lm_path,
        alphas=[0.0, 0.75],
        betas=[0.0, 1.0],
        beam_width=16,
        progress=lambda n=1, info=None: calls.append(info),
    )
    assert result.wer.shape == result.cer.shape == (2, 2)
    # Without the LM the two "kat"s are wrong: 2 of 9 words, 2 of 33 characters.
    np.testing.assert_allclose(result.wer[0], [2 / 9, 2 / 9])
    np.testing.assert_allclose(result.cer[0], [2 / 33, 2 / 33])
    np.testing.assert_allclose(result.wer[1], [0, 0])
    assert (result.best_alpha, result.best_beta, result.best_wer) == (0.75, 0.0, 0.0)
    assert len(calls) == 4 and all("WER" in c for c in calls if c)
    assert result.rows()[1] == {"alpha": 0.0, "beta": 1.0, "wer": 2 / 9, "cer": 2 / 33}


def test_lengths_default_to_whole_matrices(lm_path: Path) -> None:
    matrices, _ = dev_set()
    result = tune_alpha_beta(
        matrices[1:], None, REFERENCES[1:], ALPHABET, lm_path, alphas=[0.75], betas=[0.0]
    )
    assert result.best_wer == 0.0


def test_ties_go_to_the_lower_cer_then_the_first_grid_point() -> None:
    wer = np.array([[0.2, 0.1], [0.1, 0.3]])
    cer = np.array([[0.05, 0.04], [0.03, 0.01]])
    result = TuneResult((0.5, 1.0), (0.0, 1.0), wer, cer, 8, Path("lm.arpa"))
    assert (result.best_alpha, result.best_beta, result.best_cer) == (1.0, 0.0, 0.03)
    flat = TuneResult((0.5, 1.0), (0.0,), np.zeros((2, 1)), np.zeros((2, 1)), 8, Path("x"))
    assert flat.best_index == (0, 0)


def test_mismatched_inputs_are_refused(lm_path: Path) -> None:
    matrices, lengths = dev_set()
    with pytest.raises(ConfigError, match="must pair up"):
        tune_alpha_beta(matrices, lengths, REFERENCES[:2], ALPHABET, lm_path, [1.0], [1.0])
    with pytest.raises(ConfigError, match="lengths"):
        tune_alpha_beta(matrices, lengths[:2], REFERENCES, ALPHABET, lm_path, [1.0], [1.0])
    with pytest.raises(ConfigError, match="at least one value"):
        tune_alpha_beta(matrices, lengths, REFERENCES, ALPHABET, lm_path, [], [1.0])


def test_plot_is_a_heatmap_with_the_best_point(lm_path: Path, tmp_path: Path) -> None:
    wer = np.array([[0.3, 0.2, 0.25], [0.1, 0.15, 0.4]])
    result = TuneResult((0.5, 1.0), (0.0, 1.0, 2.0), wer, wer / 3, 16, lm_path)
    figure = plot_tuning(result)
    heatmap, _colorbar = figure.axes
    assert heatmap.images[0].get_array().shape == (2, 3)
    assert "best alpha 1, beta 0" in heatmap.get_title()
    assert [t.get_text() for t in heatmap.get_xticklabels()] == ["0", "1", "2"]
    figure.savefig(tmp_path / "tuning.png")
    assert (tmp_path / "tuning.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("spec", "values"),
    [
        ("0.5,1,2", (0.5, 1.0, 2.0)),
        (" 1 ", (1.0,)),
        ("0:1:0.25", (0.0, 0.25, 0.5, 0.75, 1.0)),
        ("-1:2:1", (-1.0, 0.0, 1.0, 2.0)),
        ("0:0.3:0.1", (0.0, 0.1, 0.2, 0.3)),
    ],
)
def test_float_grid_reads_lists_and_ranges(spec: str, values: tuple[float, ...]) -> None:
    assert float_grid(spec) == pytest.approx(values)


@pytest.mark.parametrize("spec", ["", "a,b", "0:1", "1:0:0.5", "0:1:0", "0:1:-1"])
def test_float_grid_refuses_nonsense(spec: str) -> None:
    with pytest.raises(ConfigError, match="start:stop:step"):
        float_grid(spec)
