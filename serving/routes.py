"""HTTP routes: POST /v1/transcribe, GET /healthz, /v1/model, /metrics, / (the web page).

Every error is JSON `{"error": CODE, "detail": MESSAGE}`: bad input gets 400 (undecodable
audio), 413 (body or duration over the limit), 415 (media type) or 422 (missing field), and
never a 5xx. Bodies are read as a stream and counted, so an oversized upload is refused at the
limit instead of after it has been buffered whole, and no uploaded byte is written to disk.
Overload is a 503 with Retry-After, given before the body is read: too many transcriptions in
flight (`overloaded`), the time limit passed (`timeout`), shutting down (`shutting_down`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from deepspeech.errors import AudioFormatError, AudioTooLongError
from serving.batching import BatcherClosedError, QueueFullError
from serving.service import (
    ClientGoneError,
    OverloadedError,
    RequestTimeoutError,
    TranscriptionService,
)

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
WAV_MEDIA_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"})
MULTIPART_MEDIA_TYPE = "multipart/form-data"
AUDIO_FIELD = "audio"
MULTIPART_MAX_FIELDS = 16  # a browser form sends one or two; more is not a transcription request
RETRY_AFTER_SECONDS = "1"  # what a refused client is told to wait
CLIENT_CLOSED_STATUS = 499  # nginx's code for "client closed the request"; nobody receives it

router = APIRouter()


class ApiError(Exception):
    """An error answer: HTTP status, machine-readable code and a message naming the fix."""

    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


class _BodyTooLargeError(Exception):
    pass


def error_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


def _service(request: Request) -> TranscriptionService:
    service = getattr(request.app.state, "service", None)
    if service is None:
        raise ApiError(503, "not_ready", "the model is not loaded yet; retry in a moment")
    return service


def _unavailable(code: str, detail: str, close: bool = False) -> ApiError:
    headers = {"Retry-After": RETRY_AFTER_SECONDS}
    if close:
        headers["Connection"] = "close"
    return ApiError(503, code, detail, headers=headers)


async def _refuse_overloaded(request: Request, limit: int, detail: str) -> ApiError:
    """The 503 for a request not admitted, without holding its body.

    A client that sent `Expect: 100-continue` (curl does, for large uploads) gets it at once
    and never sends the body. Others are already sending it: it is read and thrown away chunk
    by chunk first, since closing the connection under an upload resets it (the client sees
    a transport error, not the 503), and a refused body left unread is cut off by uvicorn's
    keep-alive timeout when a flood keeps the server busy for longer.
    """
    if "100-continue" in request.headers.get("expect", "").lower():
        return _unavailable("overloaded", detail, close=True)
    try:
        async for _ in _limited_stream(request, limit):
            pass
    except _BodyTooLargeError:  # chunked and over the limit: stop reading, close
        return _unavailable("overloaded", detail, close=True)
    return _unavailable("overloaded", detail)


async def _wait_for_disconnect(request: Request) -> None:
    """Return when the client has gone away (called once the body has been read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _too_large(limit: int, size: str) -> ApiError:
    # The rest of the body is never read, so the connection cannot be reused.
    return ApiError(
        413,
        "body_too_large",
        f"request body is {size}; the limit is {limit} bytes ({limit / 2**20:g} MB)",
        headers={"Connection": "close"},
    )


async def _limited_stream(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The request body chunk by chunk, failing as soon as more than `limit` bytes arrived."""
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _BodyTooLargeError
        yield chunk


async def _read_wav_body(request: Request, limit: int) -> bytes | bytearray:
    """The body, held once: with a Content-Length (checked against the limit already) it is
    read into a buffer of that size; joining chunks would hold it twice for a moment, and
    when a flood's admitted uploads finish together those moments add up."""
    declared = request.headers.get("content-length", "")
    if not declared.isdigit():
        return b"".join([chunk async for chunk in _limited_stream(request, limit)])
    body = bytearray(int(declared))
    received = 0
    async for chunk in _limited_stream(request, limit):
        body[received : received + len(chunk)] = chunk
        received += len(chunk)
    if received != len(body):  # the client sent less than it declared, then hung up
        del body[received:]
    return body


async def _read_multipart_audio(request: Request, limit: int) -> tuple[bytes, str]:
    """The `audio` file part: (its bytes, its filename for error messages)."""
    parser = MultiPartParser(
        request.headers,
        _limited_stream(request, limit),
        max_files=MULTIPART_MAX_FIELDS,
        max_fields=MULTIPART_MAX_FIELDS,
    )
    # Starlette spools file parts over 1 MB to a temporary file; uploads must never touch the
    # disk, and the body limit already bounds a part, so keep every part in memory.
    parser.spool_max_size = limit
    try:
        form = await parser.parse()
    except MultiPartException as e:
        raise ApiError(400, "invalid_multipart", f"cannot parse the multipart body: {e}") from e
    try:
        field = form.get(AUDIO_FIELD)
        if field is None:
            raise ApiError(
                422,
                "missing_field",
                f"multipart field {AUDIO_FIELD!r} is missing (got {sorted(form.keys())}); "
                f"send the WAV file as field {AUDIO_FIELD!r}",
            )
        if not isinstance(field, UploadFile):
            raise ApiError(
                422,
                "missing_field",
                f"multipart field {AUDIO_FIELD!r} is text, not a file; upload the WAV file "
                "as a file part (with a filename)",
            )
        return await field.read(), field.filename or AUDIO_FIELD
    finally:
        await form.close()


@router.post(
    "/v1/transcribe",
    summary="Transcribe a WAV file",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "audio/wav": {"schema": {"type": "string", "format": "binary"}},
                MULTIPART_MEDIA_TYPE: {
                    "schema": {
                        "type": "object",
                        "properties": {AUDIO_FIELD: {"type": "string", "format": "binary"}},
                        "required": [AUDIO_FIELD],
                    }
                },
            },
        }
    },
)
async def transcribe(request: Request) -> dict[str, Any]:
    """A WAV file (any PCM or float encoding, rate and channel count) -> its transcript.

    Send it raw with `Content-Type: audio/wav` or as multipart field `audio`.
    """
    service = _service(request)
    limit = service.settings.max_body_bytes
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in WAV_MEDIA_TYPES and media_type != MULTIPART_MEDIA_TYPE:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type {media_type or '(none)'!r} is not accepted; send a WAV file with "
            f"Content-Type audio/wav, or as multipart/form-data field {AUDIO_FIELD!r}",
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit, f"{int(declared)} bytes (Content-Length)")
    try:
        with service.admit():
            return await _transcribe_body(request, service, media_type, limit)
    except OverloadedError as e:
        raise await _refuse_overloaded(request, limit, str(e)) from e


