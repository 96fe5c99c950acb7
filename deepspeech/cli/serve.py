"""`deepspeech transcribe` and `deepspeech serve`: an exported model turned into text.

Thin commands over `serving` (onnxruntime, no TensorFlow), so a transcript from the command
line and one from the server come from the same code. Their options are the settings of
`serving.settings.ServerSettings` and `deepspeech.decoding.decoders.DecoderConfig`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer

from deepspeech.cli.console import progress_bar
from deepspeech.cli.options import settings_options
from deepspeech.config import build_settings, keys_of
from deepspeech.data.manifest import read_manifests
from deepspeech.decoding.decoders import DecoderConfig
from deepspeech.parallel import limit_blas_threads
from deepspeech.runtime.session import Placement
from deepspeech.training.report import calculate_report, make_sample
from serving.inference import FileTranscript, open_model, transcribe_files
from serving.settings import ServerSettings
from serving.stream import DEFAULT_CHUNK_MS, SpeechModel, stream_files

PROGRESS_MIN_FILES = 10  # fewer files finish before a progress bar would tell anything
Transcribe = Callable[[list[str], Callable[[int], None]], Iterator[FileTranscript]]


@settings_options(DecoderConfig)
@settings_options(ServerSettings, only=("model", "tracking_uri", "device"))
def transcribe(
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
    ] = DEFAULT_CHUNK_MS,
    **settings: Any,
) -> None:
    """Transcribe WAV files with an exported model: one `path<TAB>transcript` line per file.

    Bad files get a one-line error on stderr each; the others are still transcribed, and the
    exit code is 2 if any file failed. Uses the server's inference code (onnxruntime).
    """
    if not files and not manifest:
        raise typer.BadParameter("give WAV files or --manifest CSV", param_hint="FILES")
    if not settings["model"]:
        raise typer.BadParameter("give the model to transcribe with", param_hint="--model")
    if partials and not stream:
        raise typer.BadParameter("--partials needs --stream", param_hint="--partials")
    limit_blas_threads()
    decoding = build_settings(DecoderConfig, keys_of(DecoderConfig, settings))
    if stream:
        model: Any = SpeechModel(
            settings["model"], tracking_uri=settings["tracking_uri"], decoder=decoding
        )
        run = _streaming_run(model, chunk_ms, partials)
    else:
        model = open_model(
            settings["model"],
            tracking_uri=settings["tracking_uri"],
            placement=Placement(device=settings["device"] or "auto"),
            decoder=decoding,
        )
        run = _offline_run(model, batch_size)
    references: dict[str, str] = {}
    if manifest:
        utterances = read_manifests(manifest, model.metadata.alphabet)
        references = {str(u.wav_path): u.transcript for u in utterances}
    paths = [str(f) for f in files or []] + list(references)
    results, failed = _transcribe_paths(run, paths, references, json_output)
    if manifest:
        _print_corpus_report(manifest, results, references, report_count, json_output)
    if failed:
        typer.echo(f"error: {failed} of {len(paths)} files could not be transcribed", err=True)
        raise typer.Exit(2)


def _offline_run(model: Any, batch_size: int) -> Transcribe:
    def run(paths: list[str], advance: Callable[[int], None]) -> Iterator[FileTranscript]:
        return transcribe_files(model, paths, batch_size=batch_size, progress=advance)

    return run


def _streaming_run(model: SpeechModel, chunk_ms: float, partials: bool) -> Transcribe:
    def on_partial(path: str, text: str) -> None:
        typer.echo(f"{path}\t{text}", err=True)

    def run(paths: list[str], advance: Callable[[int], None]) -> Iterator[FileTranscript]:
        return stream_files(
            model,
            paths,
            chunk_ms=chunk_ms,
            on_partial=on_partial if partials else None,
            progress=advance,
        )

    return run


def _transcribe_paths(
    run: Transcribe, paths: list[str], references: dict[str, str], as_json: bool
) -> tuple[list[FileTranscript], int]:
    """Print each file's transcript (a manifest's only as JSON) or error: (results, failures)."""
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
            elif result.path not in references or as_json:
                _print_transcript(result, references.get(result.path), as_json)
            results.append(result)
    return results, failed


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


@settings_options(ServerSettings)
def serve(**settings: Any) -> None:
    """Serve the model over HTTP: POST /v1/transcribe, GET /healthz, /v1/model, /metrics, /.

    Requests arriving together are run as one batch. With --stream-model, WebSocket
    /v1/stream transcribes live PCM16 audio. Stops cleanly on Ctrl-C or SIGTERM.
    """
    from serving.app import serve as run_server  # FastAPI and uvicorn: only `serve` needs them

    run_server(build_settings(ServerSettings, settings))
