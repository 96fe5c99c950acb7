"""Load generators for a running server, for the load and flood tests and the benchmarks.

`generate_load` is closed-loop: `concurrency` clients each upload the next WAV as soon as
their previous answer arrives, for a fixed number of requests or a fixed time, so the server
is always holding `concurrency` requests: the load a pool of callers puts on it. Every non-200
answer and every transport error is recorded, not raised, so a run reports all its failures
at the end. One asyncio client: on a 2-core machine client threads would take CPU the server
needs. `flood` sends many uploads at once (`rss.PeakMemory` samples the server's resident
memory meanwhile).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import numpy as np

TRANSCRIBE_ROUTE = "/v1/transcribe"
BATCH_SIZE_METRICS = ("deepspeech_batch_size_count", "deepspeech_batch_size_sum")


@dataclass
class LoadResult:
    """What one run saw: per-request latencies of the successes, and every failure."""

    concurrency: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    errors: list[str] = field(default_factory=list)  # "status: body" or "ExceptionType: text"

    @property
    def requests(self) -> int:
        return len(self.latencies) + len(self.errors)

    @property
    def throughput(self) -> float:
        """Successful requests per second."""
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """Latency percentile `q` (0-100) in seconds; NaN when nothing succeeded."""
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")


async def _generate_load(
    url: str,
    wavs: Sequence[bytes],
    concurrency: int,
    requests: int | None,
    seconds: float | None,
    timeout: float,
) -> LoadResult:
    result = LoadResult(concurrency)
    tickets = itertools.count()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    start = time.perf_counter()
    deadline = start + seconds if seconds is not None else float("inf")

    async def client_loop(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            ticket = next(tickets)
            if requests is not None and ticket >= requests:
                return
            sent = time.perf_counter()
            try:
                response = await client.post(
                    TRANSCRIBE_ROUTE,
                    content=wavs[ticket % len(wavs)],
                    headers={"Content-Type": "audio/wav"},
                )
            except httpx.HTTPError as e:
                result.errors.append(f"{type(e).__name__}: {e}")
                continue
            if response.status_code == 200:
                result.latencies.append(time.perf_counter() - sent)
            else:
                result.errors.append(f"{response.status_code}: {response.text[:200]}")

    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
    result.seconds = time.perf_counter() - start
    return result


def generate_load(
    url: str,
    wavs: Sequence[bytes],
    concurrency: int,
    *,
    requests: int | None = None,
    seconds: float | None = None,
    timeout: float = 300.0,
) -> LoadResult:
    """Upload `wavs` (round robin) to `url` from `concurrency` clients until `requests` have
    been sent or `seconds` have passed (give exactly one); requests in flight at the deadline
    finish and count."""
    if (requests is None) == (seconds is None):
        raise ValueError("give either requests or seconds")
    if concurrency < 1 or not wavs:
        raise ValueError("need concurrency >= 1 and at least one WAV")
    return asyncio.run(_generate_load(url, wavs, concurrency, requests, seconds, timeout))


def batch_totals(client: httpx.Client) -> tuple[float, float]:
    """(batches run, utterances in them) so far, from the server's /metrics."""
    values = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(BATCH_SIZE_METRICS):
            name, value = line.split()
            values[name] = float(value)
    return values[BATCH_SIZE_METRICS[0]], values[BATCH_SIZE_METRICS[1]]


async def flood(url: str, body: bytes, clients: int) -> list[httpx.Response | Exception]:
    """`clients` uploads of `body` all at once, each on its own connection: the answers, or
    the transport errors, in order."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:

        async def one() -> httpx.Response | Exception:
            try:
                return await client.post(
                    "/v1/transcribe", content=body, headers={"Content-Type": "audio/wav"}
                )
            except httpx.HTTPError as e:
                return e

        return await asyncio.gather(*(one() for _ in range(clients)))
