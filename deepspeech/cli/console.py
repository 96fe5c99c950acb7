"""Consoles and progress bars; only the CLI draws on the terminal, the library reports counts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from deepspeech.logs import stderr_console


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[..., None]]:
    """Yield `advance(n=1, info=None)`, the callback shape library code reports progress with.

    The bar is drawn on stderr so that stdout stays clean for results; `info` (e.g. the
    current loss) is shown beside it.
    """
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=stderr_console,
        transient=False,
    )
    with progress:
        task = progress.add_task(description, total=total, info="")

        def advance(n: int = 1, info: str | None = None) -> None:
            if info is None:
                progress.advance(task, n)
            else:
                progress.update(task, advance=n, info=info)

        yield advance


@contextmanager
def audio_progress_bar(description: str, total_seconds: float) -> Iterator[Callable[[float], None]]:
    """Yield `done(seconds)`: a bar over seconds of audio, for work whose cost is its length
    (a one-hour recording is most of the work of a run, one file among many)."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} s of audio"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr_console,
        transient=False,
    )
    with progress:
        task = progress.add_task(description, total=total_seconds)

        def done(seconds: float) -> None:
            progress.advance(task, seconds)

        yield done
