"""`deepspeech export`: the trained checkpoint as a self-describing ONNX model.

A thin command over `deepspeech.model.export.export_model`. `transcribe` and `serve` live in
`serving.cli` (onnxruntime, no TensorFlow) and join the `deepspeech` command through the
`deepspeech.commands` entry point, so this package never imports `serving`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


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
    quantize: Annotated[
        str | None,
        typer.Option(
            help="int8: onnxruntime dynamic quantization (int8 weights, DynamicQuantizeLSTM); "
            "the export fails if greedy WER on the parity utterances rises by more than "
            "0.5 point. [default: fp32]"
        ),
    ] = None,
) -> None:
    """Export a trained checkpoint to a self-describing ONNX model for onnxruntime.

    Converts the BiRNN with tf2onnx (fused LSTM, dynamic batch and time), wires the lengths
    input in so padding never changes answers, and writes alphabet, feature settings, run id,
    commit and test WER into the model's metadata. The export is checked against the Keras
    model on real utterances and fails (nothing written) if they differ by more than 1e-3;
    with `--quantize int8` the int8 model is then checked by WER on the same utterances.
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
        quantize=quantize,
    )
    meta = result.metadata
    typer.echo(
        f"wrote {result.output} ({result.output.stat().st_size / 1e6:.1f} MB, opset "
        f"{meta.opset}, {meta.quantization}, {result.lstm_layout}) as "
        f"{meta.model_name}/{meta.model_version} in {result.seconds:.1f} s"
    )
    typer.echo(
        f"parity: max |Keras - onnxruntime| = {result.parity_max_diff:.2e} "
        f"(limit {STREAM_PARITY_TOLERANCE if streaming else PARITY_TOLERANCE:g}) on "
        f"{result.parity_utterances} utterances "
        f"of {result.parity_source}"
    )
    check = result.quantization_check
    if check is not None:
        typer.echo(
            f"int8: greedy WER {check.int8_wer:.2f}% against fp32 {check.fp32_wer:.2f}% "
            f"({check.increase:+.2f} points) on the {check.utterances} parity utterances"
        )
    if result.registered_uri:
        typer.echo(f"registered: {result.registered_uri}")
