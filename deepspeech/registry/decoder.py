"""The decoder a registered bundle packs: `export`'s decoder options checked together, and
alpha and beta read from a `deepspeech lm tune` run (`--decoder-from RUN_ID`).

With `--lm` the bundle decodes by beam search with that LM (alpha and beta as given, tuned,
or `DecoderConfig`'s defaults); without it, greedily, and the LM weights mean nothing, so
giving them is an error rather than silently ignored. Light: MLflow is imported only to read
a tuning run, so a bad combination fails in one line before TensorFlow loads.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deepspeech.config import build_settings
from deepspeech.decoding.decoders import DecoderConfig
from deepspeech.errors import ConfigError
from deepspeech.export.config import ExportConfig
from deepspeech.training.checkpoint import read_run_info

logger = logging.getLogger(__name__)

PACKED_DECODER_KEYS = ("lm", "alpha", "beta", "beam_width")  # export's decoder options
TUNED_ALPHA, TUNED_BETA = "best_alpha", "best_beta"  # metrics of a `deepspeech lm tune` run


def export_tracking_uri(config: ExportConfig) -> str | None:
    """The MLflow store an export registers in: --tracking-uri, else the training run's."""
    return config.tracking_uri or read_run_info(config.checkpoint_dir).tracking_uri


def bundle_decoder(config: ExportConfig, given: Mapping[str, Any]) -> DecoderConfig:
    """The decoder to pack into `config.register`'s bundle, from the decoder options `given`
    (flat DecoderConfig keys, None: not given): beam search with the LM, or greedy without
    one. ConfigError, one line, for options that cannot go together."""
    chosen = {k: v for k, v in given.items() if v is not None}
    lm = chosen.get("lm")
    if lm is None:
        flags = {"alpha": "--alpha", "beta": "--beta", "beam_width": "--beam-width"}
        beam_only = [flag for key, flag in flags.items() if key in chosen]
        if config.decoder_from:
            beam_only.append("--decoder-from")
        if beam_only:
            raise ConfigError(
                f"{', '.join(beam_only)} set the beam decoder of a packed LM; add --lm LM.arpa"
            )
        return DecoderConfig()
    if not config.register:
        raise ConfigError("--lm packs the LM into a registered model; add --register NAME")
    if not Path(lm).is_file():
        raise ConfigError(f"--lm {lm}: no such file; build one with `deepspeech lm build`")
    if config.decoder_from:
        both = [f"--{k}" for k in ("alpha", "beta") if k in chosen]
        if both:
            raise ConfigError(
                f"--decoder-from and {' and '.join(both)} both set the LM weights; give one"
            )
        tuned = tuned_weights(config.decoder_from, export_tracking_uri(config), Path(lm))
        chosen["alpha"], chosen["beta"] = tuned
    return build_settings(DecoderConfig, {**chosen, "decoder": "beam"})


def tuned_weights(run_id: str, tracking_uri: str | None, lm: Path) -> tuple[float, float]:
    """(best_alpha, best_beta) of a `deepspeech lm tune` run; a warning when it tuned
    another LM file than the one packed."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException as e:
        raise ConfigError(
            f"--decoder-from {run_id}: no such MLflow run in {client.tracking_uri}"
        ) from e
    metrics = run.data.metrics
    missing = [m for m in (TUNED_ALPHA, TUNED_BETA) if m not in metrics]
    if missing:
        raise ConfigError(
            f"--decoder-from {run_id}: the run has no {' or '.join(missing)} metric; give the "
            "run `deepspeech lm tune` printed"
        )
    tuned_lm = run.data.params.get("lm")
    if tuned_lm and Path(tuned_lm).name != lm.name:
        logger.warning("run %s tuned alpha and beta for %s, not %s", run_id, tuned_lm, lm)
    return float(metrics[TUNED_ALPHA]), float(metrics[TUNED_BETA])
