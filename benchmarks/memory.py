"""Peak training RSS against corpus size: 10 %, 50 % and all of a corpus; projected to 960 h.

Run: .venv/bin/python benchmarks/memory.py [--large runs/sample-corpus] [--markdown]

Each size is featurized into a fresh cache first (`deepspeech data featurize`), then trained
for one epoch (n_hidden 64, stride 2, batch 32: the settings the pre-cache measurement used)
in a child process whose peak resident set size is read back with `getrusage`. The smaller
sets are the first 10 % and 50 % of the large one's training manifest: they differ only in size.
What grows with a corpus is per-utterance bookkeeping (manifest entries, frame counts); the
features themselves are read a window (~30 min of audio) at a time, with the next window read
ahead. The 0.5 h set fills barely one window, so its peak lacks the read-ahead window that any
larger corpus pays once; the 960 h figure therefore extends the growth per utterance measured
between half and all of the large set (both well past a window) to LibriSpeech's 281,241
training utterances.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from inputs import required_file
from section import head, parse_args, print_result

LIBRISPEECH_HOURS = 960
LIBRISPEECH_UTTERANCES = 281_241  # train-clean-100 + train-clean-360 + train-other-500
# The caches, checkpoints and MLflow store of the runs (deleted after), under the project's runs/.
WORK_ROOT = Path(__file__).resolve().parent.parent / "runs"
TRAIN = ["--n-hidden", "64", "--feature-stride", "2", "--batch-size", "32", "--epochs", "1"]


def peak_rss_mb(command: list[str], temporary: Path) -> float:
    """Run `command` in a child that reports the peak RSS of its own child (the training);
    their temporary files go to `temporary`."""
    probe = (
        "import resource, subprocess, sys;"
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL,"
        " stderr=subprocess.DEVNULL);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    environment = {**os.environ, "TMPDIR": str(temporary)}  # nothing written outside the project
    output = subprocess.run(
        [sys.executable, "-c", probe, *command],
        check=True,
        capture_output=True,
        text=True,
        env=environment,
    ).stdout
    return int(output.split()[-1]) / 1024  # ru_maxrss is in KiB on Linux


def measure(manifest: Path, work: Path) -> tuple[float, float, int]:
    """(audio hours, peak training RSS in MB, utterances) for one training manifest."""
    from deepspeech.data.cache import open_cached_set, read_manifests
    from deepspeech.text import Alphabet

    alphabet = Alphabet.default()
    cache = work / "cache"
    cached = open_cached_set(read_manifests(manifest, alphabet), cache, 26, alphabet)
    command = [sys.executable, "-m", "deepspeech", "train", "--train-files", str(manifest)]
    command += ["--feature-cache", str(cache), "--checkpoint-dir", str(work / "ckpt")]
    command += ["--tracking-uri", f"sqlite:///{work / 'mlflow.db'}", *TRAIN]
    (work / "tmp").mkdir(parents=True, exist_ok=True)
    return cached.audio_hours, peak_rss_mb(command, work / "tmp"), len(cached)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=Path, default=Path("runs/sample-corpus"))
    args = parse_args(parser)
    from deepspeech.data.manifest import read_manifest, write_manifest

    large_manifest = required_file(args.large / "train.csv", "`deepspeech data sample`")
    WORK_ROOT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-memory-", dir=WORK_ROOT) as tmp:
        work = Path(tmp)
        utterances = read_manifest(large_manifest)
        parts = {}
        for name, share in (("small", 10), ("half", 2)):
            parts[name] = args.large / f".bench-memory-{name}-{os.getpid()}.csv"
            write_manifest(parts[name], utterances[: len(utterances) // share])
        try:
            small = measure(parts["small"], work / "small")
            half = measure(parts["half"], work / "half")
            large = measure(large_manifest, work / "large")
        finally:
            for manifest in parts.values():
                manifest.unlink()

    growth_per_hour = (large[1] - small[1]) / (large[0] - small[0])
    growth_per_utterance = max(large[1] - half[1], 0.0) / (large[2] - half[2])
    projected = large[1] + growth_per_utterance * (LIBRISPEECH_UTTERANCES - large[2])
    ratio = large[1] / small[1]
    table = [
        "| training audio | peak RSS |",
        "|---:|---:|",
        f"| {small[0]:.2f} h ({small[2]:,} utterances) | {small[1]:,.0f} MB |",
        f"| {half[0]:.2f} h ({half[2]:,} utterances) | {half[1]:,.0f} MB |",
        f"| {large[0]:.2f} h ({large[2]:,} utterances) | {large[1]:,.0f} MB |",
        f"| {LIBRISPEECH_HOURS} h ({LIBRISPEECH_UTTERANCES:,} utterances, projected) "
        f"| {projected:,.0f} MB |",
    ]
    summary = (
        f"{large[0] / small[0]:.1f}× the audio took {ratio:.2f}× the peak RSS "
        f"({'within' if ratio <= 1.2 else 'over'} the 1.2× target): {growth_per_hour:,.1f} MB "
        f"more per audio hour overall, {growth_per_utterance * 1024:,.1f} KB per utterance "
        f"between {half[0]:.1f} h and {large[0]:.1f} h, so "
        f"LibriSpeech's {LIBRISPEECH_UTTERANCES:,} utterances ({LIBRISPEECH_HOURS} h) project to "
        f"{projected / 1024:.2f} GB per worker "
        f"({'within' if projected <= 4096 else 'over'} the 4 GB target)."
    )
    intro = (
        "Peak RSS of `deepspeech train` (n_hidden 64, stride 2, batch 32, one epoch) reading "
        "a prebuilt feature cache; the smaller sets are the first 10 % and 50 % of the large one."
    )
    command = ".venv/bin/python benchmarks/memory.py --markdown"
    print_result(table, summary, head("Training memory", intro, command) if args.markdown else None)


if __name__ == "__main__":
    main()
