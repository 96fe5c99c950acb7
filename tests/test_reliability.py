"""The server and `transcribe` against what goes wrong in production: the malformed-input
corpus (tests/malformed.py) and random header damage, hostile requests, and 60 s of load.

Every answer to bad input is a 4xx with a JSON error, never a 5xx; the server's resident
memory stays within 10 % across repeated bad input and sustained load; a valid request still
works afterwards. Requests that an HTTP client library would tidy up (dot segments, a lying
Content-Length) are sent over a raw socket.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import malformed
import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st
from loadgen import generate_load
from servers import LOOPBACK, ServerProcess, clean_server, free_port

from serving.app import create_app
from serving.settings import ServerSettings

pytestmark = pytest.mark.slow

MAX_BODY_MB = 2
MAX_AUDIO_SECONDS = 20
MAX_RSS_GROWTH = 0.10  # resident memory may grow this much over repeated bad input or load
CORPUS_PASSES = 3
LOAD_CONCURRENCY = 16
LOAD_SECONDS = 60
WARMUP_SECONDS = 5


@pytest.fixture(scope="module")
def valid_wav() -> bytes:
    return malformed.wav(malformed.speech_like_pcm16(2.0))


@pytest.fixture(scope="module")
def corpus(valid_wav: bytes) -> list[malformed.BadWav]:
    return malformed.malformed_wavs(valid_wav)


@pytest.fixture(scope="module")
def server(random_onnx: Path) -> Iterator[ServerProcess]:
    options = ("--max-body-mb", str(MAX_BODY_MB), "--max-audio-seconds", str(MAX_AUDIO_SECONDS))
    with clean_server(random_onnx, *options) as process:
        yield process


def post_wav(client: httpx.Client, body: bytes) -> httpx.Response:
    return client.post("/v1/transcribe", content=body, headers={"Content-Type": "audio/wav"})


def assert_client_error_or_transcript(response: httpx.Response, must_refuse: bool) -> None:
    status = response.status_code
    assert status < 500, response.text
    body = response.json()
    if status == 200:
        assert not must_refuse, f"decoded: {body}"
        assert isinstance(body["text"], str), body
    else:
        assert status in (400, 413), response.text
        assert body["error"] in ("invalid_audio", "audio_too_long") and body["detail"], body


def test_malformed_corpus_gets_4xx_and_memory_stays_bounded(
    server: ServerProcess, corpus: list[malformed.BadWav], valid_wav: bytes
) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for _ in range(8):  # warm up: onnxruntime's arena and the feature threads settle
            assert post_wav(client, valid_wav).status_code == 200
        rss_after_first_pass = 0
        for corpus_pass in range(CORPUS_PASSES):
            for case in corpus:
                response = post_wav(client, case.data)
                try:
                    assert_client_error_or_transcript(response, case.refuse)
                except AssertionError as e:
                    raise AssertionError(f"{case.name}: {e}") from None
            if corpus_pass == 0:
                rss_after_first_pass = server.rss_bytes()
        rss_end = server.rss_bytes()
        assert post_wav(client, valid_wav).status_code == 200
    growth = rss_end / rss_after_first_pass - 1
    assert growth <= MAX_RSS_GROWTH, f"RSS grew {growth:.1%} over {CORPUS_PASSES - 1} passes"


@settings(max_examples=60, deadline=None)
@given(
    offset=st.integers(0, malformed.HEADER_BYTES + 8),
    junk=st.binary(min_size=1, max_size=8),
    cut=st.none() | st.integers(0, 4000),
)
def test_damaged_headers_never_get_a_5xx(
    server: ServerProcess, valid_wav: bytes, offset: int, junk: bytes, cut: int | None
) -> None:
    damaged = (valid_wav[:offset] + junk + valid_wav[offset + len(junk) :])[:cut]
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert_client_error_or_transcript(post_wav(client, damaged), must_refuse=False)


def test_transcribe_names_every_bad_file_and_transcribes_the_rest(
    random_onnx: Path, corpus: list[malformed.BadWav], valid_wav: bytes, tmp_path: Path
) -> None:
    paths = []
    for index, case in enumerate(corpus):
        paths.append(tmp_path / f"{index:03d}.wav")
        paths[-1].write_bytes(case.data)
    good = tmp_path / "good.wav"
    good.write_bytes(valid_wav)
    command = [sys.executable, "-m", "deepspeech", "transcribe", "--model", str(random_onnx)]
    result = subprocess.run(
        [*command, *map(str, paths), str(good)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    failed = {
        m.group(1) for m in re.finditer(r"^error: (\S+\.wav): \S", result.stderr, re.MULTILINE)
    }
    transcribed = {line.split("\t")[0] for line in result.stdout.splitlines()}
    assert str(good) in transcribed
    for path, case in zip(paths, corpus, strict=True):
        assert (str(path) in failed) != (str(path) in transcribed), case.name
        if case.refuse:
            assert str(path) in failed, f"{case.name} was transcribed"
    assert f"error: {len(failed)} of {len(paths) + 1} files could not be transcribed" in (
        result.stderr
    )


def raw_http(url: str, request: bytes, timeout: float = 10.0) -> tuple[int, str, bytes]:
    """Send `request` bytes as they are and read until the server closes or a whole answer
    (by its Content-Length) arrived: -> (status, header block, body)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as connection:
        connection.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received or not _complete(received):
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, head.decode("latin-1"), body


def _complete(received: bytes) -> bool:
    head, _, body = received.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    return length is not None and len(body) >= int(length.group(1))


