"""How many worker processes to start: the CPUs this process may use, not the machine's count.

Under a CPU affinity mask (taskset, containers, CI runners) `os.cpu_count()` overstates what is
usable, and oversubscribed feature or synthesis workers only slow each other down.
"""

from __future__ import annotations

import os


def available_cpus() -> int:
    """CPUs this process may run on (the affinity mask, where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
