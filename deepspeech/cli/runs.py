"""`deepspeech runs compare`: training runs side by side, from the MLflow store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from deepspeech.cli.options import TrackingUriOption
from deepspeech.training.compare import comparison_table, load_runs, plot_comparison
from deepspeech.training.mlflow_store import resolve_tracking_uri

PIPED_WIDTH = 200
runs_app = typer.Typer(help="Look at training runs in the MLflow store.", no_args_is_help=True)


@runs_app.command("compare")
def compare(
    run_ids: Annotated[
        list[str] | None,
        typer.Argument(
            help="Run ids to compare (default: the experiment's); a sweep's parent run "
            "stands for its trials."
        ),
    ] = None,
    experiment_name: Annotated[
        str, typer.Option(help="Experiment whose runs to compare when no ids are given.")
    ] = "sample",
    tracking_uri: TrackingUriOption = None,
    output: Annotated[
        Path, typer.Option(help="PNG with the runs' loss and WER curves overlaid.")
    ] = Path("runs/compare.png"),
) -> None:
    """Print a table of runs (options and final WER/CER) and plot their curves together.

    Given a sweep's parent run (`deepspeech sweep`), compares its trials: the keys it
    searched as columns, and the epoch the scheduler stopped each trial at.
    """
    runs = load_runs(resolve_tracking_uri(tracking_uri), experiment_name, run_ids)
    rows = comparison_table(runs)
    table = Table(show_lines=False)
    for column in rows[0]:
        table.add_column(column, justify="left" if column in ("run", "name", "status") else "right")
    for row in rows:
        table.add_row(
            *(
                f"{v:.4f}" if isinstance(v, float) else ("-" if v is None else str(v))
                for v in row.values()
            )
        )
    # Piped output is read by scripts: do not squeeze the table into 80 columns there.
    Console(width=None if sys.stdout.isatty() else PIPED_WIDTH).print(table)
    typer.echo(f"curves: {plot_comparison(runs, output)}")