async def _transcribe_body(
    request: Request, service: TranscriptionService, media_type: str, limit: int
) -> Any:
    try:
        if media_type == MULTIPART_MEDIA_TYPE:
            wav, name = await _read_multipart_audio(request, limit)
        else:
            wav, name = await _read_wav_body(request, limit), "request body"
    except _BodyTooLargeError:
        raise _too_large(limit, "over the limit") from None
    if not wav:
        raise ApiError(400, "invalid_audio", "the audio is empty (0 bytes); send a WAV file")
    try:
        result = await service.transcribe(wav, name, lambda: _wait_for_disconnect(request))
    except AudioTooLongError as e:
        raise ApiError(413, "audio_too_long", str(e)) from e
    except AudioFormatError as e:
        raise ApiError(400, "invalid_audio", str(e)) from e
    except QueueFullError as e:
        raise _unavailable("overloaded", str(e)) from e
    except RequestTimeoutError as e:
        raise _unavailable("timeout", str(e)) from e
    except BatcherClosedError as e:
        raise _unavailable("shutting_down", str(e)) from e
    except ClientGoneError as e:
        return error_response(CLIENT_CLOSED_STATUS, "client_closed", str(e))
    return result.to_dict()


@router.get("/healthz", summary="Liveness and readiness")
async def healthz(request: Request) -> dict[str, str]:
    """200 once the model is loaded and the server takes requests; 503 if its batcher has
    stopped (repeated failures), so an orchestrator restarts the process."""
    if not _service(request).healthy:
        raise ApiError(503, "unhealthy", "the batcher stopped after repeated failures; restart")
    return {"status": "ok"}


@router.get("/v1/model", summary="The model being served")
async def model_info(request: Request) -> dict[str, Any]:
    """Name, version, sample rate, alphabet, execution providers in use, opset, features."""
    service = _service(request)
    settings = service.settings
    return {
        **service.model.describe(),
        "limits": {
            "max_batch": settings.max_batch,
            "batch_wait_ms": settings.batch_wait_ms,
            "max_audio_seconds": settings.max_audio_seconds,
            "max_body_bytes": settings.max_body_bytes,
            "max_in_flight": settings.max_in_flight,
            "request_timeout_s": settings.request_timeout_s,
        },
        "workers": settings.workers,
        "worker_pid": os.getpid(),
    }


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    server_metrics = request.app.state.metrics
    return Response(server_metrics.render(), media_type=server_metrics.content_type)


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    """The web page: pick a WAV file, see its transcript."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


def install_error_handlers(app: FastAPI) -> None:
    """Every error as {"error", "detail"} JSON, FastAPI's and Starlette's own included."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        return error_response(422, "validation_error", problems or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        return error_response(
            exc.status_code,
            codes.get(exc.status_code, f"http_{exc.status_code}"),
            str(exc.detail),
            dict(exc.headers) if exc.headers else None,
        )

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal error; see the server log")
