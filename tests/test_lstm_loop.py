"""`model/lstm_loop.py`, what training on a CPU runs instead of Keras' masked LSTM: on every real
frame the same outputs, and the same loss gradients for every weight, in both directions."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from deepspeech.model.birnn import build_birnn, ctc_loss
from deepspeech.model.config import ModelConfig

LENGTHS = [23, 9, 17, 1]  # right-padded to 23; one utterance of a single frame


def _model(rnn: str) -> tf.keras.Model:
    tf.keras.utils.set_random_seed(7)
    return build_birnn(ModelConfig(29, n_hidden=12, dropout_rate=0.0, rnn=rnn))


def _batch() -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    rng = np.random.default_rng(0)
    lengths = np.array(LENGTHS, np.int32)
    features = rng.normal(size=(len(LENGTHS), max(LENGTHS), 26)).astype(np.float32)
    features *= (np.arange(max(LENGTHS))[None, :] < lengths[:, None])[..., None]
    label_lengths = np.array([5, 3, 4, 1], np.int32)
    labels = rng.integers(0, 28, size=(len(LENGTHS), 5)).astype(np.int32)
    return (tf.constant(features), tf.constant(lengths), tf.constant(labels),
            tf.constant(label_lengths))  # fmt: skip


def _logits_and_gradients(model, loop: bool) -> tuple[np.ndarray, list[np.ndarray]]:
    features, lengths, labels, label_lengths = _batch()
    model.lstm_loop = loop
    with tf.GradientTape() as tape:
        logits = model(features, lengths, training=True)
        loss = tf.reduce_sum(ctc_loss(labels, label_lengths, logits, lengths))
    grads = tape.gradient(loss, model.trainable_variables)
    return logits.numpy(), [g.numpy() for g in grads]


@pytest.mark.parametrize("rnn", ["bidirectional", "unidirectional"])
def test_the_loop_computes_what_the_masked_keras_lstm_computes(rnn: str) -> None:
    model = _model(rnn)
    keras_logits, keras_grads = _logits_and_gradients(model, loop=False)
    loop_logits, loop_grads = _logits_and_gradients(model, loop=True)
    for row, n in enumerate(LENGTHS):
        np.testing.assert_allclose(loop_logits[row, :n], keras_logits[row, :n], atol=1e-5)
    names = [v.path for v in model.trainable_variables]
    assert any("lstm" in name for name in names)
    for name, ours, theirs in zip(names, loop_grads, keras_grads, strict=True):
        scale = max(float(np.abs(theirs).max()), 1e-6)
        np.testing.assert_allclose(ours / scale, theirs / scale, atol=1e-4, err_msg=name)


def test_training_and_evaluation_on_a_cpu_take_the_loop() -> None:
    """The export's unmasked pass and (where a GPU is visible) training keep the Keras layer;
    the loop's graph has no per-frame mask (`Select`) and one input product."""
    model = _model("bidirectional")
    assert model.lstm_loop == (not tf.config.list_physical_devices("GPU"))
    model.lstm_loop = True
    spec = (tf.TensorSpec((None, None, 26)), tf.TensorSpec((None,), tf.int32))

    def loop_bodies(training: bool, mask_lstm: bool) -> list[list[str]]:
        @tf.function(input_signature=spec)
        def run(x, lengths):
            return model.forward(x, lengths, training=training, mask_lstm=mask_lstm)

        graph = run.get_concrete_function().graph.as_graph_def()
        library = {f.signature.name: f for f in graph.library.function}
        return [
            [n.op for n in library[node.attr["body"].func.name].node_def]
            for node in graph.node
            if node.op in ("While", "StatelessWhile")
        ]

    for training in (True, False):
        ours = loop_bodies(training=training, mask_lstm=True)
        assert len(ours) == 2  # one per direction
        for ops in ours:
            assert ops.count("MatMul") == 1 and "Select" not in ops and "SelectV2" not in ops
    for training, mask_lstm in ((True, False), (False, False)):
        keras_loops = loop_bodies(training=training, mask_lstm=mask_lstm)
        assert all(ops.count("MatMul") == 2 for ops in keras_loops), (training, mask_lstm)


def test_a_visible_gpu_keeps_the_keras_layer(monkeypatch) -> None:
    """Where a GPU is listed, training keeps Keras' LSTM, which runs cuDNN's kernel there."""
    from deepspeech.model.birnn import BiRNN

    real = tf.config.list_physical_devices
    gpu = tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")
    monkeypatch.setattr(
        tf.config, "list_physical_devices", lambda kind=None: [gpu] if kind == "GPU" else real(kind)
    )
    assert not BiRNN(ModelConfig(29, n_hidden=12)).lstm_loop
