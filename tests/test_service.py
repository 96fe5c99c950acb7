"""The server under floods and faults, as a client meets it (a real `deepspeech serve` on
127.0.0.1): bounded work in flight with quick 503s, bounded memory, a per-request time limit,
and requests of clients that disconnected dropped before the model."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import malformed
import pytest
from loadgen import batch_totals, flood
from rss import PeakMemory
from servers import ServerProcess, clean_server

pytestmark = pytest.mark.slow

FLOOD_CLIENTS = 200
FLOOD_MAX_BODY_MB = 2  # the reduced body limit: 200 x 2 MB would be 400 MB if all were held
FLOOD_MAX_IN_FLIGHT = 4
FLOOD_AUDIO_SECONDS = 65.0  # 16 kHz PCM_16: just under 2 MB, the largest body allowed
# What draining the refused uploads costs per connection at most (asyncio reads 256 KB at a
# time, h11 buffers a copy), plus allocator noise: 164 MB for 200 clients whatever the body
# size, below the 392 MB that holding the 196 refused bodies would take.
RSS_SLACK = FLOOD_CLIENTS * 512 * 2**10 + 64 * 2**20


def max_size_wav(limit_bytes: int) -> bytes:
    wav = malformed.wav(malformed.speech_like_pcm16(FLOOD_AUDIO_SECONDS))
    assert limit_bytes - 100_000 < len(wav) <= limit_bytes, len(wav)
    return wav


def metric(client: httpx.Client, name: str, **labels: str) -> float:
    """One sample's value from /metrics (0 when absent)."""
    wanted = {f'{k}="{v}"' for k, v in labels.items()}
    for line in client.get("/metrics").text.splitlines():
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if match and match[1] == name and wanted <= set((match[2] or "").split(",")) - {""}:
            return float(match[3])
    return 0.0


@pytest.fixture(scope="module")
def flood_server(random_onnx: Path) -> Iterator[ServerProcess]:
    with clean_server(
        random_onnx,
        "--max-body-mb",
        str(FLOOD_MAX_BODY_MB),
        "--max-audio-seconds",
        "70",
        "--max-in-flight",
        str(FLOOD_MAX_IN_FLIGHT),
    ) as process:
        yield process


