"""Resident memory of a process (Linux /proc), for the tests and the benchmarks.

`status_bytes` reads one size field; `PeakMemory` samples a process in a thread while a block
runs and keeps the peak, and, given a limit, kills the process past it, so that a memory
regression fails its test or benchmark instead of taking the machine down with it.
"""

from __future__ import annotations

import os
import signal
import threading


def status_bytes(pid: int | str, field: str = "VmRSS") -> int:
    """A size field of /proc/PID/status (VmRSS now, VmHWM the peak) in bytes; pid may be
    "self"."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


class PeakMemory:
    """Samples a process's VmRSS every `interval` seconds until the block ends; keeps the peak.

    With `limit` (bytes), a sample above it kills the process (SIGKILL) and sets `killed`.
    Sampling stops quietly when the process is gone.
    """

    def __init__(self, pid: int, limit: int | None = None, interval: float = 0.005) -> None:
        self.pid, self.limit, self.interval = pid, limit, interval
        self.peak, self.killed = 0, False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                rss = status_bytes(self.pid)
            except (OSError, RuntimeError):
                return  # exited (or a zombie, which has no VmRSS)
            self.peak = max(self.peak, rss)
            if self.limit is not None and rss > self.limit:
                self.killed = True
                os.kill(self.pid, signal.SIGKILL)
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
