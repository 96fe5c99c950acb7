"""`deepspeech transcribe` and `deepspeech serve`: an exported model turned into text.

Thin commands over `serving` (onnxruntime, no TensorFlow), so a transcript from the command
line and one from the server come from the same code. They join the `deepspeech` command
through the `deepspeech.commands` entry point (`register`), so the dependency goes one way:
`serving` imports `deepspeech`, never the reverse. Nothing here imports onnxruntime at module
level: `deepspeech --help` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from deepspeech.cli.lm import (
    AlphaOption,
    BeamWidthOption,
    BetaOption,
    DecoderOption,
    LmOption,
    decoder_config,
)
from deepspeech.decoding.decoders import DEFAULT_ALPHA, DEFAULT_BEAM_WIDTH, DEFAULT_BETA
from serving.settings import (
    DEFAULT_BATCH_WAIT_MS,
    DEFAULT_HOST,
    DEFAULT_MAX_AUDIO_SECONDS,
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_BODY_MB,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_QUEUE,
    DEFAULT_PORT,
    DEFAULT_REQUEST_TIMEOUT_S,
    DEFAULT_THREADS,
    DEFAULT_WORKERS,
    ServerSettings,
)
from serving.stream_server import (
    DEFAULT_IDLE_SECONDS,
    DEFAULT_MAX_MESSAGE_KB,
    DEFAULT_MAX_STREAM_SECONDS,
    DEFAULT_MAX_STREAMS,
)

if TYPE_CHECKING:
    from serving.inference import FileTranscript

PROGRESS_MIN_FILES = 10  # fewer files finish before a progress bar would tell anything

ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        help="An exported model: MODEL.onnx, or models:/NAME/VERSION from the MLflow registry.",
        show_default=False,
    ),
]
TrackingUriOption = Annotated[
    str | None,
    typer.Option(
        help="MLflow tracking URI for models:/ (else $MLFLOW_TRACKING_URI, else "
        "sqlite:///mlflow.db)."
    ),
]
DeviceOption = Annotated[
    str,
    typer.Option(
        help="auto (CUDA when it really works, else CPU), cpu, or cuda (where CUDA does not "
        "work: a warning, then CPU; GET /v1/model lists the providers really used)."
    ),
]


def register(app: typer.Typer) -> None:
    """Add `transcribe` and `serve` to the `deepspeech` command (entry point
    `deepspeech.commands`)."""
    app.command("transcribe")(transcribe)
    app.command("serve")(serve)


def transcribe(
    model: ModelOption,
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="WAV files (any PCM rate or channel count).", show_default=False),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="JSON lines: one object per file.")
    ] = False,
    manifest: Annotated[
        str | None,
        typer.Option(
            help="Transcribe a manifest's files (CSV(s), comma-separated) and print corpus "
            "WER and CER against its transcripts."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Utterances per model call.")] = 8,
    report_count: Annotated[
        int, typer.Option(min=0, help="With --manifest: worst transcripts to show.")
    ] = 5,
    tracking_uri: TrackingUriOption = None,
    device: DeviceOption = "auto",
    decoder: DecoderOption = "greedy",
    beam_width: BeamWidthOption = DEFAULT_BEAM_WIDTH,
    lm: LmOption = None,
    alpha: AlphaOption = DEFAULT_ALPHA,
    beta: BetaOption = DEFAULT_BETA,
    stream: Annotated[
        bool,
        typer.Option(
            "--stream",
            help="Feed each file in --chunk-ms pieces through the streaming path "
            "(serving.stream; --model is a `deepspeech export --streaming` graph); the final "
            "transcript is printed.",
        ),
    ] = False,
    partials: Annotated[
        bool,
        typer.Option("--partials", help="With --stream: print each partial transcript on stderr."),
    ] = False,
    chunk_ms: Annotated[
        float, typer.Option(min=1.0, help="With --stream: milliseconds of audio per feed.")
    ] = 20.0,
) -> None:
    """Transcribe WAV files with an exported model: one `path<TAB>transcript` line per file.

    Bad files get a one-line error on stderr each; the others are still transcribed, and the
    exit code is 2 if any file failed. Uses the server's inference code (onnxruntime).
    """
    from deepspeech.cli.console import progress_bar
    from deepspeech.parallel import limit_blas_threads
    from serving.inference import open_model, transcribe_files

    if not files and not manifest:
        raise typer.BadParameter("give WAV files or --manifest CSV", param_hint="FILES")
    if partials and not stream:
        raise typer.BadParameter("--partials needs --stream", param_hint="--partials")
    limit_blas_threads()
    decoding = decoder_config(decoder, beam_width, lm, alpha, beta)
    if stream:
        from serving.stream import SpeechModel as StreamingModel
        from serving.stream import stream_files

        speech_model: Any = StreamingModel(model, tracking_uri=tracking_uri, decoder=decoding)

        def on_partial(path: str, text: str) -> None:
            typer.echo(f"{path}\t{text}", err=True)

        def run(paths: list[str], advance: Callable[[int], None]) -> Iterator[FileTranscript]:
            return stream_files(
                speech_model,
                paths,
                chunk_ms=chunk_ms,
                on_partial=on_partial if partials else None,
                progress=advance,
            )
    else:
        speech_model = open_model(model, tracking_uri=tracking_uri, device=device, decoder=decoding)

        def run(paths: list[str], advance: Callable[[int], None]) -> Iterator[FileTranscript]:
            return transcribe_files(speech_model, paths, batch_size=batch_size, progress=advance)

    references: dict[str, str] = {}
    paths = [str(f) for f in files or []]
    if manifest:
        from deepspeech.data.manifest import read_manifests

        utterances = read_manifests(manifest, speech_model.metadata.alphabet)
        references = {str(u.wav_path): u.transcript for u in utterances}
        paths += list(references)
    results: list[FileTranscript] = []
    failed = 0
    with (
        progress_bar("transcribing", len(paths))
        if len(paths) >= PROGRESS_MIN_FILES
        else nullcontext(lambda n=1, info=None: None)
    ) as advance:
        for result in run(paths, advance):
            if result.error is not None:
                failed += 1
                typer.echo(f"error: {result.error}", err=True)
            elif not (manifest and result.path in references) or json_output:
                _print_transcript(result, references.get(result.path), json_output)
            results.append(result)
    if manifest:
        _print_corpus_report(manifest, results, references, report_count, json_output)
    if failed:
        typer.echo(f"error: {failed} of {len(paths)} files could not be transcribed", err=True)
        raise typer.Exit(2)


def _print_transcript(result: FileTranscript, reference: str | None, as_json: bool) -> None:
    if not as_json:
        typer.echo(f"{result.path}\t{result.text}")
        return
    record = {"path": result.path, "text": result.text, "duration_s": round(result.duration_s, 3)}
    if reference is not None:
        record["reference"] = reference
    typer.echo(json.dumps(record, ensure_ascii=False))


def _print_corpus_report(
    manifest: str,
    results: list[FileTranscript],
    references: dict[str, str],
    report_count: int,
    as_json: bool,
) -> None:
    """Corpus WER/CER of the manifest's files (2017 mean per-sample WER beside it)."""
    from deepspeech.training.report import calculate_report, make_sample

    samples = [
        make_sample(r.path, references[r.path], r.text or "", 0.0)
        for r in results
        if r.error is None and r.path in references
    ]
    if not samples:
        return
    report = calculate_report(manifest, samples, report_count)
    if as_json:
        summary = {
            "manifest": manifest,
            "n_samples": report.n_samples,
            "wer": report.wer,
            "cer": report.cer,
            "mean_wer": report.mean_wer,
        }
        typer.echo(json.dumps({"summary": summary}))
        return
    for sample in report.worst_samples:
        typer.echo(f"WER {sample.wer:.3f}, CER {sample.cer:.3f}  {sample.wav_filename}")
        typer.echo(f"   - src: {sample.original!r}")
        typer.echo(f"   - res: {sample.result!r}")
    typer.echo(
        f"{manifest}: {report.n_samples} utterances - WER {report.wer:.2%}, CER {report.cer:.2%} "
        f"(mean per-sample WER {report.mean_wer:.2%})"
    )


