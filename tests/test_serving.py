"""The HTTP server as a client meets it: a real `deepspeech serve` process on 127.0.0.1,
concurrent requests, every kind of bad input, metrics, the web page and a clean shutdown."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile
from loadgen import batch_totals
from servers import ServerProcess, clean_server

from deepspeech.audio import SAMPLE_RATE, load_wav
from deepspeech.data.manifest import read_manifest
from serving.inference import open_model

pytestmark = pytest.mark.slow

MAX_AUDIO_SECONDS = 8
MAX_BODY_MB = 1
LIMIT_BYTES = MAX_BODY_MB * 1024 * 1024
CONCURRENT_REQUESTS = 16


def wav_bytes(audio: np.ndarray, rate: int = SAMPLE_RATE, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def held_out_wavs(tiny_corpus: Path) -> list[Path]:
    return [u.wav_path for u in read_manifest(tiny_corpus / "test.csv")]


@pytest.fixture(scope="module")
def server(random_onnx: Path) -> Iterator[ServerProcess]:
    """A server with small limits and a 20 ms batch window, stopped (SIGTERM) at the end."""
    with clean_server(
        random_onnx,
        "--max-audio-seconds",
        str(MAX_AUDIO_SECONDS),
        "--max-body-mb",
        str(MAX_BODY_MB),
        "--max-batch",
        "8",
        "--batch-wait-ms",
        "20",
    ) as process:
        yield process


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def post_wav(client: httpx.Client, body: bytes, content_type: str = "audio/wav") -> httpx.Response:
    return client.post("/v1/transcribe", content=body, headers={"Content-Type": content_type})


def test_serving_does_not_import_tensorflow() -> None:
    code = (
        "import serving.app, serving.inference, serving.routes, serving.batching\n"
        "import sys\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n"
        "assert 'keras' not in sys.modules, 'keras imported'\n"
        "assert 'mlflow' not in sys.modules, 'mlflow imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_serve_with_a_bad_model_fails_in_one_line(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    for model in (str(tmp_path / "missing.onnx"), str(garbage), "models:/"):
        result = subprocess.run(
            [sys.executable, "-m", "deepspeech", "serve", "--model", model, "--port", "0"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
        assert model in line and "Traceback" not in result.stderr


def test_serving_never_imports_the_cli() -> None:
    """The dependency goes one way: the CLI (the last stage) uses serving, serving uses the
    library stages of deepspeech, never its CLI."""
    import ast

    package = Path(__file__).resolve().parent.parent / "serving"
    offenders = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [a.name for a in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom)
                else []
            )  # fmt: skip
            offenders += [f"{path}: {n}" for n in names if n.startswith("deepspeech.cli")]
    assert offenders == []
    result = subprocess.run(
        [sys.executable, "-m", "deepspeech", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "--max-in-flight" in result.stdout, result.stderr


def test_health_model_and_page(client: httpx.Client, random_onnx: Path) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    info = client.get("/v1/model").json()
    assert (info["name"], info["version"], info["model"]) == ("random", "0", "random/0")
    assert info["sample_rate"] == SAMPLE_RATE and len(info["alphabet"]) == 28
    assert info["execution_providers"] == open_model(random_onnx).providers
    assert info["opset"] >= 17
    assert info["features"] == {"numcep": 26, "numcontext": 9, "stride": 2}
    assert info["limits"]["max_audio_seconds"] == MAX_AUDIO_SECONDS

    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'type="file"' in page.text and "/static/app.js" in page.text
    script = client.get("/static/app.js")
    assert script.status_code == 200 and "/v1/transcribe" in script.text
    assert client.get("/static/style.css").status_code == 200


def test_concurrent_requests_match_transcribe(
    client: httpx.Client, server: ServerProcess, random_onnx: Path, held_out_wavs: list[Path]
) -> None:
    """16 requests at once get the same answers as `deepspeech transcribe`, batched."""
    files = [held_out_wavs[i % len(held_out_wavs)] for i in range(CONCURRENT_REQUESTS)]
    before = batch_totals(client)

    def send(path: Path) -> httpx.Response:
        return post_wav(client, path.read_bytes())

    with ThreadPoolExecutor(CONCURRENT_REQUESTS) as pool:
        responses = list(pool.map(send, files))
    assert [r.status_code for r in responses] == [200] * CONCURRENT_REQUESTS

    cli = subprocess.run(
        [sys.executable, "-m", "deepspeech", "transcribe", "--model", str(random_onnx)]
        + [str(p) for p in held_out_wavs],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    expected = dict(line.split("\t", 1) for line in cli.stdout.splitlines())
    for path, response in zip(files, responses, strict=True):
        body = response.json()
        assert body["text"] == expected[str(path)] and body["text"]
        assert body["model"] == "random/0" and body["inference_ms"] > 0
        assert body["duration_s"] == pytest.approx(len(load_wav(path)) / SAMPLE_RATE, abs=1e-3)

    after = batch_totals(client)
    batches = after[0] - before[0]
    utterances = after[1] - before[1]
    assert utterances == CONCURRENT_REQUESTS
    assert batches < CONCURRENT_REQUESTS, "requests arriving together were not batched"


def _converted(audio: np.ndarray, rate: int, subtype: str, channels: int = 1) -> bytes:
    from scipy.signal import resample_poly

    if rate != SAMPLE_RATE:
        audio = resample_poly(audio, rate, SAMPLE_RATE).astype(np.float32)
    if channels > 1:
        audio = np.stack([audio] * channels, axis=1)
    return wav_bytes(audio, rate, subtype)


@pytest.mark.parametrize(
    ("rate", "subtype", "channels"),
    [
        (SAMPLE_RATE, "PCM_U8", 1),
        (SAMPLE_RATE, "PCM_24", 1),
        (SAMPLE_RATE, "PCM_32", 1),
        (SAMPLE_RATE, "FLOAT", 1),
        (SAMPLE_RATE, "PCM_16", 2),
        (8000, "PCM_16", 1),
        (44100, "PCM_16", 2),
        (48000, "FLOAT", 1),
    ],
)
def test_any_pcm_wav_is_converted(
    client: httpx.Client, held_out_wavs: list[Path], rate: int, subtype: str, channels: int
) -> None:
    audio = load_wav(held_out_wavs[0])
    response = post_wav(client, _converted(audio, rate, subtype, channels))
    assert response.status_code == 200, response.text
    assert response.json()["duration_s"] == pytest.approx(len(audio) / SAMPLE_RATE, abs=0.01)


def _huge_riff_sizes(wav: bytes) -> bytes:
    """The RIFF and data chunk sizes claim 4 GB; the file holds a few seconds."""
    data = bytearray(wav)
    data[4:8] = struct.pack("<I", 0xFFFFFFF0)
    data[data.index(b"data") + 4 : data.index(b"data") + 8] = struct.pack("<I", 0xFFFFFFF0)
    return bytes(data)


def _with_rate(wav: bytes, rate: int) -> bytes:
    data = bytearray(wav)
    data[24:28] = struct.pack("<I", rate)
    return bytes(data)


def test_huge_claimed_sizes_decode_what_is_there(client: httpx.Client, held_out_wavs) -> None:
    wav = held_out_wavs[0].read_bytes()
    response = post_wav(client, _huge_riff_sizes(wav))
    assert response.status_code == 200, response.text
    real_seconds = len(load_wav(held_out_wavs[0])) / SAMPLE_RATE
    assert response.json()["duration_s"] == pytest.approx(real_seconds, abs=1e-3)


def raw(body: bytes | Iterator[bytes], content_type: str | None = "audio/wav") -> dict:
    """httpx.post keyword arguments for a raw body (no Content-Type header when None)."""
    return {"content": body, "headers": {"Content-Type": content_type} if content_type else {}}


BAD_INPUTS = {
    # name: (request arguments made from a valid WAV, status, error code, words in the detail)
    "not a wav": (
        lambda w: raw(b"hello, world" * 100),
        400,
        "invalid_audio",
        "request body: cannot decode audio",
    ),
    "truncated header": (lambda w: raw(w[:20]), 400, "invalid_audio", "decode"),
    "header only": (lambda w: raw(w[:44]), 400, "invalid_audio", "no audio"),
    "zero-length body": (lambda w: raw(b""), 400, "invalid_audio", "empty"),
    "sample rate 0": (lambda w: raw(_with_rate(w, 0)), 400, "invalid_audio", "decode"),
    "sample rate 10 MHz": (lambda w: raw(_with_rate(w, 10**7)), 400, "invalid_audio", "Hz"),
    "over-long audio": (
        lambda w: raw(wav_bytes(np.zeros(8000 * (MAX_AUDIO_SECONDS + 2)), 8000)),
        413,
        "audio_too_long",
        f"{MAX_AUDIO_SECONDS:g} s limit",
    ),
    "body over the limit": (
        lambda w: raw(b"\0" * (LIMIT_BYTES + 1)),
        413,
        "body_too_large",
        str(LIMIT_BYTES),
    ),
    "chunked body over the limit": (
        lambda w: raw(iter([b"\0" * 65536] * (LIMIT_BYTES // 65536 + 2))),
        413,
        "body_too_large",
        "limit",
    ),
    "wrong content type": (
        lambda w: raw(w, "text/plain"),
        415,
        "unsupported_media_type",
        "audio/wav",
    ),
    "no content type": (lambda w: raw(w, None), 415, "unsupported_media_type", "audio/wav"),
    "missing multipart field": (
        lambda w: {"files": {"file": ("a.wav", w, "audio/wav")}},
        422,
        "missing_field",
        "'audio'",
    ),
    "multipart field is text": (
        lambda w: {"data": {"audio": "not a file"}, "files": {"x": ("x", b"x")}},
        422,
        "missing_field",
        "not a file",
    ),
    "multipart not a wav": (
        lambda w: {"files": {"audio": ("a.wav", b"garbage" * 10, "audio/wav")}},
        400,
        "invalid_audio",
        "a.wav: cannot decode audio",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gets_its_code_and_the_server_keeps_serving(
    client: httpx.Client, held_out_wavs: list[Path], case: str
) -> None:
    make, status, code, words = BAD_INPUTS[case]
    wav = held_out_wavs[0].read_bytes()
    response = client.post("/v1/transcribe", **make(wav))
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code, body
    assert words in body["detail"], body
    assert post_wav(client, wav).status_code == 200


def test_multipart_upload(client: httpx.Client, held_out_wavs: list[Path]) -> None:
    wav = held_out_wavs[1].read_bytes()
    response = client.post("/v1/transcribe", files={"audio": ("clip.wav", wav, "audio/wav")})
    assert response.status_code == 200, response.text
    assert response.json() == {**response.json(), "model": "random/0"}
    raw = post_wav(client, wav, "audio/x-wav").json()
    assert raw["text"] == response.json()["text"]
    assert post_wav(client, wav, "audio/wave; charset=binary").status_code == 200


def test_framework_errors_have_the_same_shape(client: httpx.Client) -> None:
    not_found = client.get("/v2/nothing")
    assert not_found.status_code == 404 and not_found.json()["error"] == "not_found"
    wrong_method = client.get("/v1/transcribe")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "method_not_allowed"


def test_metrics_count_requests_batches_and_audio(client: httpx.Client, held_out_wavs) -> None:
    post_wav(client, held_out_wavs[2].read_bytes())
    post_wav(client, b"not audio")
    text = client.get("/metrics").text
    transcribe = 'method="POST",route="/v1/transcribe"'
    assert f'deepspeech_http_requests_total{{{transcribe},status="200"}}' in text
    assert f'deepspeech_http_requests_total{{{transcribe},status="400"}}' in text
    assert 'deepspeech_http_request_duration_seconds_count{route="/v1/transcribe"}' in text
    assert "deepspeech_batch_size_bucket" in text
    (audio,) = [ln for ln in text.splitlines() if ln.startswith("deepspeech_audio_seconds_total")]
    assert float(audio.split()[1]) > 0


def test_asking_for_cuda_without_it_runs_on_cpu_and_says_so(
    random_onnx: Path, held_out_wavs: list[Path]
) -> None:
    """On a machine without a working CUDA provider: one warning, CPU, and /v1/model lists
    the provider really used. (Where CUDA works, the LSTM's placement is checked instead.)"""
    import onnxruntime

    from deepspeech.runtime.session import CUDA_PROVIDER, gpu_present

    if CUDA_PROVIDER in onnxruntime.get_available_providers() and gpu_present():
        pytest.skip("this machine has a working GPU; the fallback path cannot be exercised")
    with (
        clean_server(
            random_onnx, "--device", "cuda", "--device-id", "0", "--gpu-mem-limit-mb", "512"
        ) as server,  # fmt: skip
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        info = client.get("/v1/model").json()
        assert info["execution_providers"] == ["CPUExecutionProvider"]
        assert post_wav(client, held_out_wavs[0].read_bytes()).status_code == 200
        log = server.log()
    assert "CUDA was asked for but" in log and "running on CPU (CPUExecutionProvider)" in log


def test_recurrent_node_placement_is_read_from_the_profile(random_onnx: Path) -> None:
    from deepspeech.runtime.offline import warm_up
    from deepspeech.runtime.session import cuda_provider_options, recurrent_node_providers

    session, placed = recurrent_node_providers(random_onnx, ["CPUExecutionProvider"], 1, warm_up)
    assert placed == {"LSTM": {"CPUExecutionProvider"}}
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert cuda_provider_options(1, 2**30) == {
        "device_id": 1,
        "arena_extend_strategy": "kSameAsRequested",
        "gpu_mem_limit": 2**30,
    }


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def test_workers_share_the_port_and_metrics_add_up(
    random_onnx: Path, held_out_wavs: list[Path]
) -> None:
    """--workers 2: two processes each with a model, and /metrics, whichever worker answers,
    counts the requests both answered."""
    requests = 12
    with clean_server(random_onnx, "--workers", "2") as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for _ in range(1200):  # /healthz answered once one worker was up; wait for both
                workers = [ln for ln in client.get("/metrics").text.splitlines()
                           if ln.startswith("deepspeech_workers ")]  # fmt: skip
                if workers == ["deepspeech_workers 2.0"]:
                    break
                time.sleep(0.1)
            assert workers == ["deepspeech_workers 2.0"], workers
        pids = set()
        for i in range(requests):  # a new connection each: the kernel picks the worker
            with httpx.Client(base_url=server.url, timeout=60) as client:
                response = post_wav(client, held_out_wavs[i % len(held_out_wavs)].read_bytes())
                assert response.status_code == 200, response.text
                pids.add(client.get("/v1/model").json()["worker_pid"])
        assert pids <= set(_children(server.process.pid))
        with httpx.Client(base_url=server.url, timeout=60) as client:
            text = client.get("/metrics").text
        ok = 'deepspeech_http_requests_total{method="POST",route="/v1/transcribe",status="200"}'
        (line,) = [ln for ln in text.splitlines() if ln.startswith(ok)]
        assert float(line.split()[1]) == requests
        utterances = [ln for ln in text.splitlines() if ln.startswith("deepspeech_batch_size_sum")]
        assert utterances == [f"deepspeech_batch_size_sum {float(requests)}"]
