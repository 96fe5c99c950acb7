"""HTTP routes: POST /v1/transcribe, GET /healthz, /v1/model, /metrics, / (the web page).

Query parameters of POST /v1/transcribe: `words=true` (confidence, timed words, and segments
for a recording cut at pauses), `format=json|srt|vtt` (subtitles answer as the file itself),
`num_results=N` (N-best `alternatives`), `hot_words=WORD:BOOST,...` (beam decoder).

Every error is JSON `{"error": CODE, "detail": MESSAGE}`: bad input gets 400 (undecodable
audio), 413 (body or duration over the limit), 415 (media type) or 422 (missing field, bad
query parameter), and never a 5xx. Bodies are read as a stream and counted, so an oversized
upload is refused at the limit instead of after it has been buffered whole; a body over
SPOOL_BYTES goes to a temporary file (deleted when the request ends), so a long recording
costs disk, not memory. Overload is a 503 with Retry-After, given before the body is read:
too many transcriptions in flight (`overloaded`), the time limit passed (`timeout`), shutting
down (`shutting_down`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from deepspeech.decoding.hot_words import parse_hot_words
from deepspeech.decoding.subtitles import MEDIA_TYPES, SUBTITLE_FORMATS, subtitles
from deepspeech.errors import AudioFormatError, AudioTooLongError, ConfigError
from serving.batching import BatcherClosedError, QueueFullError
from serving.inference import DecodeOptions
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
SPOOL_BYTES = 1024 * 1024  # bodies larger than this are spooled to a temporary file
MAX_RESULTS = 16  # N-best alternatives a request may ask for
QUERY_PARAMETERS = ("words", "format", "num_results", "hot_words")
TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes"), ("false", "0", "no")

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


async def _spool_wav_body(request: Request, limit: int) -> IO[bytes]:
    """The body in a spooled file: memory up to SPOOL_BYTES, then a temporary file, written
    off the event loop once it is on disk. The caller closes it (which deletes it)."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - closed by caller
    try:
        async for chunk in _limited_stream(request, limit):
            if spool._rolled:  # on disk: do not block the loop on the write
                await asyncio.to_thread(spool.write, chunk)
            else:
                spool.write(chunk)
        spool.seek(0)
        return spool  # type: ignore[return-value]
    except BaseException:
        spool.close()
        raise


def _size(file: IO[bytes]) -> int:
    file.seek(0, os.SEEK_END)
    size = file.tell()
    file.seek(0)
    return size


async def _read_multipart_audio(request: Request, limit: int) -> tuple[Any, UploadFile]:
    """The parsed form (close it when done: that deletes its spooled files) and its `audio`
    file part."""
    parser = MultiPartParser(
        request.headers,
        _limited_stream(request, limit),
        max_files=MULTIPART_MAX_FIELDS,
        max_fields=MULTIPART_MAX_FIELDS,
    )
    parser.spool_max_size = SPOOL_BYTES  # larger parts go to a temporary file, as raw bodies
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
    except BaseException:
        await form.close()
        raise
    return form, field


@dataclass(frozen=True)
class Answer:
    """What a request asked to get back (its query parameters, checked)."""

    words: bool = False
    format: str = "json"
    num_results: int = 1
    decode: DecodeOptions = DecodeOptions()


def _answer(request: Request, service: TranscriptionService) -> Answer:
    """The query parameters, each checked: a bad one is a 422 naming it and what it takes."""
    query = request.query_params
    unknown = sorted(set(query) - set(QUERY_PARAMETERS))
    if unknown:
        raise _bad_parameter(f"unknown query parameter {unknown[0]!r}; use {QUERY_PARAMETERS}")
    words = query.get("words", "false").lower()
    if words not in TRUE_WORDS + FALSE_WORDS:
        raise _bad_parameter(f"words={words[:32]!r}: use true or false")
    fmt = query.get("format", "json").lower()
    if fmt not in ("json", *SUBTITLE_FORMATS):
        raise _bad_parameter(f"format={fmt[:32]!r}: use json, {', '.join(SUBTITLE_FORMATS)}")
    text = query.get("num_results", "1")
    if not text.isdigit() or not 1 <= int(text) <= MAX_RESULTS:
        raise _bad_parameter(f"num_results={text[:32]!r}: use a whole number 1-{MAX_RESULTS}")
    hot_words = None
    if query.get("hot_words"):
        try:
            specs = [spec for spec in query["hot_words"].split(",") if spec.strip()]
            hot_words = parse_hot_words(specs, service.model.metadata.alphabet)
            service.model.decoder.hot_words.with_extra(hot_words)  # greedy refuses any
        except ConfigError as e:
            raise _bad_parameter(f"hot_words: {e}") from None
    return Answer(words in TRUE_WORDS, fmt, int(text), DecodeOptions(int(text), hot_words))


def _bad_parameter(detail: str) -> ApiError:
    return ApiError(422, "invalid_parameter", detail)


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
async def transcribe(request: Request) -> Any:
    """A WAV file (any PCM or float encoding, rate and channel count, any length up to the
    server's limit) -> its transcript; `?words=true`, `?format=srt|vtt`, `?num_results=N`,
    `?hot_words=WORD:BOOST,...` ask for more (docs/serving.md).

    Send it raw with `Content-Type: audio/wav` or as multipart field `audio`.
    """
    service = _service(request)
    answer = _answer(request, service)
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
            return await _transcribe_body(request, service, media_type, limit, answer)
    except OverloadedError as e:
        raise await _refuse_overloaded(request, limit, str(e)) from e


async def _transcribe_body(
    request: Request, service: TranscriptionService, media_type: str, limit: int, answer: Answer
) -> Any:
    form = None
    try:
        if media_type == MULTIPART_MEDIA_TYPE:
            form, field = await _read_multipart_audio(request, limit)
            wav, name = field.file, field.filename or AUDIO_FIELD
        else:
            wav, name = await _spool_wav_body(request, limit), "request body"
    except _BodyTooLargeError:
        raise _too_large(limit, "over the limit") from None
    try:
        return await _answer_with(request, service, wav, name, answer)
    finally:
        if form is not None:
            await form.close()
        else:
            wav.close()


async def _answer_with(
    request: Request, service: TranscriptionService, wav: IO[bytes], name: str, answer: Answer
) -> Any:
    if _size(wav) == 0:
        raise ApiError(400, "invalid_audio", "the audio is empty (0 bytes); send a WAV file")
    try:
        result = await service.transcribe(
            wav, name, lambda: _wait_for_disconnect(request), answer.decode
        )
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
    if answer.format in SUBTITLE_FORMATS:
        return Response(
            subtitles(result.result.words, answer.format), media_type=MEDIA_TYPES[answer.format]
        )
    return result.to_dict(words=answer.words, alternatives=answer.num_results > 1)


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
