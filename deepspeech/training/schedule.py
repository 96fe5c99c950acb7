"""Learning-rate schedules: the rate of each step as a pure function of the step number.

A fixed-length run (`make run` trains a fixed number of epochs) learns most from a high rate
early and a low one at the end: the last steps settle into a minimum instead of rattling
around it at the full rate. The rate is a function of the global step only, so a resumed run
continues the curve exactly where the killed one left it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LR_SCHEDULES = ("constant", "cosine")
COSINE_FLOOR = 0.02  # the cosine ends at this fraction of the peak rate, not at 0


@dataclass(frozen=True)
class LearningRateSchedule:
    """`constant`: the peak rate throughout (the 2017 recipe). `cosine`: a linear warm-up over
    `warmup_steps` to the peak, then half a cosine down to COSINE_FLOOR × peak at
    `total_steps`."""

    kind: str
    peak: float
    warmup_steps: int
    total_steps: int

    def __call__(self, step: int) -> float:
        """The rate for global step `step` (1-based: the first step trained is step 1)."""
        if self.kind == "constant":
            return self.peak
        if step < self.warmup_steps:
            return self.peak * step / self.warmup_steps
        decay_steps = max(self.total_steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / decay_steps, 1.0)
        floor = COSINE_FLOOR * self.peak
        return floor + (self.peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
