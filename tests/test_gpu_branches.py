"""The code paths a GPU run takes, exercised on a CPU: forced flags, fake device lists and
graphs inspected without running them (no GPU can run this project here; docs/gpu.md)."""

from __future__ import annotations

import importlib
import json
from typing import ClassVar

import numpy as np
import pytest
import tensorflow as tf
from random_models import random_model

import deepspeech.data.pipeline as pipeline
from deepspeech.export.convert import convert_streaming_to_onnx, convert_to_onnx
from deepspeech.model.birnn import ctc_loss
from deepspeech.model.config import ModelConfig
from deepspeech.training.placement import collective_communication, make_placement

N_CLASSES = 29
# The module (its package exports a function of the same name, `rnn`).
keras_rnn = importlib.import_module("keras.src.backend.tensorflow.rnn")


def traced_ops(model, mask_lstm: bool) -> set[str]:
    """Op types of the model's forward pass traced as a graph (nothing is run)."""
    spec = [tf.TensorSpec((None, None, model.config.numcep)), tf.TensorSpec((None,), tf.int32)]
    forward = tf.function(lambda x, n: model.forward(x, n, training=False, mask_lstm=mask_lstm))
    return {op.type for op in forward.get_concrete_function(*spec).graph.get_operations()}


@pytest.mark.parametrize("rnn", ["bidirectional", "unidirectional"])
def test_export_traces_the_generic_lstm_where_a_gpu_is_visible(rnn: str, monkeypatch) -> None:
    """Keras builds cuDNN's LSTM when it sees a GPU at trace time, which tf2onnx cannot
    convert; export must trace the generic kernel (the fused ONNX LSTM) all the same."""
    monkeypatch.setattr(keras_rnn, "_is_gpu_available", lambda: True)
    model = random_model(ModelConfig(N_CLASSES, n_hidden=16, rnn=rnn), seed=1)
    assert any(op.startswith("CudnnRNN") for op in traced_ops(model, mask_lstm=False)), (
        "the forced flag no longer reaches Keras's cuDNN branch: this test tests nothing"
    )
    proto, layout = convert_to_onnx(model)
    assert "LSTM" in {node.op_type for node in proto.graph.node}, layout
    assert not any(op.startswith("CudnnRNN") for op in traced_ops(model, mask_lstm=False))
    if rnn == "unidirectional":
        stream_proto, _ = convert_streaming_to_onnx(model)
        assert "LSTM" in {node.op_type for node in stream_proto.graph.node}


def test_parity_is_computed_in_full_float32() -> None:
    from deepspeech.export.parity import full_float32

    full_float32()
    assert not tf.config.experimental.tensor_float_32_execution_enabled()
    tf.config.experimental.enable_tensor_float_32_execution(True)  # TensorFlow's default back


def ctc_graph_ops(labels, label_lengths, logits, logit_lengths) -> set[str]:
    """Op types of the CTC loss's graph, the functions it calls included."""
    traced = tf.function(ctc_loss).get_concrete_function(
        labels, label_lengths, logits, logit_lengths
    )
    graph_def = traced.graph.as_graph_def()
    ops = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        ops |= {node.op for node in function.node_def}
    return ops


def test_ctc_never_runs_cudnn_and_takes_transcripts_over_255_labels() -> None:
    """cuDNN's CTC (CTCLossV2) refuses label sequences over 255; TensorFlow's kernel does not."""
    rng = np.random.default_rng(0)
    long_labels = rng.integers(0, N_CLASSES - 1, (2, 300)).astype(np.int32)
    labels, label_lengths = tf.constant(long_labels), tf.constant([300, 120])
    logits = tf.constant(rng.normal(0, 1, (2, 700, N_CLASSES)).astype(np.float32))
    logit_lengths = tf.constant([700, 500])
    ops = ctc_graph_ops(labels, label_lengths, logits, logit_lengths)
    assert "CTCLoss" in ops and "CTCLossV2" not in ops, sorted(o for o in ops if "CTC" in o)
    loss = ctc_loss(labels, label_lengths, logits, logit_lengths)
    assert np.all(np.isfinite(loss.numpy())) and loss.shape == (2,)


