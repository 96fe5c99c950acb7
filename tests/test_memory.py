"""Training memory does not grow with the corpus: features stay on disk, a window at a time.

Before the feature cache, training held every utterance's context windows in memory, about
340 MB per audio hour; 10x the tiny corpus (0.07 h -> 0.7 h) would have grown the peak by
some 200 MB. The bound here is generous for noise, and still far below that.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from deepspeech.data.manifest import read_manifest, write_manifest

pytestmark = pytest.mark.slow

MAX_GROWTH_MB = 100

PEAK_RSS_OF_CHILD = (
    "import resource, subprocess, sys;"
    "subprocess.run(sys.argv[1:], check=True, capture_output=True);"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)"
)


def peak_training_rss_mb(manifest: Path, tmp: Path) -> int:
    cache = tmp / "cache"
    featurize = [sys.executable, "-m", "deepspeech", "data", "featurize", str(manifest)]
    subprocess.run([*featurize, "--feature-cache", str(cache)], check=True, capture_output=True)
    train = [sys.executable, "-m", "deepspeech", "train", "--train-files", str(manifest)]
    train += ["--feature-cache", str(cache), "--checkpoint-dir", str(tmp / "ckpt")]
    train += ["--tracking-uri", f"sqlite:///{tmp / 'mlflow.db'}", "--n-hidden", "16"]
    train += ["--feature-stride", "2", "--batch-size", "16", "--epochs", "1"]
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_OF_CHILD, *train], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return int(result.stdout.split()[-1])


def test_ten_times_the_audio_keeps_the_peak_rss(tiny_corpus: Path, tmp_path: Path) -> None:
    utterances = read_manifest(tiny_corpus / "train.csv")
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"  # absolute WAV paths
    write_manifest(small, utterances)
    write_manifest(large, utterances * 10)
    small_mb = peak_training_rss_mb(small, tmp_path / "small")
    large_mb = peak_training_rss_mb(large, tmp_path / "large")
    assert large_mb - small_mb < MAX_GROWTH_MB, (small_mb, large_mb)
