"""Load and fault figures of a real server: 60 s at concurrency 16, then the malformed corpus.

Run: .venv/bin/python benchmarks/reliability.py [--model MODEL.onnx | --n-hidden 1024]
     [--seconds 60] [--concurrency 16] [--passes 3] [--markdown]

Starts `deepspeech serve` on 127.0.0.1 and measures, in one run on one server process:
1. load: `--concurrency` clients each uploading the next 2-6 s WAV as soon as their answer
   arrives, for `--seconds` after a short warm-up: errors, throughput, p50/p99 latency, and
   the server's resident memory at the start and the end;
2. faults: every WAV of the malformed corpus (tests/malformed.py) `--passes` times, and a
   request claiming an 8 GB body: what status each got (never a 5xx is the bar), how long the
   answers took, resident memory after the first and the last pass, and whether a valid
   request still works afterwards.
"""

from __future__ import annotations

import argparse
import collections
import platform
import socket
import sys
import time
from importlib.metadata import version
from pathlib import Path

import httpx
import numpy as np
from inputs import add_model_options, described_model, model_to_serve, speech_like_wav
from section import head, parse_args, print_result

# Drop this folder from the path (its serving.py would shadow the server package), and use
# the tests' harnesses (malformed-input corpus, load generator, server process) rather than
# copies: they are not part of the production package.
sys.path[0] = str(Path(__file__).resolve().parent.parent / "tests")
import malformed  # noqa: E402
from loadgen import LoadResult, generate_load  # noqa: E402
from servers import ServerProcess, run_server_process  # noqa: E402

MAX_RSS_GROWTH = 0.10
WARMUP_SECONDS = 5.0
CLIP_SECONDS = (2.0, 3.0, 4.0, 6.0)
MB = 2**20


def measure_load(server: ServerProcess, seconds: float, concurrency: int):
    wavs = [speech_like_wav(s, seed) for seed, s in enumerate(CLIP_SECONDS)]
    generate_load(server.url, wavs, concurrency, seconds=WARMUP_SECONDS)
    rss_start = server.rss_bytes()
    result = generate_load(server.url, wavs, concurrency, seconds=seconds)
    return result, rss_start, server.rss_bytes()


def oversized_claim_seconds(server: ServerProcess) -> tuple[int, float]:
    """Status and seconds to answer a request whose Content-Length claims 8 GB."""
    host, port = server.url.removeprefix("http://").split(":")
    start = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(
            b"POST /v1/transcribe HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: audio/wav\r\n"
            b"Content-Length: 8589934592\r\n\r\nRIFF"
        )
        status_line = connection.recv(4096).split(b"\r\n", 1)[0]
    return int(status_line.split()[1]), time.perf_counter() - start


