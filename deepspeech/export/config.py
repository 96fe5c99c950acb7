"""`ExportConfig`: every option of `deepspeech export`, each defined once, here.

Light on purpose (no TensorFlow): the CLI builds its options from these fields at start-up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from deepspeech.config import setting
from deepspeech.errors import ConfigError
from deepspeech.runtime.graph import OPSET

FP32 = "fp32"
INT8 = "int8"
QUANTIZATIONS = (FP32, INT8)  # what `export --quantize` accepts
# MLflow's alias rule, checked before the export rather than after the version is registered:
# word characters and dashes; "latest" and vN name versions, so MLflow reserves them.
_ALIAS = re.compile(r"^[\w\-]{1,255}$")
_RESERVED_ALIAS = re.compile(r"^(latest|[vV]\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class ExportConfig:
    """Which checkpoint to export, where to, and how (graph, precision, registration).

    The decoder settings a registered bundle packs (`--lm`, `--alpha`, `--beta`,
    `--beam-width`) are `DecoderConfig`'s own; `deepspeech.registry.decoder` checks them
    together with these.
    """

    checkpoint_dir: Path = setting(help="A folder written by `deepspeech train`.")
    output: Path = setting(help="The ONNX file to write.")
    register: str | None = setting(
        None,
        "Also log the deployable (an MLflow pyfunc: the ONNX model, its decoder settings and "
        "--lm's LM) into the training run and register it as a new version of this name, "
        "served as models:/NAME/VERSION (docs/export.md, One deployable).",
    )
    alias: str | None = setting(
        None,
        "With --register: point this alias (e.g. staging, production) at the new version, "
        "moving it from the version that had it; served as models:/NAME@ALIAS.",
    )
    decoder_from: str | None = setting(
        None,
        "With --lm: pack the best alpha and beta of this `deepspeech lm tune` MLflow run "
        "(its best_alpha, best_beta metrics) instead of --alpha/--beta.",
        metavar="RUN_ID",
    )
    parity_files: str | None = setting(
        None,
        "Manifest CSV(s) whose utterances check ONNX against Keras (none: the run's test, "
        "else dev, else train manifest).",
    )
    tracking_uri: str | None = setting(None, "MLflow tracking URI (none: the training run's).")
    model_name: str | None = setting(
        None, "Model name written into the file when not registering.", key="name"
    )
    opset: int = setting(OPSET, f"ONNX opset (at least {OPSET}).")
    streaming: bool = setting(
        False,
        "Write the streaming graph (unidirectional models): an MFCC chunk plus the carried "
        "context and LSTM state in, scores plus the new state out; what `transcribe --stream`, "
        "serving.stream and /v1/stream run. Checked chunk by chunk against the whole "
        "utterance (limit 1e-4 on logits).",
    )
    quantize: str = setting(
        FP32,
        "int8: onnxruntime dynamic quantization (int8 weights, DynamicQuantizeLSTM); the "
        "export fails if greedy WER on the parity utterances rises by more than 0.5 point.",
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "checkpoint_dir", Path(self.checkpoint_dir))
        object.__setattr__(self, "output", Path(self.output))
        if self.quantize not in QUANTIZATIONS:
            raise ConfigError(
                f"--quantize {self.quantize!r} is not supported; choose {', '.join(QUANTIZATIONS)}"
            )
        if self.opset < OPSET:
            raise ConfigError(f"opset {self.opset} is below {OPSET}, the lowest this export runs")
        if self.streaming and self.register:
            raise ConfigError(
                "--register takes the whole-utterance graph; export the streaming graph to a file"
            )
        if self.streaming and self.quantize != FP32:
            raise ConfigError("--quantize applies to the whole-utterance graph, not --streaming")
        if self.alias is not None:
            _check_alias(self.alias, self.register)


def _check_alias(alias: str, register: str | None) -> None:
    if not register:
        raise ConfigError("--alias names a registered version; add --register NAME")
    if not _ALIAS.match(alias) or _RESERVED_ALIAS.match(alias):
        raise ConfigError(
            f"--alias {alias!r}: use letters, digits, _ and - (not 'latest' or vN, which MLflow "
            "reserves for versions)"
        )
