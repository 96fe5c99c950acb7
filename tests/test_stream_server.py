"""WebSocket /v1/stream (serving/stream_server.py) on a real `deepspeech serve` on 127.0.0.1:
the protocol, and every bad input answered with its error and close code, never a crash."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import websockets
from servers import ServerProcess, clean_server, free_port

from deepspeech.audio import PCM16_SCALE, load_wav
from deepspeech.data.manifest import read_manifest
from serving.stream import SpeechModel

LIMITS = (
    "--max-streams",
    "2",
    "--max-message-kb",
    "8",
    "--max-stream-seconds",
    "6",
    "--stream-idle-seconds",
    "2",
)
CHUNK_BYTES = 3200  # 100 ms of 16 kHz PCM16

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pcm(tiny_corpus: Path) -> np.ndarray:
    """The first test utterance as int16 samples."""
    wav = read_manifest(tiny_corpus / "test.csv")[0].wav_path
    return np.round(load_wav(wav) * PCM16_SCALE).astype(np.int16)


@pytest.fixture(scope="module")
def server(random_stream_onnx) -> Iterator[ServerProcess]:
    utterance_onnx, stream_onnx = random_stream_onnx
    with clean_server(
        utterance_onnx, "--device", "cpu", "--stream-model", str(stream_onnx), *LIMITS
    ) as process:
        yield process


def stream_url(server: ServerProcess, query: str = "") -> str:
    return server.url.replace("http://", "ws://") + "/v1/stream" + query


async def _talk(url: str, messages: Sequence[bytes | str]) -> tuple[list[dict], int | None]:
    """Send the messages (stopping if the server closes), then read all it sends until close."""
    async with websockets.connect(url, max_size=None) as ws:
        try:
            for message in messages:
                await ws.send(message)
        except websockets.ConnectionClosed:
            pass
        received = []
        try:
            async for text in ws:
                received.append(json.loads(text))
        except websockets.ConnectionClosed:
            pass
        return received, ws.close_code


def talk(url: str, messages: Sequence[bytes | str]) -> tuple[list[dict], int | None]:
    return asyncio.run(_talk(url, messages))


def chunks(audio: np.ndarray, size: int = CHUNK_BYTES) -> list[bytes]:
    data = audio.tobytes()
    return [data[i : i + size] for i in range(0, len(data), size)]


def metrics(server: ServerProcess) -> str:
    with urllib.request.urlopen(f"{server.url}/metrics") as response:
        return response.read().decode()


def wait_for_metric(server: ServerProcess, line: str) -> None:
    """Poll /metrics until `line` is there: the server notices an ended stream a moment later."""
    for _ in range(200):
        if line in metrics(server).splitlines():
            return
        time.sleep(0.05)
    raise AssertionError(f"no {line!r} in /metrics:\n{metrics(server)}")


def test_final_text_equals_the_stream_api_and_partials_lead_to_it(
    server: ServerProcess, random_stream_onnx, pcm: np.ndarray
) -> None:
    expected = SpeechModel(random_stream_onnx[1]).stt(pcm)
    received, code = talk(stream_url(server, "?sample_rate=16000"), [*chunks(pcm), "EOS"])
    *partials, final = received
    assert code == 1000
    assert final == {"text": expected, "final": True, "duration_s": round(len(pcm) / 16000, 3)}
    assert partials and all(p["final"] is False for p in partials)
    assert all(expected.startswith(p["text"]) for p in partials)
    assert len({p["text"] for p in partials}) == len(partials)  # sent only when it changed
    text = metrics(server)
    assert 'deepspeech_streams_total{outcome="final"}' in text
    assert "deepspeech_stream_final_seconds_count" in text


def test_samples_split_across_messages_are_joined(server: ServerProcess, pcm: np.ndarray) -> None:
    """'Any length': odd byte counts per message give the same text as whole samples."""
    even, _ = talk(stream_url(server), [*chunks(pcm), "EOS"])
    odd, code = talk(stream_url(server), [*chunks(pcm, 333), "EOS"])
    assert code == 1000 and odd[-1] == even[-1]


@pytest.mark.parametrize(
    ("query", "messages", "error", "close_code"),
    [
        ("?sample_rate=8000", [], "unsupported_sample_rate", 1003),
        ("?sample_rate=sixteen", [], "unsupported_sample_rate", 1003),
        ("", [b"\x01\x02\x03", "EOS"], "odd_byte_count", 1003),
        ("", ["hello"], "unsupported_data", 1003),
        ("", [b"\x00" * 8 * 1024 + b"\x00\x00"], "message_too_big", 1009),
        ("", [b"\x00\x10" * 8 * 512] * 24, "stream_too_long", 1009),
        ("", [], "idle_timeout", 1013),
    ],
)
def test_bad_input_gets_its_error_and_close_code(
    server: ServerProcess, query: str, messages: list, error: str, close_code: int
) -> None:
    received, code = talk(stream_url(server, query), messages)
    assert received[-1]["error"] == error and received[-1]["detail"]
    assert code == close_code
    assert error in metrics(server)


def test_streams_over_the_limit_are_told_to_retry(server: ServerProcess, pcm: np.ndarray) -> None:
    async def scenario() -> tuple[list, int | None, list]:
        async with (
            websockets.connect(stream_url(server)) as first,
            websockets.connect(stream_url(server)) as second,
        ):
            await first.send(pcm[:1600].tobytes())
            await second.send(pcm[:1600].tobytes())
            refused = await _talk(stream_url(server), [])
            for ws in (first, second):
                await ws.send("EOS")
            finals = [json.loads(m) async for m in first][-1:]
            finals += [json.loads(m) async for m in second][-1:]
        return *refused, finals

    refused, code, finals = asyncio.run(scenario())
    assert refused[-1]["error"] == "too_many_streams" and code == 1013
    assert [f["final"] for f in finals] == [True, True]
    received, code = talk(stream_url(server), [*chunks(pcm), "EOS"])  # slots are free again
    assert code == 1000 and received[-1]["final"] is True


def test_abrupt_disconnects_free_their_streams(server: ServerProcess, pcm: np.ndarray) -> None:
    async def drop() -> None:
        ws = await websockets.connect(stream_url(server))
        await ws.send(pcm[:3200].tobytes())
        ws.transport.abort()  # no close frame: the TCP connection just ends

    for dropped in range(1, 4):  # more than max-streams: each slot must come back
        asyncio.run(drop())
        wait_for_metric(server, f'deepspeech_streams_total{{outcome="disconnected"}} {dropped}.0')
        received, code = talk(stream_url(server), [*chunks(pcm), "EOS"])
        assert code == 1000 and received[-1]["final"] is True


def test_without_a_streaming_model_the_stream_is_refused(random_onnx: Path) -> None:
    with clean_server(random_onnx, "--device", "cpu") as server:
        received, code = talk(stream_url(server), [b"\x00\x00", "EOS"])
    assert (
        received[-1]["error"] == "streaming_unavailable"
        and "--stream-model" in received[-1]["detail"]
    )
    assert code == 1003


def test_a_bad_stream_model_fails_the_server_start(random_onnx: Path) -> None:
    """A whole-utterance graph as --stream-model: one line naming the fix, exit 2, no port."""
    result = subprocess.run(
        [
            *(sys.executable, "-m", "deepspeech", "serve", "--model", str(random_onnx)),
            *("--stream-model", str(random_onnx), "--port", str(free_port())),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "export --streaming" in result.stderr and "Traceback" not in result.stderr


def test_calls_waiting_together_run_as_one_batch(random_stream_onnx, pcm: np.ndarray) -> None:
    """Micro-batching: five streams' calls queued in one tick take one onnxruntime run, and
    each stream still gets its own text."""
    from prometheus_client import CollectorRegistry

    from serving.settings import StreamSettings
    from serving.stream_server import StreamHub

    model = SpeechModel(random_stream_onnx[1])
    pieces = [pcm[i * 4000 : (i + 1) * 4000] for i in range(5)]

    async def scenario() -> tuple[CollectorRegistry, list[str]]:
        registry = CollectorRegistry()
        hub = StreamHub(model, StreamSettings(), registry)
        streams = [model.create_stream() for _ in pieces]
        calls = [s.take_model_call(p) for s, p in zip(streams, pieces, strict=True)]
        results = await asyncio.gather(*(hub.batcher.run(c) for c in calls))
        for stream, result in zip(streams, results, strict=True):
            stream.apply_model_result(result)
        await hub.close()
        return registry, [s.finish_stream() for s in streams]

    registry, texts = asyncio.run(scenario())
    assert registry.get_sample_value("deepspeech_stream_batch_size_count") == 1
    assert registry.get_sample_value("deepspeech_stream_batch_size_sum") == 5
    assert texts == [model.stt(p) for p in pieces]
    assert len(set(texts)) > 1
