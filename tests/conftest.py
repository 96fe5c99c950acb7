"""Shared fixtures: one tiny synthetic corpus per test session, made by the real generator."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from random_models import random_model

TINY_CORPUS_UTTERANCES = 160
FEW_STEPS = 48  # utterances: 6 steps of 8. More steps amplify rounding (summation order) past 1e-4


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sample corpus of 160 espeak-ng utterances (train/dev/test CSVs in the folder)."""
    from deepspeech.corpus.sample import SampleCorpusConfig, make_sample_corpus

    out = tmp_path_factory.mktemp("tiny-corpus")
    make_sample_corpus(out, SampleCorpusConfig(utterances=TINY_CORPUS_UTTERANCES, seed=7))
    return out


@pytest.fixture(scope="session")
def few_steps_corpus(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first FEW_STEPS training utterances of `tiny_corpus`, in their own manifest: the
    multi-device comparisons train on it (absolute WAV paths)."""
    from deepspeech.data.manifest import read_manifest, write_manifest

    manifest = tmp_path_factory.mktemp("few-steps") / "train.csv"
    write_manifest(manifest, read_manifest(tiny_corpus / "train.csv")[:FEW_STEPS])
    return manifest


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A feature cache folder shared by the session's tests (entries are keyed by content)."""
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture(scope="session")
def tiny_checkpoint(
    tiny_corpus: Path, feature_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A checkpoint folder: the BiRNN (n_hidden 32, stride 2, no dropout) after one epoch on
    `tiny_corpus`, tracked in a temporary MLflow store (`mlflow.db` beside the folder)."""
    from deepspeech.training.config import TrainConfig
    from deepspeech.training.loop import train

    tmp = tmp_path_factory.mktemp("tiny-checkpoint")
    train(
        TrainConfig(
            train_files=str(tiny_corpus / "train.csv"),
            test_files=str(tiny_corpus / "test.csv"),
            epochs=1,
            batch_size=8,
            n_hidden=32,
            feature_stride=2,
            dropout_rate=0.0,
            report_count=3,
            checkpoint_dir=str(tmp / "ckpt"),
            feature_cache=str(feature_cache),
            tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}",
            experiment_name="tests",
            seed=3,
        )
    )
    return tmp / "ckpt"


@pytest.fixture(scope="session")
def tiny_export(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    """`deepspeech.export.pipeline.export_model` of `tiny_checkpoint` (its ExportResult)."""
    from deepspeech.export.config import ExportConfig
    from deepspeech.export.pipeline import export_model

    return export_model(
        ExportConfig(tiny_checkpoint, tmp_path_factory.mktemp("tiny-onnx") / "model.onnx")
    )


@pytest.fixture(scope="session")
def tiny_onnx(tiny_export) -> Path:
    """The exported tiny model file."""
    return tiny_export.output


@pytest.fixture(scope="session")
def random_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An exported BiRNN with random weights (n_hidden 32, stride 2).

    One epoch of training only teaches the tiny model to emit blanks; random weights emit
    varied characters, so tests comparing transcripts compare more than empty strings. Biases
    are random too: with Keras' zero biases, zero padding stays zero through every layer and
    a padding bug would go unseen.
    """
    import onnx

    from deepspeech.audio import FeatureConfig
    from deepspeech.export.convert import convert_to_onnx, write_metadata
    from deepspeech.model.config import ModelConfig
    from deepspeech.runtime.graph import ModelMetadata
    from deepspeech.text import Alphabet

    alphabet, features = Alphabet.default(), FeatureConfig(stride=2)
    model = random_model(ModelConfig(alphabet.num_classes, n_hidden=32), seed=5)
    proto, _ = convert_to_onnx(model)
    write_metadata(
        proto,
        ModelMetadata(alphabet, features, n_hidden=32, model_name="random", model_version="0"),
    )
    path = tmp_path_factory.mktemp("random-onnx") / "random.onnx"
    onnx.save(proto, path)
    return path


@pytest.fixture(scope="session")
def random_unidirectional():
    """A unidirectional model (n_hidden 32) with random weights: varied characters, see above.

    With a running mean and deviation that weigh the training statistics as 4 frames: the
    streaming graph must carry their sums across chunks, or the streamed scores differ.
    """
    from deepspeech.model.config import ModelConfig
    from deepspeech.text import Alphabet

    config = ModelConfig(
        Alphabet.default().num_classes,
        n_hidden=32,
        rnn="unidirectional",
        running_mean_frames=4,
        running_variance=True,
    )
    model = random_model(config, seed=11)
    # Dense biases as large as random_model's drown the signal in this model (one class
    # wins every frame); a tenth of them leaves biases in, and 8-10 classes in the argmax.
    for layer in (model.h1, model.h2, model.h3, model.h5, model.h6):
        layer.bias.assign(layer.bias * 0.1)
    return model


@pytest.fixture(scope="session")
def random_stream_onnx(random_unidirectional, tmp_path_factory: pytest.TempPathFactory):
    """`random_unidirectional` exported (stride 2): (whole-utterance graph, streaming graph)."""
    import onnx

    from deepspeech.audio import FeatureConfig
    from deepspeech.export.convert import convert_streaming_to_onnx, convert_to_onnx, write_metadata
    from deepspeech.runtime.graph import STREAM_GRAPH, ModelMetadata
    from deepspeech.text import Alphabet

    folder = tmp_path_factory.mktemp("random-stream-onnx")
    metadata = ModelMetadata(
        Alphabet.default(),
        FeatureConfig(stride=2),
        n_hidden=32,
        model_name="random-uni",
        model_version="0",
        rnn="unidirectional",
    )
    paths = []
    for convert, graph in (
        (convert_to_onnx, "utterance"),
        (convert_streaming_to_onnx, STREAM_GRAPH),
    ):
        proto, _ = convert(random_unidirectional)
        write_metadata(proto, dataclasses.replace(metadata, graph=graph))
        paths.append(folder / f"{graph}.onnx")
        onnx.save(proto, paths[-1])
    return tuple(paths)
