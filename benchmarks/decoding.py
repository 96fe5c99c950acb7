"""Decoding speed (per second of audio) and WER: greedy against beam search with a word LM.

Run: .venv/bin/python benchmarks/decoding.py [--utterances 200] [--lm-sentences 20000] [--markdown]

Without a trained model, the inputs are synthetic CTC posteriors of the sample corpus's
sentences (`deepspeech.corpus.grammar`), shaped like a trained model's: 50 output frames per
second (10 ms features, stride 2), mostly blank frames with a sharp peak per character, and
the errors acoustic models make — a confusable letter winning the peak (the right one second),
a weak peak losing to blank (deletion), a spurious peak (insertion) — plus small noise
everywhere. The LM is built from training-split sentences; the test sentences come from the
held-out test split, so they are unseen by the LM, as in a real evaluation. Each decoder runs
the same utterances on one core; the figure is decoding seconds per second of audio.
"""

# Imported first, before NumPy: pins this process to one core and one BLAS thread.
import one_core

# isort: split
import argparse
import hashlib
import platform
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
from section import head, parse_args, print_result

from deepspeech.corpus.grammar import SentenceShares, draw_sentence, vocabulary
from deepspeech.decoding.decoders import (
    DEFAULT_ALPHA,
    DEFAULT_BEAM_WIDTH,
    DEFAULT_BETA,
    BeamDecoder,
    Decoder,
    GreedyDecoder,
)
from deepspeech.decoding.lm import build_kneser_ney, load_language_model
from deepspeech.decoding.tuning import corpus_error_rates
from deepspeech.text import Alphabet

FRAMES_PER_SECOND = 50  # 100 feature frames/s (10 ms step), model stride 2
SHARES = SentenceShares(dev=0.1, test=0.1)  # as the sample corpus splits sentences
SEED = 0
BEAM_WIDTHS = (16, 64, 256)
HELD_OUT_SHARE = 0.1  # words kept out of the "open" LM's text
# Letters an acoustic model confuses: similar sounds, or one sound spelt two ways.
CONFUSABLE = {
    "a": "eiou", "e": "aiy", "i": "eya", "o": "aue", "u": "oa", "y": "ie",
    "b": "pvd", "p": "bt", "d": "tb", "t": "dp", "g": "kc", "k": "cg", "c": "ksg",
    "f": "vs", "v": "fb", "s": "zcf", "z": "s", "m": "n", "n": "mg", "l": "r", "r": "lw",
    "w": "vr", "h": "f", "j": "g", "q": "k", "x": "s", "'": "s",
}  # fmt: skip


@dataclass(frozen=True)
class Acoustics:
    """How the synthetic acoustic model errs, per spoken character (space included)."""

    substitution: float = 0.08  # a confusable letter peaks; the right one is second
    deletion: float = 0.03  # the peak is weak and blank wins
    insertion: float = 0.02  # a spurious weak peak after the character
    noise: float = 1.0  # std of the logit noise on every class
    peak: float = 9.0  # logit margin of a frame's winning class


def synthetic_posteriors(
    text: str, alphabet: Alphabet, rng: np.random.Generator, acoustics: Acoustics
) -> np.ndarray:
    """A sentence -> (n_frames, n_classes) float32 softmax probabilities, like the ONNX model.

    Each character takes 3-4 frames on average (about 14 characters a second): one peak
    frame, sometimes two, then blanks, as CTC models emit.
    """
    blank = alphabet.blank_index
    silence = [(blank, -1)] * 3
    frames: list[tuple[int, int]] = list(silence)  # (winning class, runner-up or -1) per frame
    for char in text:
        label = alphabet.label_of(char)
        draw = rng.random()
        if draw < acoustics.substitution and char in CONFUSABLE:
            wrong = alphabet.label_of(str(rng.choice(list(CONFUSABLE[char]))))
            peak = (wrong, label)
        elif draw < acoustics.substitution + acoustics.deletion:
            peak = (blank, label)
        else:
            peak = (label, -1)
        frames += [peak] * int(rng.integers(1, 3)) + [(blank, -1)] * int(rng.integers(1, 4))
        if rng.random() < acoustics.insertion:
            frames += [(int(rng.integers(len(alphabet))), blank), (blank, -1)]
    frames += silence
    winners = [w for w, _ in frames]
    seconds = [s for _, s in frames]
    index = np.arange(len(frames))
    logits = rng.normal(0.0, acoustics.noise, (len(frames), alphabet.num_classes))
    logits[index, winners] += acoustics.peak
    has_second = np.asarray(seconds) >= 0
    # The runner-up is close, 0.5-3 nats behind, so a word model can overturn the choice.
    closeness = rng.uniform(0.5, 3.0, int(has_second.sum()))
    logits[index[has_second], np.asarray(seconds)[has_second]] += acoustics.peak - closeness
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (probabilities / probabilities.sum(axis=1, keepdims=True)).astype(np.float32)


