"""serving.stream: the DeepSpeech 0.9.3 stream API on the streaming graph, against offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepspeech.audio import PCM16_SCALE, load_wav
from deepspeech.data.manifest import read_manifest
from deepspeech.errors import AudioFormatError, ModelLoadError
from serving.inference import open_model
from serving.stream import SpeechModel

PIECES = (160, 399, 1234, 16000)  # samples per feed: 10 ms, odd sizes, 1 s


def pcm16(path: Path) -> np.ndarray:
    return np.round(load_wav(path) * PCM16_SCALE).astype(np.int16)


@pytest.fixture(scope="module")
def test_wavs(tiny_corpus: Path) -> list[Path]:
    return [u.wav_path for u in read_manifest(tiny_corpus / "test.csv")][:12]


def test_streamed_transcripts_equal_the_offline_ones(
    random_stream_onnx, test_wavs: list[Path]
) -> None:
    utterance_onnx, stream_onnx = random_stream_onnx
    offline = open_model(utterance_onnx, device="cpu")
    model = SpeechModel(stream_onnx)
    texts = []
    for wav in test_wavs:
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


def test_partial_text_grows_while_audio_arrives(random_stream_onnx, test_wavs) -> None:
    model = SpeechModel(random_stream_onnx[1])
    audio = pcm16(test_wavs[0])
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
