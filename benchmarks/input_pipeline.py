"""Input pipeline alone: tf.data from the on-disk feature cache against the in-memory generator.

Run: .venv/bin/python benchmarks/input_pipeline.py [--corpus DIR] [--repeats 3] [--markdown]

Both deliver the same batches (one epoch's plan, batch 32, stride 1) with nothing training:
audio seconds delivered per second of wall time is the ceiling the pipeline puts on training.
The baseline is what training did before the cache: every utterance's 494-wide float32 context
windows held in memory (built here from the same cached MFCC), padded per batch in Python and
fed through `tf.data.Dataset.from_generator`. The two run interleaved in one process, so machine
noise hits both alike; the table shows the best of `--repeats` runs each.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from inputs import required_file
from section import head, parse_args, print_result

BATCH = 32
STRIDE = 1


def in_memory_windows(cached) -> list[np.ndarray]:
    """Every utterance's context windows, float32, as the pre-cache trainer held them."""
    from deepspeech.audio import N_CONTEXT, add_context_windows, whiten

    windows = []
    for shard in cached.shards:
        frames = np.fromfile(shard.feature_file, np.float16).reshape(-1, cached.numcep)
        for block in np.split(frames.astype(np.float32), np.cumsum(shard.frames)[:-1]):
            windows.append(whiten(add_context_windows(block, N_CONTEXT)))
    return windows


def generator_dataset(windows: list[np.ndarray], steps: np.ndarray, labels: list[np.ndarray]):
    """The pre-cache pipeline: Python pads each batch, tf.data wraps the generator."""
    import tensorflow as tf

    width = windows[0].shape[1]

    def generate():
        for ids in steps:
            feats = [windows[i] for i in ids]
            lengths = np.array([f.shape[0] for f in feats], np.int32)
            batch = np.zeros((len(ids), lengths.max(), width), np.float32)
            label_lengths = np.array([labels[i].size for i in ids], np.int32)
            padded = np.zeros((len(ids), label_lengths.max()), np.int32)
            for row, i in enumerate(ids):
                batch[row, : lengths[row]] = windows[i]
                padded[row, : label_lengths[row]] = labels[i]
            yield batch, lengths, padded, label_lengths

    signature = (
        tf.TensorSpec((None, None, width), tf.float32),
        tf.TensorSpec((None,), tf.int32),
        tf.TensorSpec((None, None), tf.int32),
        tf.TensorSpec((None,), tf.int32),
    )
    return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(
        tf.data.AUTOTUNE
    )


def seconds_to_drain(dataset) -> float:
    start = time.perf_counter()
    for _ in dataset:
        pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("runs/sample-corpus"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parse_args(parser)

    import tensorflow as tf

    from deepspeech.data.cache import open_cached_set, read_manifests
    from deepspeech.data.pipeline import epoch_plan, make_dataset
    from deepspeech.text import Alphabet

    manifest = required_file(args.corpus / "train.csv", "`deepspeech data sample`")
    alphabet = Alphabet.default()
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache:
        started = time.perf_counter()
        cached = open_cached_set(read_manifests(manifest, alphabet), Path(cache), 26, alphabet)
        featurize_seconds = time.perf_counter() - started
        plan = epoch_plan(cached, batch_size=BATCH, replicas=1, stride=STRIDE, seed=0, epoch=0)
        steps = plan.step_ids()[:, 0]
        audio_seconds = cached.frames[steps.reshape(-1)].sum() / 100
        windows = in_memory_windows(cached)
        labels = [alphabet.encode(u.transcript) for u in cached.utterances]
        memory_mb = sum(w.nbytes for w in windows) / 1e6
        times: dict[str, list[float]] = {"cache": [], "generator": []}
        for _ in range(args.repeats):
            times["cache"].append(seconds_to_drain(make_dataset(cached, plan, STRIDE)))
            times["generator"].append(seconds_to_drain(generator_dataset(windows, steps, labels)))
        cache_mb, hours = cached.nbytes / 1e6, cached.audio_hours

    speed = {name: audio_seconds / min(t) for name, t in times.items()}
    ratio = speed["cache"] / speed["generator"]
    table = [
        "| pipeline | audio s per s (best) | epoch (best) | features held |",
        "|---|---:|---:|---:|",
        f"| tf.data from the feature cache | {speed['cache']:,.0f}× | "
        f"{min(times['cache']):.2f} s | a window (~30 min of audio) at a time |",
        f"| in-memory context windows + from_generator | {speed['generator']:,.0f}× | "
        f"{min(times['generator']):.2f} s | {memory_mb:,.0f} MB (all of train) |",
    ]
    target = "meets" if speed["cache"] >= 20_000 else "misses"
    summary = (
        f"The cache pipeline delivers {ratio:.1f}× the audio per second of the in-memory "
        f"generator, {speed['cache']:,.0f}× real time, which {target} the 20,000× target. "
        f"The cache holds {hours:.2f} h of audio in {cache_mb:.1f} MB "
        f"({cache_mb / hours:.1f} MB per audio hour, stride 1), where the in-memory windows "
        f"took {memory_mb / hours:,.0f} MB per audio hour; building it took "
        f"{featurize_seconds:.0f} s ({hours * 3600 / featurize_seconds:.0f}× real time)."
    )
    intro = (
        f"One epoch's batches of the sample corpus' train set ({len(steps)} batches of {BATCH}, "
        f"{audio_seconds / 3600:.2f} h of audio), nothing training; best of {args.repeats} "
        "interleaved runs."
    )
    command = ".venv/bin/python benchmarks/input_pipeline.py --markdown"
    machine = f", TensorFlow {tf.__version__}"
    lines = head("Input pipeline", intro, command, machine=machine) if args.markdown else None
    print_result(table, summary, lines)


if __name__ == "__main__":
    main()