def test_padded_frames_get_no_gradient() -> None:
    rng = np.random.default_rng(1)
    labels, label_lengths = tf.constant([[1, 2, 3], [4, 5, 0]]), tf.constant([3, 2])
    logits = tf.Variable(rng.normal(0, 1, (2, 12, N_CLASSES)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(ctc_loss(labels, label_lengths, logits, tf.constant([12, 7])))
    gradient = tape.gradient(loss, logits).numpy()
    assert np.abs(gradient[1, 7:]).max() == 0.0
    assert np.abs(gradient[1, :7]).max() > 0.0 and np.abs(gradient[0]).max() > 0.0


FAKE_GPUS = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(2)]


class RecordingStrategy:
    """Stands in for MultiWorkerMirroredStrategy, which would try to reach its peers."""

    calls: ClassVar[list[dict]] = []

    def __init__(self, **kwargs) -> None:
        RecordingStrategy.calls.append(kwargs)
        self.num_replicas_in_sync = 4


@pytest.fixture
def fake_gpus(monkeypatch):
    """Two GPUs in TensorFlow's device list; memory-growth calls recorded, not made."""
    grown: list[str] = []
    real_list = tf.config.list_physical_devices
    monkeypatch.setattr(
        tf.config,
        "list_physical_devices",
        lambda kind=None: FAKE_GPUS if kind == "GPU" else real_list(kind),
    )
    monkeypatch.setattr(
        tf.config.experimental, "set_memory_growth", lambda device, _: grown.append(device.name)
    )
    monkeypatch.setattr(tf.distribute, "MultiWorkerMirroredStrategy", RecordingStrategy)
    RecordingStrategy.calls = []
    return grown


def two_workers(monkeypatch) -> None:
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    task = {"type": "worker", "index": 1}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))


def test_workers_on_gpus_all_reduce_with_nccl_and_share_gpus_with_memory_growth(
    fake_gpus, monkeypatch
) -> None:
    two_workers(monkeypatch)
    placement = make_placement("1", shared_gpu=True)
    (options,) = [call["communication_options"] for call in RecordingStrategy.calls]
    nccl = tf.distribute.experimental.CommunicationImplementation.NCCL
    assert options.implementation == nccl
    assert fake_gpus == [gpu.name for gpu in FAKE_GPUS]
    assert (placement.num_workers, placement.worker_index, placement.on_gpus) == (2, 1, True)


def test_a_whole_gpu_per_worker_keeps_tensorflows_allocator(fake_gpus, monkeypatch) -> None:
    two_workers(monkeypatch)
    make_placement("1", shared_gpu=False)
    assert fake_gpus == []


def test_cpu_workers_all_reduce_over_the_grpc_ring() -> None:
    ring = tf.distribute.experimental.CommunicationImplementation.RING
    assert collective_communication(on_gpus=False).implementation == ring


class InputRecorder:
    """A strategy's input side: records the distribution options, builds the dataset."""

    options: tf.distribute.InputOptions | None = None

    def distribute_datasets_from_function(self, dataset_fn, options=None):
        self.options = options
        return dataset_fn(tf.distribute.InputContext())


@pytest.mark.parametrize("gpus", [False, True])
def test_input_is_fetched_to_devices_and_autotuned_only_on_gpus(gpus, request, monkeypatch):
    """On CPUs, per-device prefetching adds nothing and autotuning made a spent iterator's
    destruction wait up to a minute; GPUs keep both."""
    if gpus:
        request.getfixturevalue("fake_gpus")
    monkeypatch.setattr(pipeline, "make_dataset", lambda *args: tf.data.Dataset.range(3))
    recorder = InputRecorder()
    dataset = pipeline.distributed_dataset(recorder, cached=None, plans=[None], stride=2)
    assert recorder.options.experimental_fetch_to_device is gpus
    assert dataset.options().autotune.enabled is gpus
