"""How many worker processes to start: the CPUs this process may use, not the machine's count.

Under a CPU affinity mask (taskset, containers, CI runners) `os.cpu_count()` overstates what is
usable, and oversubscribed feature or synthesis workers only slow each other down.
"""

from __future__ import annotations

import os

from threadpoolctl import threadpool_limits


def available_cpus() -> int:
    """CPUs this process may run on (the affinity mask, where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def limit_blas_threads() -> None:
    """One BLAS thread per process: the MFCC's small matrix products ran 5x slower when BLAS
    threads competed for the cores that the feature processes already use."""
    threadpool_limits(limits=1)


def limit_blas_threads_idle_priority() -> None:
    """`limit_blas_threads`, in a process that runs only when the CPU would otherwise idle
    (nice 19): background work beside a training that uses the same cores."""
    limit_blas_threads()
    os.nice(19)
