"""Peak RSS of the export at n_hidden 256, 1024 and 2048: converting to ONNX plus the parity check.

Run: .venv/bin/python benchmarks/export_memory.py [--widths 256,1024,2048] [--direct]
     [--limit-gb 10] [--markdown]

Each width runs in a child process: a bidirectional BiRNN with random weights and biases is
built, then goes through the export stage's convert-and-check step
(`deepspeech.export.pipeline._convert_and_check`): `convert_to_onnx`, metadata, the graph
loaded by the runtime and the parity check against Keras on three speech-like utterances
(1, 3 and 6 s). The child's peak RSS (VmHWM) is read at the end, and its RSS once the model
is built (TensorFlow and the Keras weights: what any export holds before converting). The
parent polls the child's RSS every 0.2 s and kills it past `--limit-gb`, so a width that does
not fit cannot take the machine down. With `--direct`, each width also runs tf2onnx on the
full-width model, as the export did before `deepspeech.export.stand_in`, for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from section import head, parse_args, print_result

# The RSS watcher and the random model are the tests' (test_export_memory runs this script's
# child too); appended, so that this folder's modules still come first.
sys.path.append(str(Path(__file__).resolve().parent.parent / "tests"))
import random_models
from rss import PeakMemory, status_bytes

TARGET_WIDTH = 2048  # the LibriSpeech recipe's n_hidden
TARGET_PEAK_GB = 4.0
UTTERANCE_SECONDS = (1.0, 3.0, 6.0)
POLL_SECONDS = 0.2
STAND_IN, DIRECT = "stand-in (export)", "tf2onnx on the full model (before)"


def random_model(n_hidden: int):
    """A bidirectional BiRNN with random weights, random biases and MFCC-like statistics
    (zero biases would keep padding at zero and make the parity check weaker)."""
    from deepspeech.model.config import ModelConfig
    from deepspeech.text import Alphabet

    return random_models.random_model(
        ModelConfig(Alphabet.default().num_classes, n_hidden=n_hidden), seed=0
    )


def direct_convert(model, opset: int):
    """The export's conversion before the stand-in: tf2onnx on the full-width model."""
    from deepspeech.export.convert import (
        probabilities_function,
        tf2onnx_convert,
        use_sequence_lengths,
    )

    proto = tf2onnx_convert(probabilities_function(model), opset)
    return proto, use_sequence_lengths(proto)


def child(n_hidden: int, path: str) -> None:
    """One measurement (in its own process): prints a JSON line of its figures."""
    import numpy as np
    from inputs import speech_like_wav

    import deepspeech.export.pipeline as pipeline
    from deepspeech.audio import FeatureConfig, audio_to_features, load_wav
    from deepspeech.runtime.graph import ModelMetadata
    from deepspeech.text import Alphabet

    if path == DIRECT:
        pipeline.convert_to_onnx = direct_convert
    features = [
        audio_to_features(load_wav(speech_like_wav(seconds, seed)))
        for seed, seconds in enumerate(UTTERANCE_SECONDS)
    ]
    model = random_model(n_hidden)
    weights = sum(int(np.prod(v.shape)) * 4 for v in model.weights)
    metadata = ModelMetadata(Alphabet.default(), FeatureConfig(), n_hidden=n_hidden)
    before = status_bytes("self", "VmRSS")
    start = time.monotonic()
    proto, layout, max_diff = pipeline._convert_and_check(model, metadata, features, "speech-like")
    print(
        json.dumps(
            {
                "weights": weights,
                "onnx_bytes": proto.ByteSize(),
                "before": before,
                "peak": status_bytes("self", "VmHWM"),
                "seconds": time.monotonic() - start,
                "max_diff": max_diff,
                "layout": layout,
            }
        )
    )


def measure(n_hidden: int, path: str, limit: int) -> dict:
    """Run `child` for one width, killed past `limit` bytes of RSS: its figures, or
    {"killed": the RSS seen}."""
    command = [sys.executable, __file__, "--child", str(n_hidden), "--path", path]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    with PeakMemory(process.pid, limit=limit, interval=POLL_SECONDS) as memory:
        output, _ = process.communicate()
    if memory.killed:
        return {"killed": memory.peak}
    if process.returncode != 0:
        raise SystemExit(f"n_hidden {n_hidden} ({path}) failed with exit code {process.returncode}")
    return json.loads(output.strip().splitlines()[-1])


