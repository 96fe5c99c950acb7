"""The LibriSpeech recipe end to end on a fixture: a LibriSpeech-layout tree (FLAC in
speaker/chapter folders, `.trans.txt`), then `data librispeech`, `data featurize`,
`train --config experiments/librispeech.yaml` with small overrides, and `export`, as a user
would type them (the recipe's relative paths resolve in the working folder)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import soundfile

from deepspeech.audio import SAMPLE_RATE, load_wav
from deepspeech.data.manifest import read_manifest

ROOT = Path(__file__).resolve().parent.parent
SUBSETS = ("train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "test-clean")

pytestmark = pytest.mark.slow


def make_librispeech_tree(corpus: Path, root: Path) -> Path:
    """Spread the tiny corpus' speech over the five subsets the recipe names, as FLAC."""
    utterances = [*read_manifest(corpus / "train.csv"), *read_manifest(corpus / "dev.csv")]
    shares = {name: utterances[i :: len(SUBSETS)] for i, name in enumerate(SUBSETS)}
    for subset, chosen in shares.items():
        for speaker in (0, 1):
            chapter = root / "LibriSpeech" / subset / f"{100 + speaker}" / "2000"
            chapter.mkdir(parents=True)
            lines = []
            for n, utterance in enumerate(chosen[speaker::2]):
                uid = f"{100 + speaker}-2000-{n:04d}"
                audio = load_wav(utterance.wav_path)
                soundfile.write(chapter / f"{uid}.flac", audio, SAMPLE_RATE, format="FLAC")
                lines.append(f"{uid} {utterance.transcript.upper()}")
            (chapter / f"{100 + speaker}-2000.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def deepspeech(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "deepspeech", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"{args[:2]}: {result.stderr[-3000:]}"
    return result


def test_librispeech_recipe_from_import_to_onnx(tiny_corpus: Path, tmp_path: Path) -> None:
    src = make_librispeech_tree(tiny_corpus, tmp_path / "download")
    work = tmp_path / "work"
    work.mkdir()
    deepspeech(work, "data", "librispeech", str(src), "runs/librispeech")
    manifests = ",".join(f"runs/librispeech/{s}.csv" for s in SUBSETS)
    featurized = deepspeech(
        work, "data", "featurize", manifests, "--feature-cache", "runs/librispeech/feature-cache"
    )
    assert featurized.stdout.count("MB per audio hour") == len(SUBSETS)
    trained = deepspeech(
        work,
        "train",
        "--config",
        str(ROOT / "experiments" / "librispeech.yaml"),
        "--n-hidden",
        "16",
        "--batch-size",
        "4",
        "--epochs",
        "1",
        "--devices",
        "1",
        "--feature-stride",
        "2",
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
    )
    assert "test WER" in trained.stdout
    assert "featurizing" not in trained.stderr  # the cache built ahead was reused
    checkpoints = work / "runs" / "librispeech" / "checkpoints"
    assert (checkpoints / "run.json").is_file()
    exported = deepspeech(
        work,
        "export",
        "--checkpoint-dir",
        str(checkpoints),
        "--output",
        "runs/librispeech/model.onnx",
    )
    assert (work / "runs" / "librispeech" / "model.onnx").stat().st_size > 0, exported.stdout
