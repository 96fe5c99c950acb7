"""`deepspeech sweep`: a recipe's settings searched on Ray Tune, tracked in MLflow."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from deepspeech.cli.console import progress_bar
from deepspeech.cli.options import settings_options
from deepspeech.sweep.config import SweepConfig, load_sweep
from deepspeech.sweep.tracking import TrialRow

PIPED_WIDTH = 200


@settings_options(SweepConfig)
def sweep(
    config: Annotated[
        Path,
        typer.Option(
            help="Sweep YAML: the base training config, the space and how to search it (keys "
            "are these flags with underscores); flags override it. Its name names the sweep.",
            exists=True,
            dir_okay=False,
        ),
    ],
    **flags: Any,
) -> None:
    """Search a training recipe's settings on Ray Tune; each trial an MLflow child run.

    Trials train with the base config plus the values the search algorithm draws, and report
    their dev figures after each epoch; the scheduler stops the unpromising ones early. The
    sweep's parent run ends with the best trial, a table of all trials and a plot of the
    metric against each searched key. Re-running the same command resumes the sweep: finished
    trials are kept, unfinished ones continue from their checkpoints, in the same runs.
    """
    settings = load_sweep(config, flags)  # a bad sweep fails before Ray or TensorFlow loads
    from deepspeech.sweep.runner import run_sweep  # Ray Tune, MLflow

    result = run_sweep(settings, progress=progress_bar)
    metric = settings.settings.metric
    keys = [d.key for d in settings.space]
    table = Table(title=f"sweep {settings.name}: {len(result.rows)} trials, best first")
    for column in ("trial", "run", *keys, "epochs", metric, "stopped"):
        table.add_column(column, justify="left" if column in ("trial", "run") else "right")
    for row in result.rows:
        value = row.metrics.get(metric)
        table.add_row(
            row.trial_id,
            row.run_id[:8],
            *(_shown(row.settings.get(k)) for k in keys),
            "-" if row.epoch is None else str(row.epoch),
            "-" if value is None else f"{value:.4f}",
            _stopped(row),
        )
    Console(width=None if sys.stdout.isatty() else PIPED_WIDTH).print(table)
    best = result.best
    assert best is not None  # run_sweep raised otherwise
    minutes = result.seconds / 60
    typer.echo(
        f"best {metric} {best.metrics[metric]:.4f} (run {best.run_id}); "
        f"{result.stopped_early} of {len(result.rows)} trials stopped early; {minutes:.1f} min"
    )
    typer.echo(f"parent run: {result.parent_run_id}")
    typer.echo(f"compare: deepspeech runs compare {result.parent_run_id}")


def _stopped(row: TrialRow) -> str:
    if row.stopped_early:
        return f"after {row.stopped_at_epoch}"
    return "error" if row.error else ""


def _shown(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
