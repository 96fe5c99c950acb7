"""Waveform augmentation speed per clip on one core: each augmentation, make run's recipe
against the clean featurizing it adds to, and the eq band-pass against scipy's designed filter.

Run: .venv/bin/python benchmarks/augmentation.py [--manifest runs/sample-corpus/train.csv]
     [--clips 300] [--repeats 5] [--markdown]

Every augmented epoch re-reads and re-featurizes the whole training set, so this per-clip cost
is paid clips x epochs times. All rows run in the same process on the same clips, in
interleaved repetitions, so machine noise hits them alike; the ratios are the figures to trust.
"""

# Imported first, before NumPy: pins this process to one core and one BLAS thread.
import one_core

# isort: split
import argparse
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import numpy as np
import yaml
from scipy.signal import butter, sosfiltfilt
from section import head, parse_args, print_result

from deepspeech.audio import SAMPLE_RATE, audio_to_features, load_wav
from deepspeech.data.augment import (
    EQ_FILTER_ORDER,
    apply_waveform_augmentations,
    band_pass,
    parse_augmentations,
)
from deepspeech.data.manifest import read_manifest

RECIPE = Path("experiments/sample.yaml")  # make run's augmentation
ALWAYS = {  # each augmentation on every clip (p=1), its other values as the defaults draw them
    "speed": "speed[p=1]",
    "noise (any colour or babble)": "noise[p=1]",
    "reverb": "reverb[p=1]",
    "pitch": "pitch[p=1]",
    "volume": "volume[p=1]",
    "eq band": "eq[p=1,mode=band]",
    "eq tilt": "eq[p=1,mode=tilt]",
    "eq telephone": "eq[p=1,mode=telephone]",
}
BAND_HZ = (300.0, 3400.0)  # the band the two band-pass implementations are compared on
# Only the edges differ (the filter's response wraps around the clip instead of being padded
# there), so agreement is measured away from them.
EDGE_SECONDS = 0.1

Clip = np.ndarray
Work = Callable[[int], object]  # does one clip's work, given its index


