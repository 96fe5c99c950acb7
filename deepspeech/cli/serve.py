"""`deepspeech export`, `deepspeech transcribe` and `deepspeech serve`: the model after training.

Thin commands: `export` calls `deepspeech.model.export.export_model`; `transcribe` and `serve` use
`serving` (onnxruntime, no TensorFlow), so a transcript from the command line and one from the
server come from the same code.
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

if TYPE_CHECKING:
    from serving.inference import FileTranscript

# Defaults of `serving.settings`, repeated because importing it here would load onnxruntime
# for every `deepspeech` command; a test checks they agree.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_MAX_BATCH = 8
DEFAULT_BATCH_WAIT_MS = 5.0
DEFAULT_MAX_AUDIO_SECONDS = 60.0
DEFAULT_MAX_BODY_MB = 32.0
DEFAULT_THREADS = 1
# Defaults of `serving.stream_server` (onnxruntime too), repeated for the same reason.
DEFAULT_MAX_STREAMS = 64
DEFAULT_MAX_STREAM_SECONDS = 600.0
DEFAULT_IDLE_SECONDS = 20.0
DEFAULT_MAX_MESSAGE_KB = 256.0
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
    str, typer.Option(help="auto (CUDA when it really works, else CPU), cpu or cuda.")
]


def export(
    checkpoint_dir: Annotated[
        Path, typer.Option(help="A folder written by `deepspeech train`.", file_okay=False)
    ],
    output: Annotated[Path, typer.Option(help="The ONNX file to write.", dir_okay=False)],
    register: Annotated[
        str | None,
        typer.Option(
            help="Also log the model into the training run (mlflow.onnx) and register it as a "
            "new version of this name, served as models:/NAME/VERSION."
        ),
    ] = None,
    parity_files: Annotated[
        str | None,
        typer.Option(
            help="Manifest CSV(s) whose utterances check ONNX against Keras. "
            "[default: the run's test, else dev, else train manifest]"
        ),
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="MLflow tracking URI. [default: the training run's]"),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="Model name written into the file when not registering."),
    ] = None,
    opset: Annotated[int, typer.Option(min=17, help="ONNX opset.")] = 17,
    streaming: Annotated[
        bool,
        typer.Option(
            "--streaming",
            help="Write the streaming graph (unidirectional models): an MFCC chunk plus the "
            "carried context and LSTM state in, scores plus the new state out; what "
            "`transcribe --stream`, serving.stream and /v1/stream run. Checked chunk by chunk "
            "against the whole utterance (limit 1e-4 on logits).",
        ),
    ] = False,
) -> None:
    """Export a trained checkpoint to a self-describing ONNX model for onnxruntime.

    Converts the BiRNN with tf2onnx (fused LSTM, dynamic batch and time), wires the lengths
    input in so padding never changes answers, and writes alphabet, feature settings, run id,
    commit and test WER into the model's metadata. The export is checked against the Keras
    model on real utterances and fails (nothing written) if they differ by more than 1e-3.
    """
    from deepspeech.model.export import (
        PARITY_TOLERANCE,
        STREAM_PARITY_TOLERANCE,
        export_model,
    )

    result = export_model(
        checkpoint_dir,
        output,
        register=register,
        parity_files=parity_files,
        tracking_uri=tracking_uri,
        model_name=name,
        opset=opset,
        streaming=streaming,
    )
    meta = result.metadata
    typer.echo(
        f"wrote {result.output} ({result.output.stat().st_size / 1e6:.1f} MB, opset "
        f"{meta.opset}, {result.lstm_layout}) as {meta.model_name}/{meta.model_version} "
        f"in {result.seconds:.1f} s"
    )
    typer.echo(
        f"parity: max |Keras - onnxruntime| = {result.parity_max_diff:.2e} "
        f"(limit {STREAM_PARITY_TOLERANCE if streaming else PARITY_TOLERANCE:g}) on "
        f"{result.parity_utterances} utterances "
        f"of {result.parity_source}"
    )
    if result.registered_uri:
        typer.echo(f"registered: {result.registered_uri}")


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
    tracking_uri: TrackingUriOption = None,
    device: DeviceOption = "auto",
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
    from serving.settings import ServerSettings
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
            tracking_uri=tracking_uri,
            device=device,
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