def row(n_hidden: int, path: str, r: dict, limit_gb: float) -> str:
    if "killed" in r:
        return (
            f"| {n_hidden} | {path} | | | | killed past {limit_gb:g} GB "
            f"(polled {r['killed'] / 1e9:.1f} GB) | | | |"
        )
    growth = r["peak"] - r["before"]
    return (
        f"| {n_hidden} | {path} | {r['weights'] / 1e6:.0f} MB | {r['before'] / 1e9:.2f} GB | "
        f"{r['peak'] / 1e9:.2f} GB | {growth / 1e9:.2f} GB | {growth / r['weights']:.1f}× | "
        f"{r['max_diff']:.1e} | {r['seconds']:.0f} s |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="256,1024,2048", help="n_hidden values, commas")
    parser.add_argument("--direct", action="store_true", help="also tf2onnx on the full model")
    parser.add_argument("--limit-gb", type=float, default=10.0, help="kill a child past this RSS")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--path", default=STAND_IN, help=argparse.SUPPRESS)
    args = parse_args(parser)
    if args.child:
        child(args.child, args.path)
        return

    widths = [int(w) for w in args.widths.split(",")]
    paths = [STAND_IN, DIRECT] if args.direct else [STAND_IN]
    limit = int(args.limit_gb * 1e9)
    results = {(w, p): measure(w, p, limit) for w in widths for p in paths}
    table = [
        "| n_hidden | conversion | weights | RSS, model built | peak RSS | peak − built "
        "| ÷ weights | parity max diff | time |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        *(row(w, p, results[w, p], args.limit_gb) for w in widths for p in paths),
    ]
    target = results.get((TARGET_WIDTH, STAND_IN))
    if target is None:
        summary = f"n_hidden {TARGET_WIDTH} not measured in this run (--widths)."
    elif "killed" in target:
        summary = f"n_hidden {TARGET_WIDTH} did not fit under {args.limit_gb:g} GB: NOT met."
    else:
        peak = target["peak"] / 1e9
        verdict = "met" if peak <= TARGET_PEAK_GB else "NOT met"
        summary = (
            f"Exporting n_hidden {TARGET_WIDTH} peaks at {peak:.2f} GB RSS (target ≤ "
            f"{TARGET_PEAK_GB:g} GB: {verdict}), {target['peak'] / target['weights']:.1f}× its "
            f"{target['weights'] / 1e6:.0f} MB of weights; {target['before'] / 1e9:.2f} GB of it "
            "is held before the export starts (TensorFlow, the Keras model). Parity with Keras: "
            f"{target['max_diff']:.1e} (limit 1e-3)."
        )
    command = ".venv/bin/python benchmarks/export_memory.py --markdown"
    if args.widths != "256,1024,2048":
        command += f" --widths {args.widths}"
    if args.direct:
        command += " --direct"
    intro = (
        "Peak resident memory of the export's convert-and-check step "
        "(`deepspeech.export.pipeline`: `convert_to_onnx`, metadata, the graph loaded by the "
        "runtime, parity against Keras on 1, 3 and 6 s of speech-like audio), for a "
        "bidirectional BiRNN with random weights, each width in its own process. tf2onnx "
        "converts a narrow stand-in of the model, whose graph then gets the real weights "
        '(`deepspeech.export.stand_in`). "RSS, model built" is TensorFlow plus the Keras '
        'weights, before the export starts; "÷ weights" is the export\'s own growth over the '
        "weights' bytes."
    )
    import onnxruntime

    machine = (
        f", Python {platform.python_version()}, tensorflow {version('tensorflow')}, "
        f"tf2onnx {version('tf2onnx')}, onnxruntime {onnxruntime.__version__}"
    )
    details = f"- Children killed past {args.limit_gb:g} GB RSS (polled every {POLL_SECONDS} s)"
    lines = head("Export memory", intro, command, details, machine=machine)
    print_result(table, summary, lines if args.markdown else None)


if __name__ == "__main__":
    main()
