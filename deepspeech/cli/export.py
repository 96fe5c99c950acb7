"""`deepspeech export`: the trained checkpoint as a self-describing ONNX model.

A thin command over `deepspeech.export.pipeline.export_model` (TensorFlow, imported when the
command runs, so `--help` stays fast).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from deepspeech.cli.options import settings_options
from deepspeech.config import build_settings
from deepspeech.export.config import ExportConfig
from deepspeech.runtime.graph import STREAM_GRAPH

if TYPE_CHECKING:
    from deepspeech.export.pipeline import ExportResult


@settings_options(ExportConfig)
def export(**settings: Any) -> None:
    """Export a trained checkpoint to a self-describing ONNX model for onnxruntime.

    Converts the BiRNN with tf2onnx (fused LSTM, dynamic batch and time), wires the lengths
    input in so padding never changes answers, and writes alphabet, feature settings, run id,
    commit and test WER into the model's metadata. The export is checked against the Keras
    model on real utterances and fails (nothing written) if they differ by more than 1e-3;
    with `--quantize int8` the int8 model is then checked by WER on the same utterances.
    """
    config = build_settings(ExportConfig, settings)  # a bad option fails before TensorFlow loads
    from deepspeech.export.pipeline import export_model  # TensorFlow, tf2onnx

    result = export_model(config)
    _report(result)


def _report(result: ExportResult) -> None:
    """What was written and how it was checked, a line each."""
    from deepspeech.export.parity import PARITY_TOLERANCE, STREAM_PARITY_TOLERANCE

    meta = result.metadata
    streaming = meta.graph == STREAM_GRAPH
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
