"""FastAPI app factory and `serve`: the model opens in `lifespan`, before the first request.

`create_app(settings)` is all a test or an ASGI server needs; `serve(settings)` is what
`deepspeech serve` runs. It opens the model before binding the port, so a wrong `--model`
fails in a second with one line instead of after uvicorn has started; the lifespan then uses
that session. uvicorn turns SIGINT/SIGTERM into a graceful shutdown: in-flight requests finish,
then the lifespan closes the batcher and the feature threads.

With `workers` > 1, uvicorn starts that many processes on one socket (the kernel spreads the
connections); each builds its app with `app_from_environment`, from the settings the parent
put in the environment, and opens its own onnxruntime session. Their Prometheus metrics meet
in a fresh directory (multiprocess mode), so `/metrics` counts every worker's requests.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import pickle
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from deepspeech import __version__
from deepspeech.logs import configure_logging
from deepspeech.parallel import limit_blas_threads
from serving.inference import OfflineRecognizer, open_model
from serving.metrics import (
    MULTIPROCESS_DIR_ENV,
    MetricsMiddleware,
    ServerMetrics,
    mark_worker_stopped,
)
from serving.routes import STATIC_DIR, install_error_handlers, router
from serving.service import TranscriptionService
from serving.settings import ServerSettings
from serving.stream import SpeechModel as StreamSpeechModel
from serving.stream_server import open_stream_model, stream_lifespan
from serving.stream_server import router as stream_router

logger = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_SECONDS = 10  # in-flight requests get this long after SIGTERM
SETTINGS_ENV = "DEEPSPEECH_SERVE_SETTINGS"  # the parent's settings, for worker processes


def open_settings_model(settings: ServerSettings) -> OfflineRecognizer:
    """The model the settings name, on the device and threads they ask for."""
    return open_model(
        settings.model,
        tracking_uri=settings.tracking_uri,
        placement=settings.placement,
        decoder=settings.decoder,
    )


def create_app(
    settings: ServerSettings,
    model: OfflineRecognizer | None = None,
    stream_model: StreamSpeechModel | None = None,
) -> FastAPI:
    """The server app; `model` (and `stream_model`, when the settings name one) are opened in
    the lifespan unless open ones are handed in."""
    metrics = ServerMetrics(settings.max_batch)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # numpy's BLAS threads made the MFCC 5x slower on 2 cores when they competed with
        # the feature threads and onnxruntime; one BLAS thread per caller is fastest.
        limit_blas_threads()
        loaded = model or await asyncio.to_thread(open_settings_model, settings)
        if stream_model is None and settings.stream.model:
            opened = await asyncio.to_thread(open_stream_model, settings)
        else:
            opened = stream_model
        service = TranscriptionService(loaded, settings, metrics)
        service.start()
        app.state.service = service
        logger.info(
            "serving %s (%s) on http://%s:%d, batches up to %d",
            loaded.model_id,
            ", ".join(loaded.providers),
            settings.host,
            settings.port,
            settings.max_batch,
        )
        try:
            async with stream_lifespan(app, settings.stream, opened):
                yield
        finally:
            app.state.service = None
            await service.close()
            mark_worker_stopped(os.getpid())
            logger.info("stopped")

    app = FastAPI(
        title="DeepSpeech",
        version=__version__,
        summary="Speech to text with an exported DeepSpeech model (onnxruntime).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.service = None
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(stream_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def app_from_environment() -> FastAPI:
    """A worker process's app (uvicorn factory): the settings `serve` left in the
    environment; the model opens in the worker's own lifespan."""
    configure_logging(debug=False)
    settings = pickle.loads(base64.b64decode(os.environ[SETTINGS_ENV]))
    return create_app(settings)


def serve(settings: ServerSettings) -> None:
    """Open the model, then serve HTTP until SIGINT/SIGTERM (blocking)."""
    import uvicorn

    options = {
        "host": settings.host,
        "port": settings.port,
        "log_level": logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower(),
        "access_log": False,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
    }
    model = open_settings_model(settings)  # fails fast, in one line, on a bad model
    stream_model = open_stream_model(settings)  # likewise, when --stream-model names one
    if settings.workers == 1:
        uvicorn.run(create_app(settings, model, stream_model), **options)
        return
    del model, stream_model  # each worker opens its own sessions
    with tempfile.TemporaryDirectory(prefix="deepspeech-metrics-") as metrics_dir:
        os.environ[MULTIPROCESS_DIR_ENV] = metrics_dir
        os.environ[SETTINGS_ENV] = base64.b64encode(pickle.dumps(settings)).decode()
        logger.info("starting %d worker processes", settings.workers)
        uvicorn.run(
            "serving.app:app_from_environment", factory=True, workers=settings.workers, **options
        )
