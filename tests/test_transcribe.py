"""`deepspeech transcribe` and the inference core it shares with the server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepspeech.audio import SAMPLE_RATE, write_wav
from deepspeech.data.manifest import read_manifest
from deepspeech.errors import AudioFormatError, AudioTooLongError, ModelLoadError
from deepspeech.training.report import calculate_report, make_sample
from serving.inference import open_model, read_audio
from serving.recordings import transcribe_files

pytestmark = pytest.mark.slow


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deepspeech", *args], capture_output=True, text=True, timeout=180
    )


@pytest.fixture(scope="module")
def wavs(tiny_corpus: Path) -> list[str]:
    return [str(u.wav_path) for u in read_manifest(tiny_corpus / "test.csv")]


def test_lines_in_order_like_the_library(random_onnx: Path, wavs: list[str]) -> None:
    result = run_cli("transcribe", "--model", str(random_onnx), *wavs[:3], wavs[0])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == [*wavs[:3], wavs[0]]
    model = open_model(random_onnx)
    for line, path in zip(lines, [*wavs[:3], wavs[0]], strict=True):
        (expected,) = model.transcribe_features([model.features(read_audio(path))])
        assert line == f"{path}\t{expected}" and expected


def test_bad_files_fail_one_line_each_and_the_rest_is_transcribed(
    random_onnx: Path, wavs: list[str], tmp_path: Path
) -> None:
    text_file = tmp_path / "notes.wav"
    text_file.write_text("not audio")
    missing = tmp_path / "missing.wav"
    result = run_cli(
        "transcribe", "--model", str(random_onnx), wavs[0], str(text_file), str(missing), wavs[1]
    )
    assert result.returncode == 2
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == [wavs[0], wavs[1]]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors[0].startswith(f"error: {text_file}: cannot decode audio")
    assert errors[1] == f"error: {missing}: no such file"
    assert errors[2] == "error: 2 of 4 files could not be transcribed"
    assert "Traceback" not in result.stderr


def test_json_lines(random_onnx: Path, wavs: list[str]) -> None:
    result = run_cli("transcribe", "--model", str(random_onnx), "--json", *wavs[:2])
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in records] == wavs[:2]
    assert all(r["text"] and r["duration_s"] > 0 for r in records)


def test_manifest_prints_corpus_wer_and_cer(random_onnx: Path, tiny_corpus: Path) -> None:
    manifest = tiny_corpus / "test.csv"
    result = run_cli("transcribe", "--model", str(random_onnx), "--manifest", str(manifest))
    assert result.returncode == 0, result.stderr
    model = open_model(random_onnx)
    utterances = read_manifest(manifest)
    results = transcribe_files(model, [u.wav_path for u in utterances])
    samples = [
        make_sample(r.path, u.transcript, r.text, 0.0)
        for u, r in zip(utterances, results, strict=True)
    ]
    report = calculate_report("test", samples, 0)
    last = result.stdout.splitlines()[-1]
    assert last.startswith(f"{manifest}: {len(utterances)} utterances")
    assert f"WER {report.wer:.2%}, CER {report.cer:.2%}" in last


def test_transcribe_does_not_import_tensorflow(random_onnx: Path, wavs: list[str]) -> None:
    code = (
        "import sys\n"
        "from deepspeech.cli import main\n"
        "try:\n"
        f"    main(['transcribe', '--model', {str(random_onnx)!r}, {wavs[0]!r}])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_batches_give_the_same_text_as_one_at_a_time(random_onnx: Path, wavs: list[str]) -> None:
    model = open_model(random_onnx)
    batched = [r.text for r in transcribe_files(model, wavs, batch_size=8)]
    alone = [r.text for r in transcribe_files(model, wavs, batch_size=1)]
    assert batched == alone and all(batched)


def test_model_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no such model file"):
        open_model(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match=r"garbage\.onnx"):
        open_model(garbage)
    with pytest.raises(ModelLoadError, match="models:/NAME/VERSION"):
        open_model("models:/only-a-name")


def test_read_audio_limits(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    write_wav(path, np.zeros(3 * SAMPLE_RATE, np.float32))
    assert len(read_audio(path, max_seconds=3)) == 3 * SAMPLE_RATE
    with pytest.raises(AudioTooLongError, match=r"3\.0 s of audio, longer than the 2 s limit"):
        read_audio(path, max_seconds=2)
    with pytest.raises(AudioFormatError, match="no such file"):
        read_audio(tmp_path / "missing.wav")


def test_beam_search_with_a_language_model(
    random_onnx: Path, tiny_corpus: Path, wavs: list[str], tmp_path: Path
) -> None:
    """transcribe and the inference core take the same decoder settings as evaluate."""
    from deepspeech.decoding.decoders import DecoderConfig
    from deepspeech.decoding.lm import build_arpa

    text = tmp_path / "train.txt"
    text.write_text("\n".join(u.transcript for u in read_manifest(tiny_corpus / "train.csv")))
    lm = tmp_path / "lm.arpa"
    build_arpa(text, lm, order=3)
    model = open_model(random_onnx, decoder=DecoderConfig(decoder="beam", lm_path=lm))
    assert model.describe()["decoder"]["lm"] == lm.name
    features = [model.features(read_audio(path)) for path in wavs[:3]]
    texts = model.transcribe_features(features)
    assert len(texts) == 3
    assert texts == [model.decoder(model.model.probabilities([f])[0]) for f in features]
    result = run_cli(
        "transcribe", "--model", str(random_onnx), "--decoder", "beam", "--lm", str(lm), *wavs[:3]
    )
    assert result.returncode == 0, result.stderr
    assert [line.split("\t", 1)[1] for line in result.stdout.splitlines()] == texts
    refused = run_cli("transcribe", "--model", str(random_onnx), "--lm", str(lm), wavs[0])
    assert refused.returncode == 2 and "needs the beam decoder" in refused.stderr
