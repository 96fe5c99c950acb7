"""A model on a featurized set -> loss, greedy transcripts and the WER report.

Used for dev and test sets during training and by `deepspeech evaluate` on a checkpoint, so a
reported WER always comes from the same code. Evaluation runs on one device: sets are small
next to training, and it avoids handing some replica an empty final batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import keras
import numpy as np
import tensorflow as tf

from deepspeech.data.batching import FeaturizedSet, evaluation_batches, pad_batch
from deepspeech.data.pipeline import batch_signature
from deepspeech.decoding.decoders import Decoder, GreedyDecoder
from deepspeech.model.birnn import ctc_loss
from deepspeech.text import Alphabet
from deepspeech.training.report import WerReport, calculate_report, make_sample

EVAL_BATCH_SIZE = 32


def make_eval_step(model: keras.Model, n_input: int) -> Callable[..., tuple[tf.Tensor, tf.Tensor]]:
    """One compiled forward pass: (per-utterance loss (B,), logits (B, T, n_classes))."""

    @tf.function(input_signature=batch_signature(n_input))
    def eval_step(features, feature_lengths, labels, label_lengths):
        logits = model(features, feature_lengths, training=False)
        return ctc_loss(labels, label_lengths, logits, feature_lengths), logits

    return eval_step


def model_outputs(
    eval_step: Callable[..., tuple[tf.Tensor, tf.Tensor]],
    data: FeaturizedSet,
    batch_size: int = EVAL_BATCH_SIZE,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per batch: (indices into data (B,), losses (B,), logits (B, T, C), lengths (B,))."""
    for indices in evaluation_batches(data.frame_counts, batch_size):
        batch = pad_batch(data, indices)
        losses, logits = eval_step(
            batch.features, batch.feature_lengths, batch.labels, batch.label_lengths
        )
        yield indices, losses.numpy(), logits.numpy(), batch.feature_lengths


def evaluate_set(
    eval_step: Callable[..., tuple[tf.Tensor, tf.Tensor]],
    data: FeaturizedSet,
    alphabet: Alphabet,
    set_name: str,
    report_count: int,
    *,
    decoder: Decoder | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
    progress: Callable[..., None] | None = None,
) -> WerReport:
    """Decode every utterance of `data` (greedily unless a decoder is given); report WER/CER."""
    decoder = decoder or GreedyDecoder(alphabet)
    samples = []
    for indices, losses, logits, lengths in model_outputs(eval_step, data, batch_size):
        texts = decoder.decode_batch(logits, lengths)
        for i, text, loss in zip(indices, texts, losses, strict=True):
            utterance = data.utterances[i]
            samples.append(make_sample(str(utterance.wav_path), utterance.transcript, text, loss))
        if progress:
            progress(len(indices))
    return calculate_report(set_name, samples, report_count)