def measure_faults(server: ServerProcess, passes: int):
    corpus = malformed.malformed_wavs(malformed.wav(malformed.speech_like_pcm16(2.0)))
    statuses: collections.Counter[int] = collections.Counter()
    wrongly_decoded, latencies, rss = [], [], []
    with httpx.Client(base_url=server.url, timeout=120) as client:
        for _ in range(passes):
            for case in corpus:
                start = time.perf_counter()
                response = client.post(
                    "/v1/transcribe", content=case.data, headers={"Content-Type": "audio/wav"}
                )
                latencies.append(time.perf_counter() - start)
                statuses[response.status_code] += 1
                if case.refuse and response.status_code == 200:
                    wrongly_decoded.append(case.name)
            rss.append(server.rss_bytes())
        valid = client.post(
            "/v1/transcribe",
            content=speech_like_wav(3.0, 0),
            headers={"Content-Type": "audio/wav"},
        )
    return corpus, statuses, wrongly_decoded, latencies, rss, valid.status_code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_options(parser)
    parser.add_argument("--seconds", type=float, default=60.0, help="load duration")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients")
    parser.add_argument("--passes", type=int, default=3, help="passes over the malformed corpus")
    args = parse_args(parser)

    with model_to_serve(args) as model, run_server_process(model) as server:
        load, rss_start, rss_end = measure_load(server, args.seconds, args.concurrency)
        corpus, statuses, wrongly_decoded, latencies, rss, valid_status = measure_faults(
            server, args.passes
        )
        oversized_status, oversized_seconds = oversized_claim_seconds(server)
        after_oversized = httpx.post(
            f"{server.url}/v1/transcribe",
            content=speech_like_wav(3.0, 1),
            headers={"Content-Type": "audio/wav"},
            timeout=120,
        ).status_code

    load_growth = rss_end / rss_start - 1
    fault_growth = rss[-1] / rss[0] - 1
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    status_counts = ", ".join(f"{n} × {status}" for status, n in sorted(statuses.items()))
    refused = sum(case.refuse for case in corpus)
    verdict_load = "met" if not load.errors and load_growth <= MAX_RSS_GROWTH else "NOT met"
    verdict_faults = (
        "met"
        if server_errors == 0 and not wrongly_decoded and valid_status == after_oversized == 200
        else "NOT met"
    )
    if not args.markdown:
        print_plain(load, rss_start, rss_end, status_counts, latencies, rss, oversized_seconds)
        print(f"load: {verdict_load}; faults: {verdict_faults}")
        return

    command = ".venv/bin/python benchmarks/reliability.py --markdown"
    if (args.model, args.n_hidden, args.seconds, args.concurrency, args.passes) != (
        None, 1024, 60.0, 16, 3
    ):  # fmt: skip
        command += (
            f" --n-hidden {args.n_hidden} --seconds {args.seconds:g}"
            f" --concurrency {args.concurrency} --passes {args.passes}"
            + (f" --model {args.model}" if args.model else "")
        )
    intro = (
        f"One `deepspeech serve` process on 127.0.0.1 ({described_model(args)}, default "
        f"settings) under {args.seconds:g} s of closed-loop load from {args.concurrency} "
        f"concurrent clients ({'/'.join(f'{s:g}' for s in CLIP_SECONDS)} s WAVs, after "
        f"{WARMUP_SECONDS:g} s of warm-up), then the malformed-input corpus of "
        f"`tests/malformed.py` ({len(corpus)} WAVs, {refused} of which must be refused) sent "
        f"in {args.passes} pass{'es' * (args.passes != 1)}, then a request claiming an 8 GB body."
    )
    machine = (
        f", Python {platform.python_version()}, onnxruntime {version('onnxruntime-gpu')}, "
        f"uvicorn {version('uvicorn')}, httpx {version('httpx')}"
    )
    tables = [
        "| load | requests | errors | throughput | p50 latency | p99 latency | RSS start → end |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| {args.concurrency} clients, {load.seconds:.0f} s | {load.requests} | "
        f"{len(load.errors)} | {load.throughput:.2f} req/s | {load.percentile(50) * 1e3:.0f} ms "
        f"| {load.percentile(99) * 1e3:.0f} ms | {rss_start / MB:.0f} → {rss_end / MB:.0f} MB "
        f"({load_growth:+.1%}) |",
        "",
        "| faults | answers | 5xx | refused ones decoded | p99 answer | RSS pass 1 → last |",
        "|---|---|---:|---:|---:|---:|",
        f"| malformed corpus × {args.passes} | {status_counts} | {server_errors} | "
        f"{len(wrongly_decoded)} | {np.percentile(latencies, 99) * 1e3:.0f} ms | "
        f"{rss[0] / MB:.0f} → {rss[-1] / MB:.0f} MB ({fault_growth:+.1%}) |",
        f"| 8 GB Content-Length | {oversized_status} after {oversized_seconds * 1e3:.0f} ms "
        f"| {int(oversized_status >= 500)} | – | – | – |",
    ]
    summary = (
        f"Load: {len(load.errors)} errors, memory {load_growth:+.1%} over {load.seconds:.0f} s "
        f"(bar: 0 errors, growth ≤ {MAX_RSS_GROWTH:.0%}: {verdict_load}). Faults: "
        f"{server_errors} server errors, {len(wrongly_decoded)} refusable files decoded, "
        f"memory {fault_growth:+.1%} from the first pass to the last, valid requests after "
        f"them answered {valid_status} and {after_oversized} (bar: no 5xx, bounded memory, "
        f"still serving: {verdict_faults})."
    )
    print_result(tables, summary, head("Load and faults", intro, command, machine=machine))


def print_plain(
    load: LoadResult,
    rss_start: int,
    rss_end: int,
    status_counts: str,
    latencies: list[float],
    rss: list[int],
    oversized_seconds: float,
) -> None:
    print(
        f"load: {load.requests} requests in {load.seconds:.1f} s, {len(load.errors)} errors, "
        f"{load.throughput:.2f} req/s, p50 {load.percentile(50) * 1e3:.0f} ms, "
        f"p99 {load.percentile(99) * 1e3:.0f} ms, RSS {rss_start / MB:.0f} -> {rss_end / MB:.0f} MB"
    )
    print(
        f"faults: {status_counts}; p99 {np.percentile(latencies, 99) * 1e3:.0f} ms; RSS per pass "
        + ", ".join(f"{r / MB:.0f}" for r in rss)
        + f" MB; 8 GB claim answered in {oversized_seconds * 1e3:.0f} ms"
    )
    if load.errors:
        print("first load error:", load.errors[0])


if __name__ == "__main__":
    main()