def sentences(split: str, count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [draw_sentence(rng, split, SEED, SHARES) for _ in range(count)]


def held_out_words(share: float) -> frozenset[str]:
    """About `share` of the grammar's words, chosen by a hash: words the LM will never see."""
    return frozenset(
        w
        for w in vocabulary()
        if int(hashlib.blake2b(w.encode(), digest_size=4).hexdigest(), 16) / 2**32 < share
    )


@dataclass(frozen=True)
class Row:
    """One decoder's figures."""

    name: str
    seconds_per_audio_second: float
    wer: float
    cer: float
    unseen_kept: int  # test words the open LM never saw that appear in the transcript


def evaluate(
    name: str,
    decoder: Decoder,
    matrices: list[np.ndarray],
    references: list[str],
    unseen: frozenset[str],
) -> Row:
    start = time.perf_counter()
    hypotheses = [decoder(m) for m in matrices]
    seconds = time.perf_counter() - start
    audio_seconds = sum(len(m) for m in matrices) / FRAMES_PER_SECOND
    kept = sum(
        word in hypothesis.split()
        for reference, hypothesis in zip(references, hypotheses, strict=True)
        for word in reference.split()
        if word in unseen
    )
    return Row(name, seconds / audio_seconds, *corpus_error_rates(references, hypotheses), kept)


def section_head(acoustics: Acoustics, setting: str, lm_build_seconds: float) -> list[str]:
    """The section's head: what was measured (`setting`: the inputs and LMs), on what, by
    which command."""
    command = ".venv/bin/python benchmarks/decoding.py --markdown"
    intro = (
        "CTC decoding speed and accuracy on one core: greedy against flashlight-text's\n"
        "lexicon-free beam search, with KenLM word trigram models built by `deepspeech lm build`\n"
        "(interpolated modified Kneser-Ney). Inputs are synthetic softmax posteriors at 50\n"
        "frames/s of held-out sample-grammar sentences, with substitutions of confusable\n"
        f"letters ({acoustics.substitution:.0%} of characters), deletions "
        f"({acoustics.deletion:.0%}) and insertions ({acoustics.insertion:.0%}), the right label\n"
        "(or blank) a close runner-up in each."
    )
    machine = (
        f", Python {platform.python_version()}, numpy {np.__version__}, "
        f"flashlight-text {version('flashlight-text')}"
    )
    input_line = (
        f"- Input: {setting}; LM build (count, smooth, write ARPA) {lm_build_seconds:.2f} s"
    )
    return head(
        "Decoding", intro, command, input_line, command_note=one_core.PINNED, machine=machine
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=200, help="test utterances")
    parser.add_argument("--lm-sentences", type=int, default=20000, help="LM training sentences")
    parser.add_argument("--order", type=int, default=3, help="LM order")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="LM weight")
    parser.add_argument("--beta", type=float, default=DEFAULT_BETA, help="word bonus")
    args = parse_args(parser)

    alphabet = Alphabet.default()
    acoustics = Acoustics()
    references = sentences("test", args.utterances, seed=1)
    rng = np.random.default_rng(2)
    matrices = [synthetic_posteriors(s, alphabet, rng, acoustics) for s in references]
    audio_seconds = sum(len(m) for m in matrices) / FRAMES_PER_SECOND
    lm_text = sentences("train", args.lm_sentences, seed=3)
    unseen = held_out_words(HELD_OUT_SHARE)
    test_words = [w for s in references for w in s.split()]
    n_unseen = sum(w in unseen for w in test_words)
    oov_rate = n_unseen / len(test_words)
    texts = {
        "closed": lm_text,
        "open": [s for s in lm_text if not unseen.intersection(s.split())],
    }

    decoders: dict[str, Decoder] = {
        "greedy": GreedyDecoder(alphabet),
        "beam 64, no LM": BeamDecoder(alphabet, beam_width=64),
    }
    build_seconds = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, text in texts.items():
            arpa = Path(folder) / f"{name}.arpa"
            start = time.perf_counter()
            build_kneser_ney(text, args.order).write_arpa(arpa)
            build_seconds[name] = time.perf_counter() - start
            lm = load_language_model(arpa)
            for width in BEAM_WIDTHS:
                decoders[f"beam {width} + LM ({name})"] = BeamDecoder(
                    alphabet, beam_width=width, lm=lm, alpha=args.alpha, beta=args.beta
                )
    rows = {
        name: evaluate(name, decoder, matrices, references, unseen)
        for name, decoder in decoders.items()
    }

    setting = (
        f"{args.utterances} test-split sentences, {audio_seconds:.0f} s of audio; LMs of order "
        f"{args.order}: closed = {len(texts['closed'])} train-split sentences (every test word "
        f"seen), open = the {len(texts['open'])} of them without {len(unseen)} held-out words "
        f"({oov_rate:.1%} of test words unseen by the LM); alpha {args.alpha}, beta {args.beta}"
    )
    if not args.markdown:
        print(setting)
        for row in rows.values():
            print(
                f"{row.name:26s} {row.seconds_per_audio_second * 1e3:8.2f} ms per audio s "
                f"({1 / row.seconds_per_audio_second:7.0f}× real time)  WER {row.wer:6.1%}  "
                f"CER {row.cer:6.1%}  unseen words kept {row.unseen_kept}/{n_unseen}"
            )
        return

    table = [
        "| decoder | time per audio second | real time | WER | CER | unseen words kept |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {row.name} | {row.seconds_per_audio_second * 1e3:.2f} ms | "
            f"{1 / row.seconds_per_audio_second:.0f}× | {row.wer:.1%} | {row.cer:.1%} | "
            f"{row.unseen_kept}/{n_unseen} |"
            for row in rows.values()
        ),
    ]
    greedy = rows["greedy"]
    closed = rows[f"beam {DEFAULT_BEAM_WIDTH} + LM (closed)"]
    opened = rows[f"beam {DEFAULT_BEAM_WIDTH} + LM (open)"]
    summary = (
        f"The default beam ({DEFAULT_BEAM_WIDTH} + LM) decodes at "
        f"{1 / closed.seconds_per_audio_second:.0f}× real time on one core. On the sample "
        "grammar's closed vocabulary the LM corrects almost every error greedy makes (WER "
        f"{greedy.wer:.1%} -> {closed.wer:.1%}). With {oov_rate:.1%} of the test words unseen "
        f"by the LM the WER is {opened.wer:.1%}; {opened.unseen_kept} of those {n_unseen} "
        f"words survive (greedy: {greedy.unseen_kept}): an unknown word pays for its "
        "spelling, so one a letter away from a likely known word tends to become it (duck -> "
        "ducks), and one the acoustics garbled cannot be repaired by the LM. Lexicon-free "
        "search keeps unseen words possible, not free. Beam search without an LM gains "
        f"little ({rows['beam 64, no LM'].wer:.1%}): these posteriors are peaky, so the best "
        "path is nearly the best labelling. Synthetic errors are independent per character, "
        "which flatters the LM; `deepspeech evaluate --decoder beam --lm` gives the figures "
        "of a trained model."
    )
    print_result(table, summary, section_head(acoustics, setting, build_seconds["closed"]))


if __name__ == "__main__":
    main()
