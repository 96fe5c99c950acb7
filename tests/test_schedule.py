"""Learning-rate schedules: warm-up, cosine decay to its floor, and the constant 2017 rate."""

from __future__ import annotations

import itertools
import math

import pytest

from deepspeech.errors import ConfigError
from deepspeech.training.config import TrainConfig
from deepspeech.training.schedule import COSINE_FLOOR, LearningRateSchedule


def test_constant_is_the_peak_at_every_step() -> None:
    schedule = LearningRateSchedule("constant", 1e-3, warmup_steps=10, total_steps=100)
    assert {schedule(step) for step in range(1, 200)} == {1e-3}


def test_cosine_warms_up_linearly_then_decays_to_its_floor() -> None:
    schedule = LearningRateSchedule("cosine", 2e-3, warmup_steps=10, total_steps=110)
    assert schedule(1) == pytest.approx(2e-4)
    assert schedule(5) == pytest.approx(1e-3)
    assert schedule(10) == pytest.approx(2e-3)
    rates = [schedule(step) for step in range(10, 111)]
    assert all(b < a for a, b in itertools.pairwise(rates))
    # Halfway through the decay the rate is halfway between the peak and the floor.
    floor = COSINE_FLOOR * 2e-3
    assert schedule(60) == pytest.approx((2e-3 + floor) / 2)
    assert schedule(110) == pytest.approx(floor)
    assert schedule(500) == pytest.approx(floor)  # steps past the plan stay at the floor


def test_cosine_without_warm_up_starts_at_the_peak() -> None:
    schedule = LearningRateSchedule("cosine", 1.0, warmup_steps=0, total_steps=4)
    expected = COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + math.cos(math.pi / 4))
    assert schedule(0) == 1.0 and schedule(1) == pytest.approx(expected)


def test_a_schedule_and_plateau_cuts_are_refused_together() -> None:
    with pytest.raises(ConfigError, match="reduce_lr_on_plateau"):
        TrainConfig(lr_schedule="cosine", reduce_lr_on_plateau=True)
    with pytest.raises(ConfigError, match="lr_schedule 'linear'"):
        TrainConfig(lr_schedule="linear")
    with pytest.raises(ConfigError, match="warmup_steps"):
        TrainConfig(warmup_steps=-1)
