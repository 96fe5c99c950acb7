"""Server throughput and latency, with and without micro-batching, on a real server process.

Run: .venv/bin/python benchmarks/serving.py [--model MODEL.onnx | --n-hidden 1024]
     [--requests 48] [--seconds 4] [--concurrency 1,8,16] [--markdown]

Starts `deepspeech serve` on 127.0.0.1 twice, with `--max-batch 1` (every request its own
onnxruntime call) and `--max-batch 8`, and sends a bounded number of WAV uploads at each
concurrency from asyncio clients in this process. Throughput counts completed requests per
second; latency is per request, upload to answer. The client shares the machine's cores with
the server, as a load balancer or a co-located caller would.
"""

from __future__ import annotations

import argparse
import platform
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import httpx
from inputs import add_model_options, described_model, model_to_serve, speech_like_wav
from section import head, parse_args, print_result

# This script is benchmarks/serving.py: while its folder is on the path, `import serving`
# imports it instead of the server package. Its helpers are imported; put the tests' folder
# (load generator, server process harness) in its place.
sys.path[0] = str(Path(__file__).resolve().parent.parent / "tests")
from loadgen import LoadResult, batch_totals, generate_load  # noqa: E402
from servers import run_server_process  # noqa: E402

TARGET_SPEEDUP = 2.0  # throughput with batching over without, at concurrency 8
WARMUP_REQUESTS = 4


@dataclass(frozen=True)
class Measurement:
    max_batch: int
    run: LoadResult
    mean_batch: float


def load(url: str, wavs: list[bytes], concurrency: int, requests: int, max_batch: int):
    """Send `requests` uploads from `concurrency` clients; each waits for its answer."""
    with httpx.Client(base_url=url, timeout=60) as client:
        batches_before, utterances_before = batch_totals(client)
        run = generate_load(url, wavs, concurrency, requests=requests)
        batches_after, utterances_after = batch_totals(client)
    if run.errors:
        raise RuntimeError(f"{len(run.errors)} requests failed, e.g. {run.errors[0]}")
    mean_batch = (utterances_after - utterances_before) / max(batches_after - batches_before, 1)
    return Measurement(max_batch, run, mean_batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_options(parser)
    parser.add_argument("--requests", type=int, default=48, help="requests per measurement")
    parser.add_argument("--seconds", type=float, default=4.0, help="audio per request")
    parser.add_argument(
        "--concurrency", default="1,8,16", help="concurrent clients, comma-separated"
    )
    parser.add_argument("--batch-wait-ms", type=float, default=5.0, help="server batch window")
    parser.add_argument(
        "--threads", type=int, default=1, help="server's onnxruntime threads (0 = all CPUs)"
    )
    args = parse_args(parser)
    levels = [int(c) for c in args.concurrency.split(",")]
    wavs = [speech_like_wav(args.seconds, seed) for seed in range(8)]

    with model_to_serve(args) as model:
        results: list[Measurement] = []
        for max_batch in (1, 8):
            options = (
                *("--max-batch", str(max_batch), "--batch-wait-ms", str(args.batch_wait_ms)),
                *("--threads", str(args.threads)),
            )
            with run_server_process(model, *options) as server:
                load(server.url, wavs, 2, WARMUP_REQUESTS, max_batch)
                for concurrency in levels:
                    measurement = load(server.url, wavs, concurrency, args.requests, max_batch)
                    results.append(measurement)
                    if not args.markdown:
                        print(
                            f"max-batch {max_batch:2d}, concurrency {concurrency:2d}: "
                            f"{measurement.run.throughput:6.2f} req/s, "
                            f"p50 {measurement.run.percentile(50) * 1e3:7.0f} ms, "
                            f"p99 {measurement.run.percentile(99) * 1e3:7.0f} ms, "
                            f"mean batch {measurement.mean_batch:.1f}"
                        )

    by_key = {(m.max_batch, m.run.concurrency): m for m in results}
    speedups = {
        c: by_key[(8, c)].run.throughput / by_key[(1, c)].run.throughput
        for c in levels
        if (8, c) in by_key and (1, c) in by_key
    }
    at_8 = speedups.get(8)
    verdict = "n/a" if at_8 is None else ("met" if at_8 >= TARGET_SPEEDUP else "NOT met")
    if not args.markdown:
        for concurrency, ratio in speedups.items():
            print(f"batching speed-up at concurrency {concurrency}: {ratio:.2f}×")
        print(f"target ≥ {TARGET_SPEEDUP:g}× at concurrency 8: {verdict}")
        return

    command = ".venv/bin/python benchmarks/serving.py --markdown"
    defaults = (None, 1024, 48, 4.0, "1,8,16", 5.0, 1)
    given = (args.model, args.n_hidden, args.requests, args.seconds, args.concurrency,
             args.batch_wait_ms, args.threads)  # fmt: skip
    if given != defaults:
        command += (
            f" --n-hidden {args.n_hidden} --requests {args.requests} --seconds {args.seconds:g}"
            f" --concurrency {args.concurrency} --batch-wait-ms {args.batch_wait_ms:g}"
            f" --threads {args.threads}"
        )
        if args.model:
            command += f" --model {args.model}"
    intro = (
        f"`deepspeech serve` on 127.0.0.1 ({described_model(args)}, stride 1 features) answering "
        f"{args.requests} uploads of {args.seconds:g} s WAVs per row from N concurrent clients "
        "that each wait for their answer;\nwithout micro-batching (`--max-batch 1`) and with "
        f"it (`--max-batch 8`, `--batch-wait-ms {args.batch_wait_ms:g}`), onnxruntime threads "
        f"{args.threads or 'all usable CPUs'}. Client and server "
        "share the machine's cores."
    )
    machine = (
        f", Python {platform.python_version()}, onnxruntime {version('onnxruntime-gpu')}, "
        f"fastapi {version('fastapi')}, uvicorn {version('uvicorn')}"
    )
    table = [
        "| max batch | concurrency | throughput | p50 latency | p99 latency | mean batch |",
        "|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {m.max_batch} | {m.run.concurrency} | {m.run.throughput:.2f} req/s | "
            f"{m.run.percentile(50) * 1e3:.0f} ms | {m.run.percentile(99) * 1e3:.0f} ms | "
            f"{m.mean_batch:.1f} |"
            for m in results
        ),
    ]
    ratios = ", ".join(f"{ratio:.2f}× at concurrency {c}" for c, ratio in speedups.items())
    summary = (
        f"Micro-batching multiplies throughput by {ratios} "
        f"(target ≥ {TARGET_SPEEDUP:g}× at 8: {verdict})."
    )
    print_result(table, summary, head("Serving", intro, command, machine=machine))


if __name__ == "__main__":
    main()