def designed_band_pass(audio: Clip, low_hz: float, high_hz: float) -> Clip:
    """The band-pass as scipy designs and runs it: second-order sections, forward and back."""
    sos = butter(EQ_FILTER_ORDER, [low_hz, high_hz], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    return sosfiltfilt(sos, audio.astype(np.float64)).astype(np.float32)


def band_pass_agreement(clips: list[Clip]) -> float:
    """Largest relative RMS difference between the two band-passes, edges left out."""
    edge = round(EDGE_SECONDS * SAMPLE_RATE)
    worst = 0.0
    for clip in clips:
        if clip.size <= 4 * edge:
            continue
        ours, scipys = band_pass(clip, *BAND_HZ), designed_band_pass(clip, *BAND_HZ)
        inner = slice(edge, clip.size - edge)
        difference = np.sqrt(np.mean(np.square(ours[inner] - scipys[inner], dtype=np.float64)))
        reference = np.sqrt(np.mean(np.square(scipys[inner], dtype=np.float64)))
        if reference > 0:
            worst = max(worst, float(difference / reference))
    return worst


def time_interleaved(works: dict[str, Work], n_clips: int, repeats: int) -> dict[str, float]:
    """Median milliseconds per clip of each work, alternating them within every repetition."""
    times: dict[str, list[float]] = {name: [] for name in works}
    for _ in range(repeats):
        for name, work in works.items():
            start = time.perf_counter()
            for index in range(n_clips):
                work(index)
            times[name].append((time.perf_counter() - start) / n_clips * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--manifest",
        type=Path,
        default=Path("runs/sample-corpus/train.csv"),
        help="clips to augment (make run writes the default)",
    )
    parser.add_argument("--clips", type=int, default=300, help="clips from the manifest's start")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repetitions")
    args = parse_args(parser)
    if not args.manifest.is_file():
        sys.exit(f"{args.manifest}: no such manifest; `make run` writes the sample corpus's")

    utterances = read_manifest(args.manifest)[: args.clips]
    paths = [str(u.wav_path) for u in utterances]
    clips = [load_wav(p) for p in paths]
    n = len(clips)
    babble = clips[: min(n, 64)]

    def babble_source(rng: np.random.Generator) -> Clip:
        return babble[int(rng.integers(len(babble)))]

    def augmenting(specs: list[str], *, read: bool = False) -> Work:
        """One clip's augmentation (read from its file first, as an epoch does, if `read`)."""
        parsed = parse_augmentations(specs)

        def work(index: int) -> Clip:
            audio = load_wav(paths[index]) if read else clips[index]
            rng = np.random.default_rng([0, 0, index])
            return apply_waveform_augmentations(audio, parsed, rng, babble_source)

        return work

    recipe_specs = list(yaml.safe_load(RECIPE.read_text(encoding="utf-8"))["augment"])
    read_and_augment = augmenting(recipe_specs, read=True)
    works: dict[str, Work] = {
        "read + MFCC (clean epoch)": lambda i: audio_to_features(load_wav(paths[i])),
        "read + recipe + MFCC (augmented epoch)": lambda i: audio_to_features(read_and_augment(i)),
        "recipe alone": augmenting(recipe_specs),
        **{name: augmenting([spec]) for name, spec in ALWAYS.items()},
        "eq band as scipy designs it (butter + sosfiltfilt)": lambda i: designed_band_pass(
            clips[i], *BAND_HZ
        ),
        "eq band as a response in the spectrum": lambda i: band_pass(clips[i], *BAND_HZ),
    }
    ms = time_interleaved(works, n, args.repeats)
    agreement = band_pass_agreement(clips)
    seconds = sum(c.size for c in clips) / SAMPLE_RATE / n

    clean, augmented = ms["read + MFCC (clean epoch)"], ms["read + recipe + MFCC (augmented epoch)"]
    designed = ms["eq band as scipy designs it (butter + sosfiltfilt)"]
    response = ms["eq band as a response in the spectrum"]
    recipe_text = ", ".join(recipe_specs)
    conclusion = (
        f"Make run's recipe ({recipe_text}) makes featurizing an epoch {augmented / clean:.2f}× "
        f"as costly as featurizing it clean ({augmented:.2f} against {clean:.2f} ms per "
        f"{seconds:.1f} s clip on one core). The eq band-pass as a response in the spectrum is "
        f"{designed / response:.1f}× as fast as scipy designing and running the same Butterworth "
        f"({response:.2f} against {designed:.2f} ms), and the two agree to {agreement:.1e} "
        f"relative RMS away from the clips' first and last {EDGE_SECONDS:g} s."
    )

    if not args.markdown:
        for name, value in ms.items():
            print(f"{name:52s} {value:7.2f} ms/clip")
        print(conclusion)
        return

    command = ".venv/bin/python benchmarks/augmentation.py --markdown"
    if (args.manifest, args.clips, args.repeats) != (Path("runs/sample-corpus/train.csv"), 300, 5):
        command += f" --manifest {args.manifest} --clips {args.clips} --repeats {args.repeats}"
    intro = (
        "Milliseconds per clip on one core for the waveform augmentations (each at p=1 with its\n"
        "default ranges), make run's recipe, and the featurizing around it, on the first\n"
        f"{n} clips of `{args.manifest}` (mean {seconds:.2f} s), in interleaved repetitions."
    )
    machine = (
        f", numpy {np.__version__}, scipy {version('scipy')}; {args.repeats} repetitions, medians"
    )
    table = [
        "| work per clip | ms |",
        "|---|---:|",
        *(f"| {name} | {value:.2f} |" for name, value in ms.items()),
    ]
    lines = head("Augmentation", intro, command, command_note=one_core.PINNED, machine=machine)
    print_result(table, conclusion, lines)


if __name__ == "__main__":
    main()
