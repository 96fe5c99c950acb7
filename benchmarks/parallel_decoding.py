"""Beam search with the LM in one process against a `DecoderPool` on every core.

Run: .venv/bin/python benchmarks/parallel_decoding.py [--utterances 150] [--repeats 3]
     [--batch-size 32] [--markdown]

The inputs are decoding.py's synthetic posteriors of held-out sample-grammar sentences and
its LM (built from training-split sentences). Every way runs the same utterances, warm (the
pool's workers started and their LM read), in interleaved repetitions, and must give the same
texts: one process; the pool given every utterance at once; the pool given batches as
`evaluate` scores them, waiting for each; and the same batches kept in flight
(`decode_batches`, what `evaluate` does). Starting the pool is timed on its own, since
`deepspeech evaluate` pays it once.
"""

import os

import decoding  # pins this process to one core when imported: undone below

os.sched_setaffinity(0, range(os.cpu_count() or 1))

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from section import head, parse_args, print_result  # noqa: E402

from deepspeech.decoding.decoders import DecoderConfig, make_decoder  # noqa: E402
from deepspeech.decoding.lm import build_kneser_ney  # noqa: E402
from deepspeech.decoding.pool import BATCHES_IN_FLIGHT, DecoderPool, decode_batches  # noqa: E402
from deepspeech.parallel import available_cpus  # noqa: E402
from deepspeech.runtime.graph import pad_features  # noqa: E402
from deepspeech.text import Alphabet  # noqa: E402


def padded_batches(matrices: list[np.ndarray], size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Consecutive groups of `size` matrices as padded (batch, frames, classes) + lengths,
    the shape the model's batches reach the decoder in."""
    return [pad_features(matrices[start : start + size]) for start in range(0, len(matrices), size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=150, help="test utterances")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="utterances per batch (evaluate's: deepspeech.data.pipeline.EVAL_BATCH_SIZE)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions")
    args = parse_args(parser)

    alphabet = Alphabet.default()
    references = decoding.sentences("test", args.utterances, seed=1)
    rng = np.random.default_rng(2)
    acoustics = decoding.Acoustics()
    matrices = [decoding.synthetic_posteriors(s, alphabet, rng, acoustics) for s in references]
    audio_seconds = sum(len(m) for m in matrices) / decoding.FRAMES_PER_SECOND
    workers = available_cpus()
    with tempfile.TemporaryDirectory(prefix="parallel-decoding-") as tmp:
        lm_path = Path(tmp) / "lm.arpa"
        build_kneser_ney(decoding.sentences("train", 20000, seed=3), order=3).write_arpa(lm_path)
        config = DecoderConfig(decoder="beam", lm_path=lm_path)
        single = make_decoder(config, alphabet, kind="probabilities")
        pool = DecoderPool(config, alphabet, kind="probabilities", workers=workers)
        start = time.perf_counter()
        with pool:
            pool.decode_many(matrices[:workers])  # waits for every worker to be ready
            startup = time.perf_counter() - start
            batches = padded_batches(matrices, args.batch_size)
            runs = {
                "one process": lambda: [single(m) for m in matrices],
                f"pool of {workers}, all at once": lambda: pool.decode_many(matrices),
                f"pool of {workers}, batch by batch": lambda: [
                    text
                    for scores, lengths in batches
                    for text in pool.decode_batch(scores, lengths)
                ],
                f"pool of {workers}, {BATCHES_IN_FLIGHT} batches in flight": lambda: [
                    text
                    for _, texts in decode_batches(pool, ((None, *b) for b in batches))
                    for text in texts
                ],
            }
            times: dict[str, list[float]] = {name: [] for name in runs}
            for _ in range(args.repeats):
                texts = {}
                for name, run in runs.items():
                    start = time.perf_counter()
                    texts[name] = run()
                    times[name].append(time.perf_counter() - start)
                for name, decoded in texts.items():
                    assert decoded == texts["one process"], f"{name}: other texts"
    median = {name: statistics.median(t) for name, t in times.items()}
    one, many = median["one process"], median[f"pool of {workers}, all at once"]
    by_batch = median[f"pool of {workers}, batch by batch"]
    in_flight = median[f"pool of {workers}, {BATCHES_IN_FLIGHT} batches in flight"]
    conclusion = (
        f"Beam search (64 + LM) over {len(matrices)} utterances ({audio_seconds:.0f} s of "
        f"audio) takes {one:.2f} s in one process and {many:.2f} s in a pool of {workers} "
        f"worker processes given them all at once: {one / many:.2f}× as fast, with the same "
        f"texts. In batches of {args.batch_size}, as `evaluate` scores them, waiting for each "
        f"batch takes {by_batch:.2f} s ({one / by_batch:.2f}×) and keeping {BATCHES_IN_FLIGHT} "
        f"batches in flight {in_flight:.2f} s ({one / in_flight:.2f}×). Starting the pool "
        f"(spawning the workers, each reading the LM) took {startup:.2f} s, paid once per "
        "`deepspeech evaluate` and started while TensorFlow loads the model."
    )
    if not args.markdown:
        for name, seconds in median.items():
            print(f"{name:16s} {seconds:6.2f} s ({audio_seconds / seconds:5.0f}× real time)")
        print(conclusion)
        return
    command = ".venv/bin/python benchmarks/parallel_decoding.py --markdown"
    if (args.utterances, args.repeats, args.batch_size) != (150, 3, 32):
        command += (
            f" --utterances {args.utterances} --repeats {args.repeats}"
            f" --batch-size {args.batch_size}"
        )
    intro = (
        "Beam search with the trigram LM (`deepspeech.decoding.pool.DecoderPool`, used by\n"
        "`deepspeech evaluate`, `lm tune` and training's reports) against one process, on the\n"
        "synthetic posteriors of *Decoding*, warm, in interleaved repetitions (medians)."
    )
    table = [
        "| decoder | seconds | real time |",
        "|---|---:|---:|",
        *(
            f"| {name} | {seconds:.2f} | {audio_seconds / seconds:.0f}× |"
            for name, seconds in median.items()
        ),
    ]
    lines = head("Parallel decoding", intro, command, machine=f"; {args.repeats} repetitions")
    print_result(table, conclusion, lines)


if __name__ == "__main__":
    main()
