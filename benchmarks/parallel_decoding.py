"""Beam search with the LM in one process against a `DecoderPool` on every core.

Run: .venv/bin/python benchmarks/parallel_decoding.py [--utterances 150] [--repeats 3]
     [--markdown]

The inputs are decoding.py's synthetic posteriors of held-out sample-grammar sentences and
its LM (built from training-split sentences). Both decoders run the same utterances, warm
(the pool's workers started and their LM read), in interleaved repetitions, and must give the
same texts; starting the pool is timed on its own, since `deepspeech evaluate` pays it once.
"""

import os

import decoding  # pins this process to one core when imported: undone below

os.sched_setaffinity(0, range(os.cpu_count() or 1))

import argparse  # noqa: E402
import datetime  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from machine import cpu_model  # noqa: E402

from deepspeech.decoding.decoders import DecoderConfig, make_decoder  # noqa: E402
from deepspeech.decoding.lm import build_kneser_ney  # noqa: E402
from deepspeech.decoding.pool import DecoderPool  # noqa: E402
from deepspeech.parallel import available_cpus  # noqa: E402
from deepspeech.text import Alphabet  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=150, help="test utterances")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--markdown", action="store_true", help="print a RESULTS.md section")
    args = parser.parse_args()

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
            times: dict[str, list[float]] = {"one process": [], f"pool of {workers}": []}
            for _ in range(args.repeats):
                start = time.perf_counter()
                in_process = [single(m) for m in matrices]
                times["one process"].append(time.perf_counter() - start)
                start = time.perf_counter()
                pooled = pool.decode_many(matrices)
                times[f"pool of {workers}"].append(time.perf_counter() - start)
                assert pooled == in_process, "the pool's texts differ from one process's"
    median = {name: statistics.median(t) for name, t in times.items()}
    one, many = median["one process"], median[f"pool of {workers}"]
    conclusion = (
        f"Beam search (64 + LM) over {len(matrices)} utterances ({audio_seconds:.0f} s of "
        f"audio) takes {one:.2f} s in one process and {many:.2f} s in a pool of {workers} "
        f"worker processes: {one / many:.2f}× as fast, with the same texts. Starting the pool "
        f"(spawning the workers, each reading the LM) took {startup:.2f} s, paid once per "
        "`deepspeech evaluate` and started while TensorFlow loads the model."
    )
    if not args.markdown:
        for name, seconds in median.items():
            print(f"{name:16s} {seconds:6.2f} s ({audio_seconds / seconds:5.0f}× real time)")
        print(conclusion)
        return
    command = ".venv/bin/python benchmarks/parallel_decoding.py --markdown"
    if (args.utterances, args.repeats) != (150, 3):
        command += f" --utterances {args.utterances} --repeats {args.repeats}"
    print("## Parallel decoding\n")
    print(
        "Beam search with the trigram LM (`deepspeech.decoding.pool.DecoderPool`, used by\n"
        "`deepspeech evaluate`, `lm tune` and training's reports) against one process, on the\n"
        "synthetic posteriors of *Decoding*, warm, in interleaved repetitions (medians).\n"
    )
    print(f"- Command: `{command}`")
    print(f"- Date: {datetime.date.today().isoformat()}")
    print(f"- Machine: {cpu_model()}, nproc {os.cpu_count()}; {args.repeats} repetitions\n")
    print("| decoder | seconds | real time |")
    print("|---|---:|---:|")
    for name, seconds in median.items():
        print(f"| {name} | {seconds:.2f} | {audio_seconds / seconds:.0f}× |")
    print(f"\n{conclusion}")


if __name__ == "__main__":
    main()
