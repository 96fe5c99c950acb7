"""A flood: 200 clients upload maximum-size WAVs at once to a server with default limits.

Run: .venv/bin/python benchmarks/flood.py [--clients 200] [--n-hidden 256] [--markdown]

Starts `deepspeech serve` (default limits: 32 MB bodies, 60 s of audio, 16 transcriptions in
flight) on 127.0.0.1 with a random-weights model, and sends `--clients` uploads at once, each
on its own connection, each a valid WAV just under the body limit (58 s of 96 kHz 24-bit
stereo, which the server decodes and resamples). The server's resident memory is sampled
every 5 ms throughout. Then one more valid upload shows whether it still serves.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile
from inputs import random_weights_model
from machine import cpu_model

# benchmarks/serving.py would shadow the server package: put the tests' harnesses in its place.
sys.path[0] = str(Path(__file__).resolve().parent.parent / "tests")
from loadgen import flood  # noqa: E402
from rss import PeakMemory  # noqa: E402
from servers import run_server_process  # noqa: E402

from serving.settings import ServerSettings  # noqa: E402

DEFAULTS = ServerSettings(model="-")  # the limits `deepspeech serve` has when not told

TARGET_RSS_BYTES = 1.5e9
RATE, CHANNELS, SUBTYPE, BYTES_PER_SAMPLE = 96000, 2, "PCM_24", 3


def maximum_size_wav(limit_bytes: int, max_seconds: float) -> bytes:
    """A valid 96 kHz 24-bit stereo WAV as long as both limits allow."""
    seconds = min(max_seconds - 1, (limit_bytes - 1024) / (RATE * CHANNELS * BYTES_PER_SAMPLE))
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(0)
    mono = 0.3 * np.sin(2 * np.pi * 140 * t) * np.sin(np.pi * 2 * t) ** 2
    audio = np.stack([mono, mono], axis=1) + 0.01 * rng.standard_normal((len(t), CHANNELS))
    buffer = io.BytesIO()
    soundfile.write(buffer, audio.astype(np.float32), RATE, format="WAV", subtype=SUBTYPE)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--n-hidden", type=int, default=256)
    parser.add_argument("--markdown", action="store_true", help="print a RESULTS.md section")
    args = parser.parse_args()

    limit = int(DEFAULTS.max_body_mb * 2**20)
    body = maximum_size_wav(limit, DEFAULTS.max_audio_seconds)
    seconds = (len(body) - 44) / (RATE * CHANNELS * BYTES_PER_SAMPLE)
    with tempfile.TemporaryDirectory(prefix="bench-flood-") as tmp:
        model = random_weights_model(args.n_hidden, Path(tmp))
        with (
            run_server_process(model) as server,
            httpx.Client(base_url=server.url, timeout=300) as client,
        ):
            wav = {"Content-Type": "audio/wav"}
            warm = client.post("/v1/transcribe", content=body, headers=wav)
            assert warm.status_code == 200, warm.text
            idle = server.rss_bytes()
            start = time.perf_counter()
            with PeakMemory(server.process.pid) as memory:
                results = asyncio.run(flood(server.url, body, args.clients))
            took = time.perf_counter() - start
            after = client.post("/v1/transcribe", content=body, headers=wav)
    responses = [r for r in results if isinstance(r, httpx.Response)]
    errors = [r for r in results if not isinstance(r, httpx.Response)]
    statuses = [r.status_code for r in responses]
    ok, unavailable = statuses.count(200), statuses.count(503)
    other_5xx = sum(1 for s in statuses if s >= 500 and s != 503)
    retry_after = all(r.headers.get("retry-after") for r in responses if r.status_code == 503)
    ms = {
        code: statistics.median(
            r.elapsed.total_seconds() * 1e3 for r in responses if r.status_code == code
        )
        for code in (200, 503)
        if code in statuses
    }
    met = (
        memory.peak <= TARGET_RSS_BYTES
        and other_5xx == 0
        and not errors
        and after.status_code == 200
    )

    command = ".venv/bin/python benchmarks/flood.py --markdown"
    if (args.clients, args.n_hidden) != (200, 256):
        command += f" --clients {args.clients} --n-hidden {args.n_hidden}"
    lines = [
        "## Flood\n",
        f"{args.clients} clients upload a maximum-size WAV at once ({len(body) / 2**20:.1f} MB: "
        f"{seconds:.0f} s of 96 kHz 24-bit stereo, under the {DEFAULTS.max_body_mb:g} MB body "
        f"and {DEFAULTS.max_audio_seconds:g} s limits), each on its own connection, to "
        f"`deepspeech serve` with its default limits ({DEFAULTS.max_in_flight} transcriptions "
        f"in flight) and a random-weights model (n_hidden {args.n_hidden}); resident memory "
        "sampled every 5 ms; then one more upload.\n",
        f"- Command: `{command}`",
        f"- Date: {datetime.date.today().isoformat()}",
        f"- Machine: {cpu_model()}, nproc {os.cpu_count()}, Python {platform.python_version()}\n",
        "| requests | 200 | 503 (Retry-After) | other 5xx | transport errors | median 200 | "
        "median 503 | flood took | RSS idle | RSS peak | upload after |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {len(results)} | {ok} | {unavailable} ({'all' if retry_after else 'NOT all'}) | "
        f"{other_5xx} | {len(errors)} | {ms.get(200, float('nan')):.0f} ms | "
        f"{ms.get(503, float('nan')):.0f} ms | {took:.1f} s | {idle / 2**20:.0f} MB | "
        f"{memory.peak / 2**20:.0f} MB | {after.status_code} |",
        "",
        f"Of {len(results)} maximum-size uploads, {ok} were transcribed and {unavailable} "
        f"refused with 503 (median {ms.get(503, float('nan')):.0f} ms, against "
        f"{ms.get(200, float('nan')):.0f} ms for a transcription), with {other_5xx} other 5xx "
        f"and {len(errors)} transport errors; resident memory peaked at "
        f"{memory.peak / 1e9:.2f} GB ({idle / 1e9:.2f} GB idle) and the next upload got "
        f"{after.status_code} (target: no 5xx but 503, RSS ≤ {TARGET_RSS_BYTES / 1e9:g} GB, "
        f"200 after: {'met' if met else 'NOT met'}).",
    ]
    text = "\n".join(lines)
    print(text if args.markdown else text.replace("## ", ""))


if __name__ == "__main__":
    main()
