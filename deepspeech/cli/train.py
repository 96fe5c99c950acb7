"""`deepspeech train` and `deepspeech evaluate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from deepspeech.cli.console import progress_bar
from deepspeech.cli.data import FeatureCacheOption
from deepspeech.cli.options import settings_options
from deepspeech.config import build_settings
from deepspeech.data.cache import DEFAULT_FEATURE_CACHE, open_cached_set, read_manifests
from deepspeech.decoding.decoders import DecoderConfig
from deepspeech.decoding.pool import batch_decoder
from deepspeech.training.config import TrainConfig, build_train_config


@settings_options(TrainConfig)
def train(
    config: Annotated[
        Path | None,
        typer.Option(
            help=(
                "Experiment YAML (keys are these flags with underscores; 'extends: base.yaml' "
                "reads that file first); flags override it."
            ),
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    **flags: Any,
) -> None:
    """Train the DeepSpeech BiRNN with CTC, tracked in MLflow.

    Each epoch trains on the training set, then reports dev loss, WER and CER; the test set is
    reported at the end. Re-running the same command continues from the last checkpoint in the
    same MLflow run.
    """
    options = build_train_config(config, flags)  # a bad option fails before TensorFlow loads
    if options.ray_address:
        from deepspeech.training.ray_launch import train_on_ray

        result = train_on_ray(options)
        typer.echo(
            f"checkpoints: {result.checkpoint_dir} (step {result.steps}, epoch {result.epochs})"
        )
        if result.mlflow_run_id:
            typer.echo(f"mlflow run: {result.mlflow_run_id}")
        if result.test_wer is not None:
            typer.echo(f"test WER {result.test_wer:.2%}, CER {result.test_cer:.2%}")
        return
    from deepspeech.training.loop import train as train_model  # TensorFlow

    result = train_model(
        options, progress=progress_bar, on_report=lambda r: typer.echo(r.to_text())
    )
    typer.echo(f"checkpoints: {result.checkpoint_dir} (step {result.steps}, epoch {result.epochs})")
    if result.mlflow_run_id:
        typer.echo(f"mlflow run: {result.mlflow_run_id}")
    if result.test_report:
        typer.echo(f"test WER {result.test_report.wer:.2%}, CER {result.test_report.cer:.2%}")


@settings_options(DecoderConfig)
def evaluate(
    checkpoint_dir: Annotated[
        Path, typer.Option(help="A folder written by `deepspeech train`.", file_okay=False)
    ],
    test_files: Annotated[str, typer.Option(help="Manifest CSV(s) to evaluate, comma-separated.")],
    report_count: Annotated[int, typer.Option(help="Samples with errors to show.")] = 10,
    feature_cache: FeatureCacheOption = Path(DEFAULT_FEATURE_CACHE),
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the report as JSON here.")
    ] = None,
    **decoding_options: Any,
) -> None:
    """Evaluate a checkpoint on manifests and print the WER report.

    Greedy decoding by default; `--decoder beam --lm LM.arpa` adds beam search with an n-gram
    language model (`deepspeech lm build`).
    """
    from deepspeech.training.checkpoint import read_run_info, restore_inference_model
    from deepspeech.training.evaluate import evaluate_set, make_eval_step

    decoding = build_settings(DecoderConfig, decoding_options)
    alphabet = read_run_info(checkpoint_dir).alphabet
    read = read_manifests(test_files, alphabet)
    # Beam search's workers start first, to get ready while TensorFlow loads the model.
    with batch_decoder(decoding, alphabet, kind="logits") as set_decoder:
        model, info = restore_inference_model(checkpoint_dir)
        cached = open_cached_set(
            read, feature_cache, info.features.numcep, alphabet, progress_factory=progress_bar
        )
        eval_step = make_eval_step(model, info.features.numcep)
        with progress_bar("evaluate", len(cached)) as advance:
            report = evaluate_set(
                eval_step,
                cached,
                info.features.stride,
                alphabet,
                "test",
                report_count,
                decoder=set_decoder,
                progress=advance,
            )
    typer.echo(report.to_text())
    if json_path:
        json_path.write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
