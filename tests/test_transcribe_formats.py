"""`deepspeech transcribe --format text|json|srt|vtt`, N-best, hot words, and recordings longer
than one segment (cut at pauses, times mapped back onto the recording)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import srt
import webvtt

from deepspeech.audio import SAMPLE_RATE, load_wav, write_wav
from deepspeech.data.manifest import read_manifest
from deepspeech.vad import VadSettings
from serving.inference import open_model
from serving.recordings import transcribe_files, transcribe_recording

pytestmark = pytest.mark.slow

PAUSE_SECONDS = 1.0


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deepspeech", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def wavs(tiny_corpus: Path) -> list[str]:
    return [str(u.wav_path) for u in read_manifest(tiny_corpus / "test.csv")]


@pytest.fixture(scope="module")
def recording(wavs: list[str], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """Clips joined by a second of quiet noise, longer than one segment: (path, clip starts)."""
    rng = np.random.default_rng(3)
    parts, starts, at = [], [], 0.0
    while at < 1.6 * VadSettings().max_segment_s:
        for wav in wavs:
            clip = load_wav(wav)
            pause = (rng.normal(size=int(PAUSE_SECONDS * SAMPLE_RATE)) * 1e-3).astype(np.float32)
            starts.append(at)
            parts += [clip, pause]
            at += (len(clip) + len(pause)) / SAMPLE_RATE
    path = tmp_path_factory.mktemp("recording") / "meeting.wav"
    write_wav(path, np.concatenate(parts))
    return path, starts


def test_json_has_timed_words_and_confidence(random_onnx: Path, wavs: list[str]) -> None:
    result = run_cli("transcribe", "--model", str(random_onnx), "--format", "json", wavs[0])
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["path"] == wavs[0] and 0 <= record["confidence"] <= 1
    assert [w["word"] for w in record["words"]] == record["text"].split()
    starts = [w["start"] for w in record["words"]]
    assert starts == sorted(starts) and all(w["end"] > w["start"] for w in record["words"])
    assert "segments" not in record  # a clip is one utterance
    # --json is --format json
    same = run_cli("transcribe", "--model", str(random_onnx), "--json", wavs[0])
    assert json.loads(same.stdout) == record


def test_subtitles_on_stdout_or_one_file_each(
    random_onnx: Path, wavs: list[str], tmp_path: Path
) -> None:
    result = run_cli("transcribe", "--model", str(random_onnx), "--format", "srt", wavs[0])
    assert result.returncode == 0, result.stderr
    cues = list(srt.parse(result.stdout))
    spoken = open_model(random_onnx).stt(load_wav(wavs[0]))
    assert " ".join(c.content.replace("\n", " ") for c in cues) == spoken
    out = tmp_path / "subs"
    result = run_cli(
        "transcribe", "--model", str(random_onnx), "--format", "vtt", "--output-dir", str(out),
        *wavs[:2],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for wav in wavs[:2]:
        written = out / f"{Path(wav).stem}.vtt"
        assert written.read_text().startswith("WEBVTT") and webvtt.from_string(written.read_text())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "doc"], "not one of text, json, srt, vtt"),
        (["--format", "srt"], "for several give --output-dir"),
        (["--json", "--format", "vtt"], "disagree"),
        (["--num-results", "3"], "--num-results goes with --format json"),
        (["--hot-word", "zed:5"], "hot words need the beam decoder"),
        (["--decoder", "beam", "--hot-word", "zed"], "WORD:BOOST"),
        (["--decoder", "beam", "--hot-word", "z€d:4"], "not in the model's alphabet"),
    ],
)
def test_bad_output_and_hot_word_options_are_one_line_errors(
    random_onnx: Path, wavs: list[str], args: list[str], message: str
) -> None:
    result = run_cli("transcribe", "--model", str(random_onnx), *args, *wavs[:2])
    assert result.returncode == 2, result.stdout
    assert message in result.stderr and "Traceback" not in result.stderr


def test_beam_gives_n_best_and_hot_words_from_the_command_line(
    random_onnx: Path, wavs: list[str]
) -> None:
    base = ["transcribe", "--model", str(random_onnx), "--decoder", "beam", "--format", "json"]
    result = run_cli(*base, "--num-results", "3", wavs[0])
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    texts = [a["text"] for a in record["alternatives"]]
    assert texts[0] == record["text"] and len(set(texts)) == 3
    runner_up = texts[1].split()[0]
    boosted = json.loads(run_cli(*base, "--hot-word", f"{runner_up}:30", wavs[0]).stdout)
    assert runner_up in boosted["text"].split()


def test_a_recording_is_cut_at_pauses_and_timed_on_the_recording(
    random_onnx: Path, recording: tuple[Path, list], wavs: list[str]
) -> None:
    path, starts = recording
    model = open_model(random_onnx)
    found = transcribe_recording(model, path)
    assert found.cut and len(found.segments) >= 2
    assert found.duration_s > VadSettings().max_segment_s
    # Each segment begins at a clip (within the detector's padding and frame).
    tolerance = VadSettings().padding_ms / 1000 + 0.06
    for segment in found.segments:
        assert min(abs(segment.start - s) for s in starts) <= tolerance
        for word in segment.metadata.best.words:
            assert segment.start <= word.start_time <= word.end_time <= segment.end + 0.05
    ends = [s.end for s in found.segments]
    assert all(a <= b.start for a, b in zip(ends, found.segments[1:], strict=False))
    # transcribe_files sends a long file down the same path, in order with clips.
    results = list(transcribe_files(model, [wavs[0], str(path), wavs[1]]))
    assert [r.cut for r in results] == [False, True, False]
    assert results[1].text == found.text


def test_recording_json_carries_segments_and_a_progress_bar(
    random_onnx: Path, recording: tuple[Path, list]
) -> None:
    path, _ = recording
    result = run_cli("transcribe", "--model", str(random_onnx), "--format", "json", str(path))
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert len(record["segments"]) >= 2 and "s of audio" in result.stderr
    joined = " ".join(s["text"] for s in record["segments"] if s["text"])
    assert joined == record["text"]
