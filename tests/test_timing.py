"""Tests for deepspeech/timing.py: 2017 stopwatch semantics and H:MM:SS formatting.

The stopwatch reads `datetime.now(timezone.utc)`; the tests below swap in a clock that only
moves when told to, so every reading is exact and none depends on how busy the machine is.
"""

from datetime import datetime, timedelta, timezone, tzinfo

import pytest

import deepspeech.timing as timing
from deepspeech.timing import format_duration, stopwatch


class FakeClock:
    """UTC time that moves only by `advance`."""

    def __init__(self) -> None:
        self.now = datetime(2017, 11, 30, 12, 0, tzinfo=timezone.utc)
        self.readings = 0

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()

    class FakeDatetime(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:
            assert tz is timezone.utc, f"the stopwatch must read UTC, read {tz!r}"
            fake.readings += 1
            return fake.now

    monkeypatch.setattr(timing, "datetime", FakeDatetime)
    return fake


def test_stopwatch_start_returns_aware_utc_now() -> None:
    """Against the real clock: the start point lies between two readings taken around it."""
    before = datetime.now(timezone.utc)
    start = stopwatch()
    after = datetime.now(timezone.utc)
    assert isinstance(start, datetime)
    assert start.tzinfo is not None
    assert before <= start <= after


def test_stopwatch_start_is_the_clock_reading(clock: FakeClock) -> None:
    assert stopwatch() == clock.now
    assert clock.readings == 1


def test_stopwatch_reads_elapsed_time(clock: FakeClock) -> None:
    start = stopwatch()
    clock.advance(milliseconds=20)
    elapsed = stopwatch(start)
    assert isinstance(elapsed, timedelta)
    assert elapsed == timedelta(milliseconds=20)
    assert clock.readings == 2  # one reading per call, no hidden extra ones


def test_stopwatch_resumes_from_a_duration(clock: FakeClock) -> None:
    resumed = stopwatch(timedelta(hours=1))
    assert isinstance(resumed, datetime)
    assert resumed == clock.now - timedelta(hours=1)
    clock.advance(seconds=3)
    assert stopwatch(resumed) == timedelta(hours=1, seconds=3)


def test_stopwatch_pause_and_resume_excludes_untimed_work(clock: FakeClock) -> None:
    start = stopwatch()
    clock.advance(milliseconds=20)
    elapsed = stopwatch(start)
    clock.advance(milliseconds=500)  # untimed
    resumed = stopwatch(elapsed)
    clock.advance(milliseconds=20)
    total = stopwatch(resumed)
    assert total == timedelta(milliseconds=40)


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
