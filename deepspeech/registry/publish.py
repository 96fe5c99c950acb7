"""Registering the deployable: the ONNX file, decoder.json and the LM as one pyfunc version.

`publish_bundle` logs `serving.bundle.SpeechToText` with its artifacts into the model's
training run (a run of the experiment 'deepspeech-export' when there is none), registers it
as the next version of a name, writes the version's lineage as tags and a description (the
training run, its test WER and commit, the decoder, and the digests of the datasets the run
logged with `mlflow.log_input`, where it did) and points an alias at it, which moves the alias
off the version that had it. MLflow and the pyfunc class are imported here, so only a
registering export loads them.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.pyfunc
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from deepspeech.decoding.decoders import DecoderConfig
from deepspeech.errors import ExportError
from deepspeech.runtime.graph import ModelMetadata
from deepspeech.training.mlflow_store import artifact_location
from serving.bundle import SpeechToText, input_example, pip_requirements, signature
from serving.inference import BUNDLE_DECODER, BUNDLE_LM, BUNDLE_ONNX, packed_decoder_json

logger = logging.getLogger(__name__)

LOGGED_MODEL_NAME = "speech-to-text"  # the bundle's name inside the training run
EXPORT_EXPERIMENT = "deepspeech-export"  # holds bundles whose training was not tracked
DATASET_CONTEXT_TAG = "mlflow.data.context"  # mlflow.log_input's context (training, ...)


@dataclass(frozen=True)
class Registered:
    """A registered version, and the alias now pointing at it."""

    name: str
    version: str
    alias: str | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def alias_uri(self) -> str | None:
        return f"models:/{self.name}@{self.alias}" if self.alias else None


def publish_bundle(
    model_file: Path,
    metadata: ModelMetadata,
    decoder: DecoderConfig,
    *,
    name: str,
    alias: str | None = None,
    tracking_uri: str | None = None,
    decoder_from: str | None = None,
) -> Registered:
    """Log and register `model_file` with `decoder` (and its LM) as one version of `name`.

    The version is logged into `metadata.mlflow_run_id` when that run is in the store.
    Raises ExportError, one line, when MLflow refuses (a bad alias, an unreachable store).
    """
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(mlflow.get_tracking_uri())
    run_id = _training_run(client, metadata.mlflow_run_id or None)
    with tempfile.TemporaryDirectory(prefix="deepspeech-bundle-") as scratch:
        artifacts = _artifacts(model_file, decoder, Path(scratch))
        try:
            # The active experiment must be the run's, or MLflow refuses to resume the run.
            mlflow.set_experiment(experiment_id=_experiment_of(client, run_id))
            with mlflow.start_run(run_id=run_id):
                info = mlflow.pyfunc.log_model(
                    name=LOGGED_MODEL_NAME,
                    python_model=SpeechToText(),
                    artifacts=artifacts,
                    signature=signature(),
                    input_example=input_example(),
                    pip_requirements=pip_requirements(),
                    registered_model_name=name,
                )
        except MlflowException as e:
            raise ExportError(f"registering {name!r} in {client.tracking_uri} failed: {e}") from e
    version = str(info.registered_model_version)
    if version != metadata.model_version:
        logger.warning(
            "registered %s version %s, but the model's metadata says %s (another export "
            "registered meanwhile)",
            name,
            version,
            metadata.model_version,
        )
    _write_lineage(client, name, version, lineage(client, run_id, metadata, decoder, decoder_from))
    if alias:
        try:
            client.set_registered_model_alias(name, alias, version)
        except MlflowException as e:
            raise ExportError(f"alias {alias!r} for {name} version {version}: {e.message}") from e
    return Registered(name, version, alias)


def _training_run(client: MlflowClient, run_id: str | None) -> str | None:
    """The training run, if the store has it (the bundle is logged into it)."""
    if run_id is None:
        return None
    try:
        client.get_run(run_id)
    except MlflowException:
        logger.warning("training run %s is not in %s; logging into a new run", run_id, client)
        return None
    return run_id


def _experiment_of(client: MlflowClient, run_id: str | None) -> str:
    """The training run's experiment; without a run, 'deepspeech-export' (made on first use,
    its artifacts beside a SQLite store)."""
    if run_id is not None:
        return client.get_run(run_id).info.experiment_id
    found = client.get_experiment_by_name(EXPORT_EXPERIMENT)
    if found is not None:
        return found.experiment_id
    location = artifact_location(client.tracking_uri)
    return client.create_experiment(EXPORT_EXPERIMENT, artifact_location=location)


def _artifacts(model_file: Path, decoder: DecoderConfig, scratch: Path) -> dict[str, str]:
    """The pyfunc's artifacts: the ONNX file, decoder.json and the LM (when there is one)."""
    decoder_json = scratch / "decoder.json"
    decoder_json.write_text(packed_decoder_json(decoder), encoding="utf-8")
    artifacts = {BUNDLE_ONNX: str(model_file), BUNDLE_DECODER: str(decoder_json)}
    if decoder.lm_path is not None:
        artifacts[BUNDLE_LM] = str(decoder.lm_path)
    return artifacts


