"""POST /v1/transcribe's timed words, N-best, hot words, subtitles and long recordings, and the
WebSocket's `?words=true`, against real `deepspeech serve` processes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile
import srt
import websockets
import webvtt
from servers import ServerProcess, clean_server

from deepspeech.audio import PCM16_SCALE, SAMPLE_RATE, load_wav
from deepspeech.data.manifest import read_manifest
from deepspeech.vad import VadSettings
from serving.inference import open_model
from serving.recordings import transcribe_recording

pytestmark = pytest.mark.slow

MAX_AUDIO_SECONDS = 120


def wav_bytes(audio: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def clips(tiny_corpus: Path) -> list[np.ndarray]:
    return [load_wav(u.wav_path) for u in read_manifest(tiny_corpus / "test.csv")]


@pytest.fixture(scope="module")
def recording(clips: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Clips joined by a second of quiet noise: longer than one segment, shorter than the limit."""
    rng = np.random.default_rng(5)
    parts: list[np.ndarray] = []
    while sum(map(len, parts)) < 1.5 * VadSettings().max_segment_s * SAMPLE_RATE:
        for clip in clips:
            parts += [clip, (rng.normal(size=SAMPLE_RATE) * 1e-3).astype(np.float32)]
    path = tmp_path_factory.mktemp("recording") / "meeting.wav"
    soundfile.write(path, np.concatenate(parts), SAMPLE_RATE, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def greedy_server(random_onnx: Path) -> Iterator[ServerProcess]:
    with clean_server(
        random_onnx, "--max-audio-seconds", str(MAX_AUDIO_SECONDS), "--max-body-mb", "8"
    ) as process:
        yield process


@pytest.fixture(scope="module")
def beam_server(random_onnx: Path) -> Iterator[ServerProcess]:
    with clean_server(
        random_onnx, "--decoder", "beam", "--beam-width", "16", "--hot-word", "zzz:1"
    ) as process:
        yield process


def post(server: ServerProcess, body: bytes, **params: str) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=120) as client:
        return client.post(
            "/v1/transcribe", content=body, params=params, headers={"Content-Type": "audio/wav"}
        )


def test_words_and_confidence_on_request_only(
    greedy_server: ServerProcess, clips: list[np.ndarray], random_onnx: Path
) -> None:
    plain = post(greedy_server, wav_bytes(clips[0]))
    assert plain.status_code == 200 and set(plain.json()) == {
        "text", "duration_s", "inference_ms", "model"
    }  # fmt: skip
    timed = post(greedy_server, wav_bytes(clips[0]), words="true").json()
    expected = open_model(random_onnx).stt_with_metadata(clips[0]).best
    assert timed["text"] == plain.json()["text"] == expected.text
    assert timed["confidence"] == pytest.approx(expected.confidence, abs=1e-4)
    assert [w["word"] for w in timed["words"]] == [w.word for w in expected.words]
    for ours, theirs in zip(timed["words"], expected.words, strict=True):
        assert ours["start"] == pytest.approx(theirs.start_time, abs=1e-3)
        assert ours["end"] == pytest.approx(theirs.end_time, abs=1e-3)
    assert "segments" not in timed and "alternatives" not in timed


def test_subtitle_formats_answer_with_the_file(
    greedy_server: ServerProcess, clips: list[np.ndarray]
) -> None:
    body = wav_bytes(clips[1])
    text = post(greedy_server, body).json()["text"]
    as_srt = post(greedy_server, body, format="srt")
    assert as_srt.headers["content-type"].startswith("application/x-subrip")
    assert " ".join(c.content.replace("\n", " ") for c in srt.parse(as_srt.text)) == text
    as_vtt = post(greedy_server, body, format="vtt")
    assert as_vtt.headers["content-type"].startswith("text/vtt")
    assert as_vtt.text.startswith("WEBVTT") and webvtt.from_string(as_vtt.text)


