"""Tests for deepspeech/timing.py: 2017 stopwatch semantics and H:MM:SS formatting."""

import time
from datetime import datetime, timedelta, timezone

import pytest

from deepspeech.timing import format_duration, stopwatch


def test_stopwatch_start_returns_aware_utc_now() -> None:
    before = datetime.now(timezone.utc)
    start = stopwatch()
    after = datetime.now(timezone.utc)
    assert isinstance(start, datetime)
    assert start.tzinfo is not None
    assert before <= start <= after


def test_stopwatch_reads_elapsed_time() -> None:
    start = stopwatch()
    time.sleep(0.02)
    elapsed = stopwatch(start)
    assert isinstance(elapsed, timedelta)
    assert timedelta(seconds=0.02) <= elapsed < timedelta(seconds=5)


def test_stopwatch_resumes_from_a_duration() -> None:
    resumed = stopwatch(timedelta(hours=1))
    assert isinstance(resumed, datetime)
    total = stopwatch(resumed)
    assert timedelta(hours=1) <= total < timedelta(hours=1, seconds=5)


def test_stopwatch_pause_and_resume_excludes_untimed_work() -> None:
    start = stopwatch()
    time.sleep(0.02)
    elapsed = stopwatch(start)
    time.sleep(0.5)  # untimed
    resumed = stopwatch(elapsed)
    time.sleep(0.02)
    total = stopwatch(resumed)
    assert timedelta(seconds=0.04) <= total < timedelta(seconds=0.5)


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        (timedelta(0), "0:00:00"),
        (timedelta(seconds=59.999), "0:00:59"),
        (timedelta(minutes=1, seconds=5), "0:01:05"),
        (timedelta(hours=2, minutes=3, seconds=4), "2:03:04"),
        (timedelta(days=1, hours=3, minutes=46, seconds=40), "27:46:40"),
        (100_000, "27:46:40"),
        (3661.7, "1:01:01"),
        (-65, "-0:01:05"),
    ],
)
def test_format_duration(duration: timedelta | float, expected: str) -> None:
    assert format_duration(duration) == expected


def test_format_duration_rejects_non_finite() -> None:
    with pytest.raises(ValueError, match="not a finite number"):
        format_duration(float("nan"))
