"""serving.stream: the DeepSpeech 0.9.3 stream API on the streaming graph, against offline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepspeech.audio import PCM16_SCALE, load_wav
from deepspeech.data.manifest import read_manifest
from deepspeech.errors import AudioFormatError, ModelLoadError
from deepspeech.runtime.session import Placement
from serving.inference import open_model
from serving.stream import SpeechModel

PIECES = (160, 399, 1234, 16000)  # samples per feed: 10 ms, odd sizes, 1 s


def pcm16(path: Path) -> np.ndarray:
    return np.round(load_wav(path) * PCM16_SCALE).astype(np.int16)


@pytest.fixture(scope="module")
def held_out_wavs(tiny_corpus: Path) -> list[Path]:
    return [u.wav_path for u in read_manifest(tiny_corpus / "test.csv")][:12]


def test_streamed_transcripts_equal_the_offline_ones(
    random_stream_onnx, held_out_wavs: list[Path]
) -> None:
    utterance_onnx, stream_onnx = random_stream_onnx
    offline = open_model(utterance_onnx, placement=Placement())
    model = SpeechModel(stream_onnx)
    texts = []
    for wav in held_out_wavs:
        expected = offline.transcribe_features([offline.features(load_wav(wav))])[0]
        audio = pcm16(wav)
        assert model.stt(audio) == expected
        for piece in PIECES:
            stream = model.create_stream()
            for i in range(0, len(audio), piece):
                stream.feed_audio_content(audio[i : i + piece])
                assert expected.startswith(stream.intermediate_decode())
            assert stream.finish_stream() == expected, (wav, piece)
        texts.append(expected)
    assert len(set(texts)) > 1 and all(len(t) > 5 for t in texts)  # not one trivial string


def test_partial_text_grows_while_audio_arrives(random_stream_onnx, held_out_wavs) -> None:
    model = SpeechModel(random_stream_onnx[1])
    audio = pcm16(held_out_wavs[0])
    stream = model.create_stream()
    stream.feed_audio_content(audio[: len(audio) // 2])
    partial = stream.intermediate_decode()
    assert partial and stream.duration_s == pytest.approx(len(audio) // 2 / 16000)
    stream.feed_audio_content(audio[len(audio) // 2 :])
    final = stream.finish_stream()
    assert len(final) > len(partial) and final.startswith(partial)


def test_stream_refuses_other_samples_and_use_after_finish(random_stream_onnx) -> None:
    stream = SpeechModel(random_stream_onnx[1]).create_stream()
    with pytest.raises(AudioFormatError, match="expected \\(n,\\) int16 samples at 16000 Hz"):
        stream.feed_audio_content(np.zeros(160, np.float32))
    with pytest.raises(AudioFormatError, match="got \\(2, 160\\) int16"):
        stream.feed_audio_content(np.zeros((2, 160), np.int16))
    stream.feed_audio_content(np.zeros(0, np.int16))
    assert stream.finish_stream() == ""
    with pytest.raises(RuntimeError, match="finished"):
        stream.feed_audio_content(np.zeros(160, np.int16))
    with pytest.raises(RuntimeError, match="finished"):
        stream.finish_stream()


def test_a_whole_utterance_graph_is_refused_with_the_fix(random_stream_onnx) -> None:
    with pytest.raises(ModelLoadError, match="export --streaming"):
        SpeechModel(random_stream_onnx[0])
    with pytest.raises(ModelLoadError, match="no such model file"):
        SpeechModel("missing.onnx")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deepspeech", *args], capture_output=True, text=True, check=False
    )


@pytest.mark.slow
def test_transcribe_stream_prints_the_offline_transcripts_and_partials(
    random_stream_onnx, held_out_wavs: list[Path], tmp_path: Path
) -> None:
    utterance_onnx, stream_onnx = random_stream_onnx
    files = [str(w) for w in held_out_wavs[:3]]
    offline = run_cli("transcribe", "--model", str(utterance_onnx), "--device", "cpu", *files)
    streamed = run_cli("transcribe", "--model", str(stream_onnx), "--stream", "--partials", *files)
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout == offline.stdout and streamed.stdout.count("\n") == 3
    finals = dict(line.split("\t") for line in streamed.stdout.splitlines())
    partials = [line.split("\t") for line in streamed.stderr.splitlines() if "\t" in line]
    assert {path for path, _ in partials} == set(files)
    assert all(finals[path].startswith(text) for path, text in partials)

    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    result = run_cli("transcribe", "--model", str(stream_onnx), "--stream", str(bad), files[0])
    assert result.returncode == 2
    assert result.stdout == offline.stdout.splitlines(keepends=True)[0]
    assert "bad.wav: cannot decode audio" in result.stderr and "Traceback" not in result.stderr
    utterance_graph = run_cli("transcribe", "--model", str(utterance_onnx), "--stream", files[0])
    assert utterance_graph.returncode == 2 and "export --streaming" in utterance_graph.stderr


def test_beam_search_with_an_lm_streams_to_the_offline_beam_text(
    random_stream_onnx, held_out_wavs: list[Path], tiny_corpus: Path, tmp_path: Path
) -> None:
    """flashlight's search stays open across chunks (decode_step per chunk): its final text
    equals the whole-utterance beam search with the same LM."""
    from deepspeech.decoding.decoders import DecoderConfig
    from deepspeech.decoding.lm import build_kneser_ney

    lm_path = tmp_path / "lm.arpa"
    sentences = [u.transcript for u in read_manifest(tiny_corpus / "train.csv")]
    build_kneser_ney(sentences, order=3).write_arpa(lm_path)
    config = DecoderConfig(decoder="beam", beam_width=16, lm_path=lm_path)
    offline = open_model(random_stream_onnx[0], placement=Placement(), decoder=config)
    model = SpeechModel(random_stream_onnx[1], decoder=config)
    texts = []
    for wav in held_out_wavs[:4]:
        audio = pcm16(wav)
        expected = offline.transcribe_features([offline.features(load_wav(wav))])[0]
        stream = model.create_stream()
        partials = []
        for i in range(0, len(audio), 1234):
            stream.feed_audio_content(audio[i : i + 1234])
            partials.append(stream.intermediate_decode())
        assert stream.finish_stream() == expected
        assert any(partials)
        texts.append(expected)
    assert any(texts)  # the beam with the LM said something, across chunks
