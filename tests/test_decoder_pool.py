"""Beam search in worker processes (deepspeech/decoding/pool.py): the texts the in-process
decoder gives, in input order, and a worker's error reaching the caller."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_decode import ALPHABET, LM_TEXT, frames, spell

from deepspeech.decoding.decoders import BeamDecoder, DecoderConfig, GreedyDecoder, make_decoder
from deepspeech.decoding.lm import build_kneser_ney
from deepspeech.decoding.pool import DecoderPool, _balanced_chunks, batch_decoder
from deepspeech.errors import LanguageModelError

AMBIGUOUS = {"k": 0.55, "c": 0.44}  # the acoustics slightly prefer the non-word "kat"


@pytest.fixture(scope="module")
def lm_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lm") / "lm.arpa"
    build_kneser_ney(LM_TEXT, order=3).write_arpa(path)
    return path


def padded_batch(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(batch, n_frames, n_classes) logits of varied lengths, padded with noise past them,
    two of them spelling the LM's sentences with an ambiguous letter."""
    rng = np.random.default_rng(seed)
    spelt = [frames(*spell("the "), AMBIGUOUS, "_", *spell("at sat")), frames(*spell("the dog"))]
    lengths = np.array([len(m) for m in spelt] + list(rng.integers(5, 60, size=9)))
    scores = 3 * rng.standard_normal((len(lengths), int(lengths.max()) + 7, ALPHABET.num_classes))
    for i, matrix in enumerate(spelt):
        scores[i, : len(matrix)] = np.log(matrix)
    return scores.astype(np.float32), lengths


def test_the_pool_decodes_a_batch_as_the_in_process_decoder(lm_path: Path) -> None:
    scores, lengths = padded_batch()
    config = DecoderConfig(decoder="beam", beam_width=16, lm_path=lm_path)
    expected = BeamDecoder(ALPHABET, beam_width=16, lm=lm_path, kind="logits").decode_batch(
        scores, lengths
    )
    with DecoderPool(config, ALPHABET, kind="logits", workers=2) as pool:
        assert pool.decode_batch(scores, lengths) == expected
        assert pool(scores[1], int(lengths[1])) == expected[1] == "the dog"
        assert pool._pool is not None  # the batch went to the worker processes
    assert pool._pool is None
    assert expected[0] == "the cat sat"  # the LM overruled the acoustics' "kat"


def test_another_config_decodes_under_its_own_settings(lm_path: Path) -> None:
    scores, lengths = padded_batch(1)
    matrices = [s[:n] for s, n in zip(scores, lengths, strict=True)]
    with DecoderPool(DecoderConfig(decoder="beam"), ALPHABET, "logits", workers=2) as pool:
        for alpha in (0.0, 0.75):
            config = DecoderConfig(decoder="beam", beam_width=16, lm_path=lm_path, alpha=alpha)
            in_process = BeamDecoder(ALPHABET, beam_width=16, lm=lm_path, alpha=alpha)
            texts = pool.decode_many(matrices, config)
            assert texts == [in_process(m) for m in matrices]
            assert texts[0] == ("the kat sat" if alpha == 0 else "the cat sat")


def test_a_workers_error_reaches_the_caller(lm_path: Path, tmp_path: Path) -> None:
    gone = tmp_path / "gone.arpa"
    gone.write_bytes(lm_path.read_bytes())
    config = DecoderConfig(decoder="beam", lm_path=gone)
    gone.unlink()
    scores, lengths = padded_batch()
    pool = DecoderPool(config, ALPHABET, "logits", workers=2)
    with pool, pytest.raises(LanguageModelError, match=r"gone\.arpa"):
        pool.decode_batch(scores, lengths)


def test_batch_decoder_uses_processes_only_for_beam_search_on_several_cores(lm_path: Path) -> None:
    beam = DecoderConfig(decoder="beam", lm_path=lm_path)
    with batch_decoder(DecoderConfig(), ALPHABET, "logits", workers=2) as decoder:
        assert isinstance(decoder, GreedyDecoder)
    with batch_decoder(beam, ALPHABET, "logits", workers=1) as decoder:
        assert isinstance(decoder, BeamDecoder)
    with batch_decoder(beam, ALPHABET, "logits", workers=2) as decoder:
        assert isinstance(decoder, DecoderPool) and decoder.workers == 2


@pytest.mark.parametrize("parts", [1, 2, 3, 20])
def test_chunks_hold_every_utterance_once_with_about_equal_frames(parts: int) -> None:
    sizes = [int(s) for s in np.random.default_rng(parts).integers(1, 500, size=17)]
    chunks = _balanced_chunks(sizes, parts)
    assert sorted(i for chunk in chunks for i in chunk) == list(range(len(sizes)))
    assert len(chunks) == min(parts, len(sizes))
    loads = [sum(sizes[i] for i in chunk) for chunk in chunks]
    assert max(loads) - min(loads) <= max(sizes)


def test_batches_submitted_together_come_back_each_as_decoded_alone(lm_path: Path) -> None:
    config = DecoderConfig(decoder="beam", beam_width=16, lm_path=lm_path)
    batches = [padded_batch(seed) for seed in range(3)]
    in_process = BeamDecoder(ALPHABET, beam_width=16, lm=lm_path, kind="logits")
    with DecoderPool(config, ALPHABET, kind="logits", workers=2) as pool:
        started = [pool.submit_batch(scores, lengths) for scores, lengths in batches]
        assert [texts() for texts in reversed(started)] == [
            in_process.decode_batch(scores, lengths) for scores, lengths in reversed(batches)
        ]


@pytest.mark.slow  # trains tiny_checkpoint
def test_evaluation_scores_the_next_batch_while_the_pool_decodes(
    tiny_checkpoint: Path, tiny_corpus: Path, feature_cache: Path
) -> None:
    """`evaluate_set` with a pool: the same report as decoding in process, and the model
    scores batch k+1 before the texts of batch k are waited for."""
    from deepspeech.data.cache import open_cached_set, read_manifests
    from deepspeech.training.checkpoint import restore_inference_model
    from deepspeech.training.evaluate import evaluate_set, make_eval_step

    model, info = restore_inference_model(tiny_checkpoint)
    alphabet, stride = info.alphabet, info.features.stride
    cached = open_cached_set(
        read_manifests(tiny_corpus / "train.csv", alphabet),
        feature_cache,
        info.features.numcep,
        alphabet,
    )
    eval_step = make_eval_step(model, info.features.numcep)
    events: list[tuple[str, int]] = []

    def scoring_step(*batch):
        events.append(("score", sum(e == "score" for e, _ in events)))
        return eval_step(*batch)

    config = DecoderConfig(decoder="beam", beam_width=8)
    with DecoderPool(config, alphabet, kind="logits", workers=2) as pool:
        submit = pool.submit_batch

        def recording_submit(scores, lengths):
            batch = sum(e == "submit" for e, _ in events)
            events.append(("submit", batch))
            texts = submit(scores, lengths)

            def collect():
                events.append(("collect", batch))
                return texts()

            return collect

        pool.submit_batch = recording_submit
        pooled = evaluate_set(scoring_step, cached, stride, alphabet, "train", 3, decoder=pool)
    in_process = evaluate_set(
        eval_step, cached, stride, alphabet, "train", 3, decoder=make_decoder(config, alphabet)
    )
    assert pooled.to_dict() == in_process.to_dict()
    batches = sum(e == "score" for e, _ in events)
    assert batches >= 3, "the set should span several batches"
    assert [b for e, b in events if e == "collect"] == list(range(batches))
    assert events.index(("score", 1)) < events.index(("collect", 0))