def test_a_flood_of_maximum_size_uploads_gets_503s_and_memory_stays_bounded(
    flood_server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    limit = FLOOD_MAX_BODY_MB * 2**20
    body = max_size_wav(limit)
    with httpx.Client(base_url=flood_server.url, timeout=120) as client:
        # The most work the server admits: max-in-flight maximum-size uploads at once. Its
        # memory peak is what the flood may reach (plus slack); holding the 200 bodies would
        # take 200 x 2 MB more.
        asyncio.run(flood(flood_server.url, body, FLOOD_MAX_IN_FLIGHT))  # warm up
        with PeakMemory(flood_server.process.pid) as admitted:
            warm = asyncio.run(flood(flood_server.url, body, FLOOD_MAX_IN_FLIGHT))
        assert [r.status_code for r in warm] == [200] * FLOOD_MAX_IN_FLIGHT, warm
        with PeakMemory(flood_server.process.pid) as memory:
            results = asyncio.run(flood(flood_server.url, body, FLOOD_CLIENTS))
        after = client.post("/v1/transcribe", content=body, headers={"Content-Type": "audio/wav"})
        refused = metric(client, "deepspeech_refused_requests_total", reason="overloaded")
    errors = [r for r in results if isinstance(r, Exception)]
    statuses = [r.status_code for r in results if isinstance(r, httpx.Response)]
    unavailable = [r for r in results if isinstance(r, httpx.Response) and r.status_code == 503]
    bound = admitted.peak + RSS_SLACK
    with capsys.disabled():
        print(
            f"\nflood: {FLOOD_CLIENTS} x {len(body) / 2**20:.2f} MB: {statuses.count(200)} x 200, "
            f"{len(unavailable)} x 503, {len(errors)} transport errors; peak RSS "
            f"{memory.peak / 2**20:.0f} MB (admitted work alone: {admitted.peak / 2**20:.0f} MB)"
        )
    assert errors == [], errors[:3]
    assert set(statuses) <= {200, 503}, sorted(set(statuses))
    assert statuses.count(200) >= FLOOD_MAX_IN_FLIGHT and unavailable
    for response in unavailable:
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"] == "overloaded", response.text
        assert f"{FLOOD_MAX_IN_FLIGHT} transcriptions are in progress" in response.json()["detail"]
    assert refused == len(unavailable)
    assert memory.peak <= bound, (memory.peak, bound)
    assert after.status_code == 200, after.text


def test_a_request_over_its_time_limit_gets_503_and_is_dropped(random_onnx: Path) -> None:
    wav = malformed.wav(malformed.speech_like_pcm16(30.0))
    with (
        clean_server(random_onnx, "--request-timeout-s", "0.001") as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        before = batch_totals(client)
        response = client.post("/v1/transcribe", content=wav, headers={"Content-Type": "audio/wav"})
        assert response.status_code == 503, response.text
        assert (
            response.json()["error"] == "timeout" and "0.001 s limit" in response.json()["detail"]
        )
        assert response.headers["retry-after"] == "1"
        assert metric(client, "deepspeech_dropped_requests_total", reason="timeout") == 1
        assert batch_totals(client) == before  # it never reached the model
        assert client.get("/healthz").status_code == 200


def send_and_hang_up(url: str, body: bytes) -> None:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(
            b"POST /v1/transcribe HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: audio/wav\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )


def test_a_client_that_disconnects_has_its_request_dropped_before_inference(
    random_onnx: Path,
) -> None:
    """With a long batch window the request waits for company; its client hangs up meanwhile.
    The request is dropped (counted) and the model never runs it: the next request's batch
    holds that request alone."""
    wav = malformed.wav(malformed.speech_like_pcm16(3.0))
    with (
        clean_server(random_onnx, "--batch-wait-ms", "3000", "--max-batch", "8") as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        before = batch_totals(client)
        send_and_hang_up(server.url, wav)
        for _ in range(10_000):  # until the server has noticed
            if metric(client, "deepspeech_dropped_requests_total", reason="disconnected"):
                break
        assert metric(client, "deepspeech_dropped_requests_total", reason="disconnected") == 1
        response = client.post("/v1/transcribe", content=wav, headers={"Content-Type": "audio/wav"})
        assert response.status_code == 200, response.text
        batches, utterances = batch_totals(client)
        assert (batches - before[0], utterances - before[1]) == (1, 1)


def test_a_client_that_expects_100_continue_is_refused_before_it_uploads(
    random_onnx: Path,
) -> None:
    """With the one place taken (a request waiting out a long batch window), a client that
    sent `Expect: 100-continue` and no body yet gets the 503 at once and the connection is
    closed: it never has to upload."""
    wav = malformed.wav(malformed.speech_like_pcm16(2.0))
    with (
        clean_server(
            random_onnx, "--max-in-flight", "1", "--batch-wait-ms", "3000", "--max-batch", "8"
        ) as server,  # fmt: skip
        httpx.Client(base_url=server.url, timeout=60) as client,
        ThreadPoolExecutor(1) as pool,
    ):
        holder = pool.submit(
            client.post, "/v1/transcribe", content=wav, headers={"Content-Type": "audio/wav"}
        )
        for _ in range(10_000):  # until the first request holds the place
            if metric(client, "deepspeech_requests_in_flight") == 1:
                break
        assert metric(client, "deepspeech_requests_in_flight") == 1
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as connection:
            connection.sendall(
                b"POST /v1/transcribe HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: audio/wav\r\nExpect: 100-continue\r\n"
                + f"Content-Length: {len(wav)}\r\n\r\n".encode()
            )
            answer = b""
            while chunk := connection.recv(65536):  # the server closes after its answer
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503"), answer[:300]
        assert b"retry-after: 1" in head.lower() and b"connection: close" in head.lower()
        assert json.loads(body)["error"] == "overloaded"
        assert holder.result().status_code == 200