def serve(
    model: ModelOption,
    host: Annotated[
        str, typer.Option(help="Address to bind; anything but loopback exposes the server.")
    ] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = DEFAULT_PORT,
    max_batch: Annotated[
        int, typer.Option(min=1, help="Utterances per model call (micro-batching); 1 disables.")
    ] = DEFAULT_MAX_BATCH,
    batch_wait_ms: Annotated[
        float, typer.Option(min=0.0, help="How long a request waits for others to batch with.")
    ] = DEFAULT_BATCH_WAIT_MS,
    max_audio_seconds: Annotated[
        float, typer.Option(min=0.0, help="Longer audio is refused with 413.")
    ] = DEFAULT_MAX_AUDIO_SECONDS,
    max_body_mb: Annotated[
        float, typer.Option(min=0.0, help="Larger request bodies are refused with 413.")
    ] = DEFAULT_MAX_BODY_MB,
    threads: Annotated[
        int,
        typer.Option(
            min=0,
            help="onnxruntime threads per batch; 0 = the usable CPUs (fastest for one request "
            "at a time on an otherwise idle machine).",
        ),
    ] = DEFAULT_THREADS,
    max_in_flight: Annotated[
        int,
        typer.Option(
            min=1,
            help="Transcriptions admitted at once; more get 503 with Retry-After before their "
            "body is read. Bounds memory: about idle + this x --max-body-mb + the feature "
            "threads' work.",
        ),
    ] = DEFAULT_MAX_IN_FLIGHT,
    max_queue: Annotated[
        int, typer.Option(min=1, help="Featurized requests waiting for the model; more get 503.")
    ] = DEFAULT_MAX_QUEUE,
    request_timeout_s: Annotated[
        float,
        typer.Option(min=0.0, help="A transcription not answered by then gets 503 and is dropped."),
    ] = DEFAULT_REQUEST_TIMEOUT_S,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Server processes on the one port, each with its own onnxruntime session; "
            "/metrics adds up all of them.",
        ),
    ] = DEFAULT_WORKERS,
    tracking_uri: TrackingUriOption = None,
    device: DeviceOption = "auto",
    device_id: Annotated[int, typer.Option(min=0, help="CUDA device (GPU) number.")] = 0,
    gpu_mem_limit_mb: Annotated[
        float,
        typer.Option(min=0.0, help="Cap on onnxruntime's CUDA memory arena in MB; 0 = no cap."),
    ] = 0.0,
    decoder: DecoderOption = "greedy",
    beam_width: BeamWidthOption = DEFAULT_BEAM_WIDTH,
    lm: LmOption = None,
    alpha: AlphaOption = DEFAULT_ALPHA,
    beta: BetaOption = DEFAULT_BETA,
    stream_model: Annotated[
        str | None,
        typer.Option(
            help="A streaming model (`deepspeech export --streaming`, or models:/NAME/VERSION) "
            "served on the WebSocket /v1/stream; without it /v1/stream refuses with 1003."
        ),
    ] = None,
    max_streams: Annotated[
        int, typer.Option(min=1, help="Open streams; more are refused with 1013.")
    ] = DEFAULT_MAX_STREAMS,
    max_stream_seconds: Annotated[
        float, typer.Option(min=0.0, help="Audio per stream; more closes it with 1009.")
    ] = DEFAULT_MAX_STREAM_SECONDS,
    stream_idle_seconds: Annotated[
        float,
        typer.Option(min=0.0, help="A stream with no message for this long is closed (1013)."),
    ] = DEFAULT_IDLE_SECONDS,
    max_message_kb: Annotated[
        float, typer.Option(min=0.0, help="One stream message; larger closes it with 1009.")
    ] = DEFAULT_MAX_MESSAGE_KB,
) -> None:
    """Serve the model over HTTP: POST /v1/transcribe, GET /healthz, /v1/model, /metrics, /.

    Requests arriving together are run as one batch. With --stream-model, WebSocket
    /v1/stream transcribes live PCM16 audio. Stops cleanly on Ctrl-C or SIGTERM.
    """
    from serving.app import serve as run_server
    from serving.stream_server import StreamSettings

    run_server(
        ServerSettings(
            model=model,
            host=host,
            port=port,
            max_batch=max_batch,
            batch_wait_ms=batch_wait_ms,
            max_audio_seconds=max_audio_seconds,
            max_body_mb=max_body_mb,
            max_in_flight=max_in_flight,
            max_queue=max_queue,
            request_timeout_s=request_timeout_s,
            workers=workers,
            tracking_uri=tracking_uri,
            device=device,
            device_id=device_id,
            gpu_mem_limit_mb=gpu_mem_limit_mb,
            threads=threads,
            decoder=decoder_config(decoder, beam_width, lm, alpha, beta),
            stream=StreamSettings(
                model=stream_model,
                max_streams=max_streams,
                max_stream_seconds=max_stream_seconds,
                idle_seconds=stream_idle_seconds,
                max_message_kb=max_message_kb,
            ),
        )
    )
