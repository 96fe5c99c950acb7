"""`deepspeech train` and `deepspeech evaluate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from deepspeech.cli.console import progress_bar
from deepspeech.cli.data import FeatureCacheOption
from deepspeech.cli.lm import (
    AlphaOption,
    BeamWidthOption,
    BetaOption,
    DecoderOption,
    LmOption,
    decoder_config,
)
from deepspeech.config import DEFAULT_FEATURE_CACHE
from deepspeech.decoding.decoders import DEFAULT_ALPHA, DEFAULT_BEAM_WIDTH, DEFAULT_BETA


def train(
    train_files: Annotated[
        str | None, typer.Option(help="Training manifest CSV(s), comma-separated.")
    ] = None,
    dev_files: Annotated[
        str | None,
        typer.Option(help="Dev manifest(s): evaluated after every epoch, drive early stopping."),
    ] = None,
    test_files: Annotated[
        str | None, typer.Option(help="Test manifest(s): evaluated once at the end.")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs to train. [default: 10]")] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(help="Utterances per device per step; the global batch is this x devices."),
    ] = None,
    n_hidden: Annotated[
        int | None, typer.Option(help="Width of the dense and LSTM layers. [default: 256]")
    ] = None,
    learning_rate: Annotated[
        float | None, typer.Option(help="Optimizer learning rate. [default: 0.001]")
    ] = None,
    lr_schedule: Annotated[
        str | None,
        typer.Option(
            help="constant (the 2017 recipe: --learning-rate throughout) or cosine (a linear "
            "warm-up over --warmup-steps to --learning-rate, then down to 2% of it by the last "
            "step of the last epoch: a fixed-length run ends settled). [default: constant]"
        ),
    ] = None,
    warmup_steps: Annotated[
        int | None, typer.Option(help="Warm-up steps of the cosine schedule. [default: 0]")
    ] = None,
    optimizer: Annotated[
        str | None,
        typer.Option(
            help="adam (the 2017 choice) or sgd (plain SGD: a gradient counted twice shows "
            "in its update, so it checks multi-device sums). [default: adam]"
        ),
    ] = None,
    rnn: Annotated[
        str | None,
        typer.Option(
            help="bidirectional (the 2017 BiRNN) or unidirectional (forward-only LSTM, future "
            "context from the context windows only: the model that streams). "
            "[default: bidirectional]"
        ),
    ] = None,
    dropout_rate: Annotated[
        float | None, typer.Option(help="Dropout after the dense layers.")
    ] = None,
    feature_stride: Annotated[
        int | None, typer.Option(help="Keep every N-th MFCC frame (2 halves the work).")
    ] = None,
    running_mean_frames: Annotated[
        float | None,
        typer.Option(
            help="Normalise MFCC with each utterance's running mean (cepstral mean "
            "normalisation: removes what a voice, microphone or channel adds to every frame), "
            "the training set's mean counting as this many frames (after --feature-stride) at "
            "the start; causal, so it streams. 0 uses the training set's mean only, as in "
            "2017. [default: 0]"
        ),
    ] = None,
    running_variance: Annotated[
        bool | None,
        typer.Option(
            "--running-variance/--no-running-variance",
            help="With --running-mean-frames: divide by each utterance's running standard "
            "deviation too, instead of the training set's (a flatter or livelier voice than "
            "any in training), with the same prior. [default: no]",
        ),
    ] = None,
    grad_clip_norm: Annotated[
        float | None, typer.Option(help="Clip gradients to this global norm; 0 disables.")
    ] = None,
    checkpoint_dir: Annotated[
        Path | None,
        typer.Option(help="Where checkpoints go; re-running with the same folder resumes."),
    ] = None,
    feature_cache: Annotated[
        Path | None,
        typer.Option(
            help="Folder of the on-disk MFCC cache (built where missing, reused otherwise; "
            "`deepspeech data featurize` builds it ahead). Training reads features from it, "
            f"a window of shards at a time, so memory does not grow with the corpus. "
            f"[default: {DEFAULT_FEATURE_CACHE}]",
            file_okay=False,
        ),
    ] = None,
    devices: Annotated[
        str | None,
        typer.Option(
            help="Devices to mirror over: a count or 'all'. GPUs when present, else logical "
            "CPU devices. Multi-machine runs are set up with TF_CONFIG instead."
        ),
    ] = None,
    intra_op_threads: Annotated[
        int | None,
        typer.Option(
            help="Threads inside one TensorFlow op (0: TensorFlow's choice, all cores). On a "
            "CPU, 1 with --inter-op-threads set to the cores runs the LSTM's two directions "
            "side by side, faster for small models. [default: 0]"
        ),
    ] = None,
    inter_op_threads: Annotated[
        int | None,
        typer.Option(help="TensorFlow ops run side by side (0: TensorFlow's choice). [default: 0]"),
    ] = None,
    report_count: Annotated[
        int | None, typer.Option(help="Samples with errors shown in each WER report.")
    ] = None,
    early_stop: Annotated[
        bool | None,
        typer.Option(
            "--early-stop/--no-early-stop", help="Stop when the dev loss stops improving."
        ),
    ] = None,
    reduce_lr_on_plateau: Annotated[
        bool | None,
        typer.Option(
            "--reduce-lr-on-plateau/--no-reduce-lr-on-plateau",
            help="Scale the learning rate down when the dev loss plateaus.",
        ),
    ] = None,
    stats_every: Annotated[
        int | None,
        typer.Option(help="Steps between variable/gradient statistics and histograms."),
    ] = None,
    checkpoint_secs: Annotated[
        int | None, typer.Option(help="Seconds between checkpoints (also saved every epoch).")
    ] = None,
    max_train_minutes: Annotated[
        float | None, typer.Option(help="Stop training after this many minutes; 0 = no limit.")
    ] = None,
    alphabet: Annotated[
        str | None, typer.Option(help="Alphabet file (default: space, a-z, apostrophe).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for weights and batch order.")] = None,
    augment: Annotated[
        list[str] | None,
        typer.Option(
            metavar="SPEC",
            help="Augment the training data: name[p=P,key=VALUE,...], VALUE a number, a word or "
            "a range LO:HI; repeatable; 'none' drops the config file's list. Names and keys "
            "are listed below.",
        ),
    ] = None,
    experiment_name: Annotated[str | None, typer.Option(help="MLflow experiment.")] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            help="MLflow tracking URI (else $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)."
        ),
    ] = None,
    mixed_precision: Annotated[
        bool | None,
        typer.Option(
            "--mixed-precision/--no-mixed-precision",
            help="float16 with loss scaling on GPU (bfloat16 on CPU); the output layer and the "
            "CTC loss stay float32.",
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(help="Train on a Ray cluster at this address, or 'local' to start one here."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Ray workers (each runs the same training). [default: 1]")
    ] = None,
    gpus_per_worker: Annotated[float | None, typer.Option(help="GPUs per Ray worker.")] = None,
    cpus_per_worker: Annotated[float | None, typer.Option(help="CPUs per Ray worker.")] = None,
    max_failures: Annotated[
        int | None,
        typer.Option(help="Lost Ray workers to replace (resuming from the checkpoint); -1: any."),
    ] = None,
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
) -> None:
    """Train the DeepSpeech BiRNN with CTC, tracked in MLflow.

    Each epoch trains on the training set, then reports dev loss, WER and CER; the test set is
    reported at the end. Re-running the same command continues from the last checkpoint in the
    same MLflow run.
    """
    flags = {k: v for k, v in locals().items() if k != "config"}  # before any local is added
    from deepspeech.config import build_train_config
    from deepspeech.training.loop import train as train_model

    options = build_train_config(config, flags)
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
    result = train_model(
        options, progress=progress_bar, on_report=lambda r: typer.echo(r.to_text())
    )
    typer.echo(f"checkpoints: {result.checkpoint_dir} (step {result.steps}, epoch {result.epochs})")
    if result.mlflow_run_id:
        typer.echo(f"mlflow run: {result.mlflow_run_id}")
    if result.test_report:
        typer.echo(f"test WER {result.test_report.wer:.2%}, CER {result.test_report.cer:.2%}")


def evaluate(
    checkpoint_dir: Annotated[
        Path, typer.Option(help="A folder written by `deepspeech train`.", file_okay=False)
    ],
    test_files: Annotated[str, typer.Option(help="Manifest CSV(s) to evaluate, comma-separated.")],
    decoder: DecoderOption = "greedy",
    beam_width: BeamWidthOption = DEFAULT_BEAM_WIDTH,
    lm: LmOption = None,
    alpha: AlphaOption = DEFAULT_ALPHA,
    beta: BetaOption = DEFAULT_BETA,
    report_count: Annotated[int, typer.Option(help="Samples with errors to show.")] = 10,
    feature_cache: FeatureCacheOption = Path(DEFAULT_FEATURE_CACHE),
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the report as JSON here.")
    ] = None,
) -> None:
    """Evaluate a checkpoint on manifests and print the WER report.

    Greedy decoding by default; `--decoder beam --lm LM.arpa` adds beam search with an n-gram
    language model (`deepspeech lm build`).
    """
    from deepspeech.data.cache import open_cached_set, read_manifests
    from deepspeech.decoding.pool import batch_decoder
    from deepspeech.training.checkpoint import read_run_info, restore_inference_model
    from deepspeech.training.evaluate import evaluate_set, make_eval_step

    decoding = decoder_config(decoder, beam_width, lm, alpha, beta)
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
