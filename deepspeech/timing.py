"""Wall-clock timing of training and import steps, with the 2017 `stopwatch` semantics.

Times are timezone-aware UTC so durations stay right across daylight-saving changes and can be
logged next to MLflow's timestamps.
"""

import math
from datetime import datetime, timedelta, timezone
from typing import Literal, overload


@overload
def stopwatch(start_duration: Literal[0] = 0) -> datetime: ...
@overload
def stopwatch(start_duration: datetime) -> timedelta: ...
@overload
def stopwatch(start_duration: timedelta) -> datetime: ...
def stopwatch(start_duration: datetime | timedelta | Literal[0] = 0) -> datetime | timedelta:
    """Start, read, or resume a stopwatch, so pausable timing needs no object.

    Called with nothing, it returns the current time as a start point. Called with a start
    point, it returns the time elapsed since (a `timedelta`). Called with an elapsed duration,
    it returns a start point that far in the past, so the next reading continues the count:

        sw = stopwatch()              # start
        ...                           # timed work
        elapsed = stopwatch(sw)       # pause: timedelta so far
        ...                           # untimed work
        sw = stopwatch(elapsed)       # resume
        ...                           # more timed work
        elapsed = stopwatch(sw)       # total of both timed parts
        logger.info("took %s", format_duration(elapsed))
    """
    now = datetime.now(timezone.utc)
    if isinstance(start_duration, int) and start_duration == 0:
        return now
    return now - start_duration


def format_duration(duration: timedelta | float) -> str:
    """A duration (timedelta or seconds) as "H:MM:SS", whole seconds, for logs and reports.

    Hours keep counting past 24 ("27:46:40"), since training runs can last days; fractions of
    a second are truncated as in 2017; negative durations get a leading "-".
    """
    seconds = duration.total_seconds() if isinstance(duration, timedelta) else float(duration)
    if not math.isfinite(seconds):
        raise ValueError(f"duration {duration!r} is not a finite number of seconds")
    sign = "-" if seconds < 0 else ""
    minutes, secs = divmod(int(abs(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{sign}{hours}:{minutes:02d}:{secs:02d}"
