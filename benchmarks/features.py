"""Feature extraction speed on one core: `audio_to_input_vector` against a per-frame loop.

Run: .venv/bin/python benchmarks/features.py [--seconds 60] [--repeats 7] [--markdown]

Both implementations run in the same process on the same audio, in interleaved repetitions,
so machine noise hits them alike; the ratio is the figure to trust, the times are rough.
"""

# Imported first, before NumPy: pins this process to one core and one BLAS thread.
import one_core

# isort: split
import argparse
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version

import numpy as np
import python_speech_features
from section import head, parse_args, print_result

from deepspeech.audio import (
    N_CEPSTRUM,
    N_CONTEXT,
    PCM16_SCALE,
    SAMPLE_RATE,
    audio_to_input_vector,
)

TARGET_REAL_TIME = 300  # × real time on one core, the goal for audio_to_input_vector


def synthetic_speech(seconds: float, seed: int = 0) -> np.ndarray:
    """Deterministic speech-like audio: (seconds * SAMPLE_RATE,) float32 in [-1, 1].

    Syllables of voiced sound (a gliding pitch with harmonics) alternate with noise bursts
    (like fricatives) and pauses, so frames vary as they do in speech.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pitch = 110 + 40 * np.sin(2 * np.pi * 0.3 * t) + 15 * np.sin(2 * np.pi * 2.1 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    voiced = sum(np.sin(k * phase) * np.exp(-k / 8) for k in range(1, 30))
    syllable = np.sin(np.pi * 4 * t) ** 2  # four syllables a second
    noise = rng.standard_normal(len(t)) * (np.sin(np.pi * 1.3 * t) > 0.8)
    pause = np.sin(np.pi * 0.25 * t) > -0.9  # a pause every few seconds
    audio = (0.15 * voiced * syllable + 0.05 * noise) * pause
    audio += 1e-3 * rng.standard_normal(len(t))  # a little room noise
    return (0.9 * audio / np.abs(audio).max()).astype(np.float32)


def per_frame_loop_features(audio: np.ndarray, numcep: int, numcontext: int) -> np.ndarray:
    """The same features built the way 2017-era code did: one Python iteration per frame, on
    the int16 sample values 2017 read from the WAV file."""
    int16_scale = audio.astype(np.float64) * PCM16_SCALE
    frames = python_speech_features.mfcc(int16_scale, SAMPLE_RATE, numcep=numcep)
    n_frames = len(frames)
    inputs = np.zeros((n_frames, numcep * (2 * numcontext + 1)), dtype=np.float32)
    empty = np.zeros(numcep)
    for t in range(n_frames):
        past = [frames[t + k] if t + k >= 0 else empty for k in range(-numcontext, 0)]
        future = [frames[t + k] if t + k < n_frames else empty for k in range(1, numcontext + 1)]
        inputs[t] = np.concatenate([*past, frames[t], *future])
    return (inputs - np.mean(inputs)) / np.std(inputs)


def mfcc_only(audio: np.ndarray, numcep: int, numcontext: int) -> np.ndarray:
    """python_speech_features alone: the floor any feature pipeline pays."""
    int16_scale = audio.astype(np.float64) * PCM16_SCALE
    return python_speech_features.mfcc(int16_scale, SAMPLE_RATE, numcep=numcep)


def vectorised_features(audio: np.ndarray, numcep: int, numcontext: int) -> np.ndarray:
    return audio_to_input_vector(audio, numcep, numcontext)


def time_interleaved(
    functions: dict[str, Callable[..., np.ndarray]], audio: np.ndarray, repeats: int
) -> dict[str, list[float]]:
    """Seconds per call for each function, alternating them within every repetition."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function(audio, N_CEPSTRUM, N_CONTEXT)
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="audio length to featurise")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repetitions")
    args = parse_args(parser)

    audio = synthetic_speech(args.seconds)
    fast = audio_to_input_vector(audio)
    slow = per_frame_loop_features(audio, N_CEPSTRUM, N_CONTEXT)
    assert fast.shape == slow.shape, (fast.shape, slow.shape)
    max_difference = float(np.abs(fast - slow).max())
    assert max_difference < 1e-5, f"implementations disagree by {max_difference}"

    functions = {
        "audio_to_input_vector": vectorised_features,
        "per-frame loop": per_frame_loop_features,
        "python_speech_features.mfcc alone": mfcc_only,
    }
    times = time_interleaved(functions, audio, args.repeats)
    rows = []
    for name, seconds in times.items():
        best, median = min(seconds), statistics.median(seconds)
        rows.append((name, best, median, args.seconds / best, args.seconds / median))
    fast_best, slow_best = min(times["audio_to_input_vector"]), min(times["per-frame loop"])
    speedup = slow_best / fast_best
    real_time = args.seconds / fast_best
    mfcc_share = min(times["python_speech_features.mfcc alone"]) / fast_best
    verdict = "met" if real_time >= TARGET_REAL_TIME else "NOT met"

    if not args.markdown:
        print(f"{args.seconds:g} s of audio -> features {fast.shape}, one core")
        for name, best, median, best_rt, median_rt in rows:
            print(
                f"{name:36s} best {best * 1e3:8.1f} ms ({best_rt:6.0f}× real time)"
                f"  median {median * 1e3:8.1f} ms ({median_rt:6.0f}×)"
            )
        print(f"vectorised / per-frame loop speed-up: {speedup:.1f}×")
        print(f"target ≥ {TARGET_REAL_TIME}× real time: {verdict}")
        print(f"max |difference| between implementations: {max_difference:.1e}")
        return

    table = [
        "| implementation | best | median | real time (best) | real time (median) |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {name} | {best * 1e3:.1f} ms | {median * 1e3:.1f} ms | "
            f"{best_rt:.0f}× | {median_rt:.0f}× |"
            for name, best, median, best_rt, median_rt in rows
        ),
    ]
    summary = (
        f"`audio_to_input_vector` is {speedup:.1f}× faster than the per-frame loop and runs "
        f"at {real_time:.0f}× real time on one core (target ≥ {TARGET_REAL_TIME}×: {verdict}). "
        f"python_speech_features' MFCC is {mfcc_share:.0%} of its time, so that is where any "
        "further speed would have to come from."
    )
    command = ".venv/bin/python benchmarks/features.py --markdown"
    if (args.seconds, args.repeats) != (60.0, 7):
        command += f" --seconds {args.seconds:g} --repeats {args.repeats}"
    intro = (
        "Speed of the feature pipeline (MFCC, stride 1, 9+1+9 context windows, whitening;\n"
        f"output `(T, {fast.shape[1]})` float32) on one core, against a per-frame Python loop\n"
        "computing the same features, in the same run with interleaved repetitions."
    )
    machine = (
        f", Python {platform.python_version()}, numpy {np.__version__}, "
        f"python_speech_features {version('python_speech_features')}, scipy {version('scipy')}"
    )
    input_line = (
        f"- Input: {args.seconds:g} s of deterministic synthetic speech-like audio "
        f"({fast.shape[0]} frames); {args.repeats} repetitions; outputs agree to "
        f"{max_difference:.1e}"
    )
    lines = head(
        "Features", intro, command, input_line, command_note=one_core.PINNED, machine=machine
    )
    print_result(table, summary, lines)


if __name__ == "__main__":
    main()