@dataclass(frozen=True)
class Lineage:
    """What a registered version says about where it came from: tags and a description."""

    tags: dict[str, str]
    description: str


def lineage(
    client: MlflowClient,
    run_id: str | None,
    metadata: ModelMetadata,
    decoder: DecoderConfig,
    decoder_from: str | None,
) -> Lineage:
    """Tags (training_run, test_wer, git_commit, quantization, decoder settings,
    decoder_from, `dataset.<name>` = digest) and a description saying the same in words."""
    tags: dict[str, str] = {"quantization": metadata.quantization, "decoder": decoder.decoder}
    model = f"{metadata.rnn} RNN, n_hidden {metadata.n_hidden}, {metadata.quantization}"
    said = [f"DeepSpeech ({model})"]
    if run_id:
        tags["training_run"] = run_id
        said.append(f"trained in run {run_id}")
    if metadata.git_commit:
        tags["git_commit"] = metadata.git_commit
    if metadata.test_wer is not None:
        tags["test_wer"] = f"{metadata.test_wer:.4f}"
        said.append(f"test WER {metadata.test_wer:.2%} (greedy)")
    said.append(_decoder_words(decoder, decoder_from, tags))
    datasets = dataset_digests(client, run_id)
    for dataset_name, (digest, _) in datasets.items():
        tags[f"dataset.{dataset_name}"] = digest
    if datasets:
        listed = ", ".join(f"{n} ({c}) {d}" if c else f"{n} {d}" for n, (d, c) in datasets.items())
        said.append(f"datasets: {listed}")
    return Lineage(tags, "; ".join(said) + ".")


def _decoder_words(decoder: DecoderConfig, decoder_from: str | None, tags: dict[str, str]) -> str:
    """The decoder in words, its settings added to `tags`."""
    if decoder.decoder != "beam":
        return "greedy decoder"
    tags.update(
        beam_width=str(decoder.beam_width), alpha=f"{decoder.alpha:g}", beta=f"{decoder.beta:g}"
    )
    lm = decoder.lm_path.name if decoder.lm_path else None
    if lm:
        tags["lm"] = lm
    words = f"beam decoder (width {decoder.beam_width}) with LM {lm}" if lm else "beam decoder"
    words += f", alpha {decoder.alpha:g}, beta {decoder.beta:g}"
    if decoder_from:
        tags["decoder_from"] = decoder_from
        words += f" (tuned in run {decoder_from})"
    return words


def dataset_digests(client: MlflowClient, run_id: str | None) -> dict[str, tuple[str, str]]:
    """{name: (digest, context)} of the datasets a run logged with `mlflow.log_input`;
    empty for a run that logged none (older runs) or no run."""
    if run_id is None:
        return {}
    inputs = client.get_run(run_id).inputs
    found: dict[str, tuple[str, str]] = {}
    for item in getattr(inputs, "dataset_inputs", None) or []:
        context = next((t.value for t in item.tags or [] if t.key == DATASET_CONTEXT_TAG), "")
        found[item.dataset.name] = (item.dataset.digest, context)
    return found


def _write_lineage(client: MlflowClient, name: str, version: str, facts: Lineage) -> None:
    try:
        for key, value in facts.tags.items():
            client.set_model_version_tag(name, version, key, value)
        client.update_model_version(name, version, description=facts.description)
    except MlflowException as e:
        raise ExportError(f"tagging {name} version {version}: {e.message}") from e