def test_a_multi_gigabyte_content_length_is_refused_unread(server: ServerProcess) -> None:
    """Only 4 KB of the 8 GB the header claims are ever sent, and the connection stays open:
    a server that waited for the body would never answer, so an answer at all shows it
    refused from the header (the socket's timeout only stops a hang)."""
    rss_before = server.rss_bytes()
    sent = b"RIFF" * 1024
    try:
        status, head, body = raw_http(
            server.url,
            b"POST /v1/transcribe HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: audio/wav\r\n"
            b"Content-Length: 8589934592\r\n\r\n" + sent,
            timeout=120,
        )
    except TimeoutError:
        pytest.fail(f"no answer after {len(sent)} of 8589934592 body bytes: the server waits")
    assert status == 413 and "connection: close" in head.lower(), head
    assert json.loads(body)["error"] == "body_too_large"
    assert "8589934592" in json.loads(body)["detail"]
    assert server.rss_bytes() - rss_before < 16 * 2**20


def _listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as the kernel shows them) of TCP sockets listening on `port`."""
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    listening.add(address)
    return listening


def test_the_server_listens_on_loopback_only_by_default(random_onnx: Path) -> None:
    with clean_server(random_onnx, host=None) as process:
        port = int(process.url.rsplit(":", 1)[1])
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1, little-endian hex
        assert f"Uvicorn running on http://127.0.0.1:{port}" in process.log()


@pytest.mark.parametrize(
    "target",
    [
        "/static/../../../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/static/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/static//etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/static/%00../../etc/passwd",
        "/v1/model?model=/etc/passwd",
        "/v1/model/../../../etc/passwd",
        "/healthz?model=models:/../../etc/passwd/1",
    ],
)
def test_no_route_serves_files_outside_the_web_page(server: ServerProcess, target: str) -> None:
    request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    status, _, body = raw_http(server.url, request.encode())
    assert b"root:" not in body
    assert status in (200, 400, 404), (status, body)
    if status == 200:  # the route ignored the query: its own answer, not a file
        assert json.loads(body).get("status") == "ok" or "alphabet" in json.loads(body)


def test_a_request_cannot_choose_the_model(
    server: ServerProcess, random_onnx: Path, valid_wav: bytes
) -> None:
    """The model is the operator's choice at start-up; nothing in a request names a file.
    Form fields and headers are ignored; a query parameter the API does not take is refused
    (a misspelt `num_result` must not pass unnoticed either)."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        response = client.post(
            "/v1/transcribe",
            data={"model": "models:/other/1", "path": "/etc/passwd"},
            files={"audio": ("../../etc/passwd", valid_wav, "audio/wav")},
            headers={"X-Model": "/etc/passwd"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["model"] == "random/0"
        refused = client.post(
            "/v1/transcribe",
            params={"model": "/etc/passwd"},
            files={"audio": ("a.wav", valid_wav, "audio/wav")},
        )
        assert refused.status_code == 422 and "'model'" in refused.json()["detail"]
        info = client.get("/v1/model").text
    assert str(random_onnx) not in info and str(random_onnx.parent) not in info


@contextmanager
def in_process_server(settings: ServerSettings) -> Iterator[str]:
    """The app under uvicorn in a thread of this process, so the test sees its file calls."""
    port = free_port()
    config = uvicorn.Config(create_app(settings), host=LOOPBACK, port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def test_large_uploads_are_spooled_to_disk_and_deleted(
    random_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recording may be hours long, so a body over SPOOL_BYTES (1 MB) goes to a temporary
    file, raw or multipart, and is closed (which deletes it) by the time the answer is sent; a
    small one stays in memory."""
    opened: list = []
    real = tempfile.TemporaryFile

    def record(*args, **kwargs):
        file = real(*args, **kwargs)
        opened.append(file)
        return file

    long_wav = malformed.wav(malformed.speech_like_pcm16(59.0))  # 1.9 MB
    short_wav = malformed.wav(malformed.speech_like_pcm16(2.0))
    settings = ServerSettings(model=str(random_onnx), max_body_mb=4)
    with in_process_server(settings) as url, httpx.Client(base_url=url, timeout=120) as client:
        monkeypatch.setattr(tempfile, "TemporaryFile", record)
        small = [client.post("/v1/transcribe", files={"audio": ("a.wav", short_wav)})]
        small.append(post_wav(client, short_wav))
        assert opened == []
        multipart = client.post("/v1/transcribe", files={"audio": ("a.wav", long_wav)})
        raw = post_wav(client, long_wav)
        monkeypatch.undo()
    assert all(r.status_code == 200 for r in small), [r.text for r in small]
    assert multipart.status_code == 200, multipart.text
    assert raw.status_code == 200, raw.text
    assert len(opened) == 2 and all(file.closed for file in opened)


def test_sixty_seconds_at_concurrency_16(
    server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    """Zero errors, bounded memory, and the figures in the test log."""
    wavs = [malformed.wav(malformed.speech_like_pcm16(s, seed=s)) for s in (1, 2, 3, 4)]
    generate_load(server.url, wavs, LOAD_CONCURRENCY, seconds=WARMUP_SECONDS)
    rss_start = server.rss_bytes()
    result = generate_load(server.url, wavs, LOAD_CONCURRENCY, seconds=LOAD_SECONDS)
    rss_end = server.rss_bytes()
    with capsys.disabled():
        print(
            f"\nload: {result.requests} requests in {result.seconds:.1f} s at concurrency "
            f"{LOAD_CONCURRENCY}: {result.throughput:.1f} req/s, p50 "
            f"{result.percentile(50) * 1e3:.0f} ms, p99 {result.percentile(99) * 1e3:.0f} ms, "
            f"{len(result.errors)} errors, RSS {rss_start / 2**20:.0f} -> {rss_end / 2**20:.0f} MB"
        )
    assert result.errors == []
    assert len(result.latencies) >= LOAD_CONCURRENCY
    assert rss_end <= rss_start * (1 + MAX_RSS_GROWTH), (rss_start, rss_end)
