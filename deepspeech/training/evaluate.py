"""A model on a cached set -> loss, transcripts and the WER report.

Used for dev and test sets during training, by `deepspeech evaluate` and by `lm tune`, so a
reported WER always comes from the same code. Evaluation runs on one device (the chief's):
sets are small next to training, and it avoids handing some replica an empty final batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import keras
import numpy as np
import tensorflow as tf

from deepspeech.audio import N_CEPSTRUM
from deepspeech.data.cache import CachedSet
from deepspeech.data.pipeline import (
    EVAL_BATCH_SIZE,
    batch_signature,
    evaluation_plan,
    feasible,
    make_dataset,
)
from deepspeech.decoding.decoders import Decoder, GreedyDecoder
from deepspeech.decoding.pool import decode_batches
from deepspeech.model.birnn import ctc_loss
from deepspeech.text import Alphabet
from deepspeech.training.report import WerReport, calculate_report, make_sample

logger = logging.getLogger(__name__)

EvalStep = Callable[..., tuple[tf.Tensor, tf.Tensor]]


def make_eval_step(model: keras.Model, numcep: int = N_CEPSTRUM) -> EvalStep:
    """One compiled forward pass: (per-utterance loss (B,), logits (B, T, n_classes))."""

    @tf.function(input_signature=batch_signature(numcep))
    def eval_step(features, feature_lengths, labels, label_lengths, ids):
        logits = model(features, feature_lengths, training=False)
        return ctc_loss(labels, label_lengths, logits, feature_lengths), logits

    return eval_step


def model_outputs(
    eval_step: EvalStep, cached: CachedSet, stride: int, batch_size: int = EVAL_BATCH_SIZE
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per batch: (utterance ids (B,), losses (B,), logits (B, T, C), lengths (B,)).

    Utterances too short for their transcript (CTC cannot align them) are left out, with a
    warning naming how many.
    """
    skipped = len(cached) - int(feasible(cached, stride).sum())
    if skipped:
        logger.warning(
            "%d of %d utterances are too short for their transcript at stride %d: not evaluated",
            skipped,
            len(cached),
            stride,
        )
    plan = evaluation_plan(cached, stride, batch_size)
    for features, lengths, labels, label_lengths, ids in make_dataset(cached, plan, stride):
        losses, logits = eval_step(features, lengths, labels, label_lengths, ids)
        yield ids.numpy(), losses.numpy(), logits.numpy(), lengths.numpy()


def evaluate_set(
    eval_step: EvalStep,
    cached: CachedSet,
    stride: int,
    alphabet: Alphabet,
    set_name: str,
    report_count: int,
    *,
    decoder: Decoder | None = None,
    progress: Callable[..., None] | None = None,
) -> WerReport:
    """Decode every utterance of `cached` (greedily unless a decoder is given); report WER/CER.

    With a `DecoderPool` the model scores the next batches while the worker processes decode
    (`decode_batches`): beam search with an LM costs more than the model, whose time is hidden.
    """
    decoder = decoder or GreedyDecoder(alphabet)
    samples = []
    scored = (
        ((ids, losses), logits, lengths)
        for ids, losses, logits, lengths in model_outputs(eval_step, cached, stride)
    )
    for (ids, losses), texts in decode_batches(decoder, scored):
        for i, text, loss in zip(ids, texts, losses, strict=True):
            utterance = cached.utterances[i]
            samples.append(make_sample(str(utterance.wav_path), utterance.transcript, text, loss))
        if progress:
            progress(len(ids))
    return calculate_report(set_name, samples, report_count)
