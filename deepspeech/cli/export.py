"""`deepspeech export`: the trained checkpoint as a self-describing ONNX model, and with
`--register` as one deployable MLflow version (the model, its decoder settings and LM).

A thin command over `deepspeech.export.pipeline.export_model` then
`deepspeech.registry.publish.publish_bundle` (TensorFlow and MLflow, imported when the command
runs, so `--help` stays fast). Its decoder options are `DecoderConfig`'s own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from deepspeech.cli.options import settings_options
from deepspeech.config import build_settings, keys_of
from deepspeech.decoding.decoders import DecoderConfig
from deepspeech.export.config import ExportConfig
from deepspeech.registry.decoder import PACKED_DECODER_KEYS, bundle_decoder, export_tracking_uri
from deepspeech.runtime.graph import STREAM_GRAPH

if TYPE_CHECKING:
    from deepspeech.export.pipeline import ExportResult


@settings_options(DecoderConfig, only=PACKED_DECODER_KEYS)
@settings_options(ExportConfig)
def export(**settings: Any) -> None:
    """Export a trained checkpoint to a self-describing ONNX model for onnxruntime.

    Converts the BiRNN with tf2onnx (fused LSTM, dynamic batch and time), wires the lengths
    input in so padding never changes answers, and writes alphabet, feature settings, run id,
    commit and test WER into the model's metadata. The export is checked against the Keras
    model on real utterances and fails (nothing written) if they differ by more than 1e-3;
    with `--quantize int8` the int8 model is then checked by WER on the same utterances.

    `--register NAME` then logs one deployable into the training run and registers it: an
    MLflow pyfunc (WAV bytes in, text and timed words out) holding the model, the decoder
    settings and, with `--lm`, the LM, decoded by beam search with `--alpha`/`--beta` or the
    weights of an `lm tune` run (`--decoder-from`); `--alias` points e.g. `production` at it.
    """
    # Bad options, and a --decoder-from run without tuned weights, fail before TensorFlow loads.
    config = build_settings(ExportConfig, keys_of(ExportConfig, settings))
    decoder = bundle_decoder(config, keys_of(DecoderConfig, settings))
    from deepspeech.export.pipeline import export_model  # TensorFlow, tf2onnx

    result = export_model(config)
    _report(result)
    if config.register:
        from deepspeech.registry.publish import publish_bundle  # MLflow

        registered = publish_bundle(
            result.output,
            result.metadata,
            decoder,
            name=config.register,
            alias=config.alias,
            tracking_uri=export_tracking_uri(config),
            decoder_from=config.decoder_from,
        )
        aliased = f" ({registered.alias_uri})" if registered.alias_uri else ""
        typer.echo(f"registered: {registered.uri}{aliased}, decoder {_decoder_line(decoder)}")


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


def _decoder_line(decoder: DecoderConfig) -> str:
    """The packed decoder in a few words."""
    if decoder.decoder != "beam":
        return "greedy"
    lm = f" with {decoder.lm_path.name}" if decoder.lm_path else ""
    return f"beam {decoder.beam_width}{lm}, alpha {decoder.alpha:g}, beta {decoder.beta:g}"
