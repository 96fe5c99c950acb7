"""`deepspeech transcribe` and `deepspeech serve`: an exported model turned into text.

Thin commands over `serving` (onnxruntime, no TensorFlow), so a transcript from the command
line and one from the server come from the same code. Their options are the settings of
`serving.settings.ServerSettings` and `deepspeech.decoding.decoders.DecoderConfig`. A model
registered as a bundle (`export --register --lm`) decodes with its packed LM and weights;
each decoder option given on the command line overrides its packed value.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from deepspeech.audio import read_wav_info
from deepspeech.cli.console import audio_progress_bar
from deepspeech.cli.options import settings_options
from deepspeech.config import build_settings, keys_of
from deepspeech.data.manifest import read_manifests
from deepspeech.decoding.decoders import DecoderConfig
from deepspeech.decoding.subtitles import SUBTITLE_FORMATS, subtitles
from deepspeech.errors import DeepSpeechError
from deepspeech.parallel import limit_blas_threads
from deepspeech.runtime.session import Placement
from deepspeech.training.report import calculate_report, make_sample
from deepspeech.vad import VadSettings
from serving.inference import (
    DecodeOptions,
    decoder_settings,
    open_model,
    resolve_model_source,
)
from serving.recordings import FileTranscript, transcribe_files, transcript_json
from serving.settings import ServerSettings
from serving.stream import DEFAULT_CHUNK_MS, SpeechModel, stream_files

PROGRESS_MIN_SECONDS = 30.0  # less audio is done in about a second: a bar would tell nothing
OutputFormat = Literal["text", "json", "srt", "vtt"]
# run(paths, file_done(seconds), audio_read(seconds)) -> results in order
Transcribe = Callable[
    [list[str], Callable[[float], None], Callable[[float], None]], Iterator[FileTranscript]
]


@dataclass(frozen=True)
class Output:
    """How `transcribe` prints: the format, N-best, and where subtitle files go."""

    format: OutputFormat
    num_results: int
    output_dir: Path | None


@settings_options(DecoderConfig)
@settings_options(VadSettings)
@settings_options(ServerSettings, only=("model", "tracking_uri", "device"))
def transcribe(
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="WAV files (any PCM rate or channel count).", show_default=False),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="text: `path<TAB>transcript` lines; json: one object per file with "
            "confidence, timed words (and segments for recordings cut at pauses); srt or "
            "vtt: subtitles, on stdout for one file, else one file each in --output-dir.",
        ),
    ] = "text",
    output_dir: Annotated[
        Path | None,
        typer.Option(help="With --format srt|vtt: write DIR/<file name>.srt|.vtt per file."),
    ] = None,
    num_results: Annotated[
        int,
        typer.Option(
            min=1, max=100, help="With --format json: N-best alternatives per clip (beam decoder)."
        ),
    ] = 1,
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
    if partials and not stream:
        raise typer.BadParameter("--partials needs --stream", param_hint="--partials")
    output = _output(json_output, output_format, output_dir, num_results, len(files or []))
    limit_blas_threads()
    model, run = _open(settings, stream, chunk_ms, partials, num_results, batch_size)
    references: dict[str, str] = {}
    if manifest:
        utterances = read_manifests(manifest, model.metadata.alphabet)
        references = {str(u.wav_path): u.transcript for u in utterances}
    paths = [str(f) for f in files or []] + list(references)
    results, failed = _transcribe_paths(run, paths, references, output)
    if manifest:
        as_json = output.format == "json"
        _print_corpus_report(manifest, results, references, report_count, as_json)
    if failed:
        typer.echo(f"error: {failed} of {len(paths)} files could not be transcribed", err=True)
        raise typer.Exit(2)


def _output(
    json_output: bool, fmt: str, output_dir: Path | None, num_results: int, n_files: int
) -> Output:
    """The output settings, checked together: one-line errors for combinations that cannot be."""
    if json_output:
        if fmt not in ("text", "json"):
            raise typer.BadParameter(f"--json and --format {fmt} disagree", param_hint="--json")
        fmt = "json"
    if fmt not in ("text", "json", *SUBTITLE_FORMATS):
        raise typer.BadParameter(
            f"{fmt!r} is not one of text, json, {', '.join(SUBTITLE_FORMATS)}",
            param_hint="--format",
        )
    if output_dir is not None and fmt not in SUBTITLE_FORMATS:
        raise typer.BadParameter(
            "--output-dir goes with --format srt|vtt", param_hint="--output-dir"
        )
    if fmt in SUBTITLE_FORMATS and output_dir is None and n_files != 1:
        raise typer.BadParameter(
            f"--format {fmt} prints one file's subtitles; for several give --output-dir DIR",
            param_hint="--output-dir",
        )
    if num_results > 1 and fmt != "json":
        raise typer.BadParameter(
            "--num-results goes with --format json", param_hint="--num-results"
        )
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
    return Output(fmt, num_results, output_dir)  # type: ignore[arg-type]


def _open(
    settings: dict[str, Any],
    stream: bool,
    chunk_ms: float,
    partials: bool,
    num_results: int,
    batch_size: int,
) -> tuple[Any, Transcribe]:
    """The model (streaming or whole-utterance) and the function that runs it over files."""
    if not settings["model"]:
        raise typer.BadParameter("give the model to transcribe with", param_hint="--model")
    given = keys_of(DecoderConfig, settings)
    if not stream:  # a bundle's packed decoder, under the options given
        given = decoder_settings(
            resolve_model_source(settings["model"], settings["tracking_uri"]), given
        )
    decoding = build_settings(DecoderConfig, given)
    if stream:
        model: Any = SpeechModel(
            settings["model"], tracking_uri=settings["tracking_uri"], decoder=decoding
        )
        return model, _streaming_run(model, chunk_ms, partials, num_results)
    model = open_model(
        settings["model"],
        tracking_uri=settings["tracking_uri"],
        placement=Placement(device=settings["device"] or "auto"),
        decoder=decoding,
    )
    vad = build_settings(VadSettings, keys_of(VadSettings, settings))
    return model, _offline_run(model, batch_size, DecodeOptions(num_results), vad)


def _offline_run(
    model: Any, batch_size: int, options: DecodeOptions, vad: VadSettings
) -> Transcribe:
    def run(
        paths: list[str], file_done: Callable[[float], None], audio_read: Callable[[float], None]
    ) -> Iterator[FileTranscript]:
        return transcribe_files(
            model, paths, batch_size=batch_size, options=options, vad=vad, on_audio=audio_read
        )

    return run


def _streaming_run(
    model: SpeechModel, chunk_ms: float, partials: bool, num_results: int
) -> Transcribe:
    def on_partial(path: str, text: str) -> None:
        typer.echo(f"{path}\t{text}", err=True)

    def run(
        paths: list[str], file_done: Callable[[float], None], audio_read: Callable[[float], None]
    ) -> Iterator[FileTranscript]:
        return stream_files(
            model,
            paths,
            chunk_ms=chunk_ms,
            on_partial=on_partial if partials else None,
            num_results=num_results,
        )

    return run


def _transcribe_paths(
    run: Transcribe, paths: list[str], references: dict[str, str], output: Output
) -> tuple[list[FileTranscript], int]:
    """Print each file's transcript (a manifest's only as JSON) or error: (results, failures).

    The progress bar counts seconds of audio (headers read first), so an hour-long recording
    moves it as it is read, and a folder of clips clip by clip.
    """
    durations = [_duration(p) for p in paths]
    total = sum(durations)
    results: list[FileTranscript] = []
    failed = 0
    bar = audio_progress_bar("transcribing", total) if total >= PROGRESS_MIN_SECONDS else None
    with bar or nullcontext(lambda seconds: None) as done:
        read = [0.0]  # seconds of the current recording reported so far

        def audio_read(seconds: float) -> None:
            done(seconds - read[0])
            read[0] = seconds

        for result, seconds in zip(run(paths, done, audio_read), durations, strict=True):
            done(seconds - read[0])
            read[0] = 0.0
            if result.error is not None:
                failed += 1
                typer.echo(f"error: {result.error}", err=True)
            elif result.path not in references or output.format == "json":
                _print_transcript(result, references.get(result.path), output)
            results.append(result)
    return results, failed


def _duration(path: str) -> float:
    try:
        return read_wav_info(path).duration_seconds
    except DeepSpeechError:
        return 0.0  # the transcription reports the error


def _print_transcript(result: FileTranscript, reference: str | None, output: Output) -> None:
    if output.format == "text":
        typer.echo(f"{result.path}\t{result.text}")
    elif output.format == "json":
        record = transcript_json(result, words=True, alternatives=output.num_results > 1)
        record = {"path": result.path, **record}
        if reference is not None:
            record["reference"] = reference
        typer.echo(json.dumps(record, ensure_ascii=False))
    else:
        text = subtitles(result.words, output.format)
        if output.output_dir is None:
            typer.echo(text, nl=False)
        else:
            target = output.output_dir / f"{Path(result.path).stem}.{output.format}"
            target.write_text(text, encoding="utf-8")
            typer.echo(f"{result.path}\t{target}")


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

    server = build_settings(ServerSettings, settings)  # a bad option fails before the model
    location = resolve_model_source(server.model, server.tracking_uri)  # downloaded once
    if location.decoder is not None:  # a bundle: its packed decoder, under the options given
        packed = decoder_settings(location, keys_of(DecoderConfig, settings))
        server = build_settings(ServerSettings, {**settings, **packed})
    run_server(server)