def test_a_long_recording_gets_segments_on_its_own_clock(
    greedy_server: ServerProcess, recording: Path, random_onnx: Path
) -> None:
    answer = post(greedy_server, recording.read_bytes(), words="true")
    assert answer.status_code == 200, answer.text
    found = answer.json()
    expected = transcribe_recording(open_model(random_onnx), recording)
    assert found["text"] == expected.text
    assert [(s["start"], s["end"]) for s in found["segments"]] == [
        (round(s.start, 3), round(s.end, 3)) for s in expected.segments
    ]
    assert found["duration_s"] > VadSettings().max_segment_s and len(found["segments"]) >= 2
    starts = [w["start"] for w in found["words"]]
    assert starts == sorted(starts) and starts[-1] > VadSettings().max_segment_s / 2


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"num_results": "0"}, "num_results"),
        ({"num_results": "many"}, "num_results"),
        ({"num_results": "99"}, "num_results"),
        ({"format": "doc"}, "format"),
        ({"words": "maybe"}, "words"),
        ({"num_result": "2"}, "unknown query parameter 'num_result'"),
        ({"hot_words": "zed:3"}, "hot words need the beam decoder"),
    ],
)
def test_bad_query_parameters_are_422(
    greedy_server: ServerProcess, clips: list[np.ndarray], params: dict, message: str
) -> None:
    answer = post(greedy_server, wav_bytes(clips[0]), **params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_parameter" and message in answer.json()["detail"]


def test_n_best_and_hot_words_per_request(
    beam_server: ServerProcess, clips: list[np.ndarray]
) -> None:
    body = wav_bytes(clips[0])
    answer = post(beam_server, body, num_results="3").json()
    texts = [a["text"] for a in answer["alternatives"]]
    assert texts[0] == answer["text"] and len(set(texts)) == 3
    runner_up = texts[1].split()[0]
    boosted = post(beam_server, body, hot_words=f"{runner_up}:30").json()
    assert runner_up in boosted["text"].split()
    assert post(beam_server, body).json()["text"] == answer["text"]  # only that request
    for bad in ("z€d:3", "zed", "zed:1e9", "two words:3"):
        refused = post(beam_server, body, hot_words=bad)
        assert refused.status_code == 422 and "hot_words" in refused.json()["detail"], bad


@pytest.fixture(scope="module")
def stream_server(random_stream_onnx) -> Iterator[ServerProcess]:
    utterance_onnx, stream_onnx = random_stream_onnx
    with clean_server(utterance_onnx, "--stream-model", str(stream_onnx)) as process:
        yield process


async def _stream(url: str, pcm: np.ndarray) -> list[dict]:
    """Send the audio and EOS (stopping if the server closes), then read all it sends."""
    async with websockets.connect(url, max_size=None) as ws:
        data = pcm.tobytes()
        received = []
        try:
            for i in range(0, len(data), 3200):
                await ws.send(data[i : i + 3200])
            await ws.send("EOS")
        except websockets.ConnectionClosed:
            pass
        try:
            async for text in ws:
                received.append(json.loads(text))
        except websockets.ConnectionClosed:
            pass
        return received


def test_the_streams_final_message_carries_words_when_asked(
    stream_server: ServerProcess, clips: list[np.ndarray], random_stream_onnx
) -> None:
    pcm = np.round(clips[0] * PCM16_SCALE).astype(np.int16)
    url = stream_server.url.replace("http://", "ws://") + "/v1/stream"
    plain = asyncio.run(_stream(url, pcm))[-1]
    timed = asyncio.run(_stream(url + "?words=true", pcm))[-1]
    assert plain["final"] and "words" not in plain
    assert timed["final"] and timed["text"] == plain["text"].strip()
    assert [w["word"] for w in timed["words"]] == timed["text"].split()
    refused = asyncio.run(_stream(url + "?words=perhaps", pcm))
    assert refused[0]["error"] == "invalid_parameter"
