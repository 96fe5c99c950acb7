"""Robustness: test WER of trained models on clean, noisy (20/10/5 dB SNR) and reverberant audio.

Run: .venv/bin/python benchmarks/robustness.py --model augmented=runs/sample/checkpoints
         --model clean=runs/sample-clean/checkpoints [--lm runs/sample/lm.arpa]
         [--corpus runs/sample-corpus] [--markdown]

`runs/sample` is what `make run` trains (with augmentation); its baseline is the same recipe
without it: `.venv/bin/deepspeech train --config experiments/sample.yaml --augment none
--checkpoint-dir runs/sample-clean/checkpoints --experiment-name sample-clean`. With the
recipe's `--augment` flags less one (and a folder of its own), what that augmentation adds; with
`--config experiments/sample-streaming.yaml`, the streaming model of the same recipe.

Each condition is a deterministic copy of the test split (seed per utterance): pink noise at
the given SNR (over the whole clip), or a synthetic room response (RT60 0.6 s, DRR 3 dB). Where
flite is installed (`apt-get install flite`; a Debian package, not a project dependency), one
more copy has the test sentences spoken by another speech engine: flite's five English voices
in turn, none of which training heard. Every model is evaluated on every copy with greedy
decoding and, with `--lm`, beam search with the LM, through the same evaluation code training
uses.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from section import head, parse_args, print_result

NOISE_SNRS_DB = (20, 10, 5)
REVERB_RT60_S, REVERB_DRR_DB = 0.6, 3.0
FLITE_VOICES = ("slt", "rms", "awb", "kal16", "kal")  # flite 2.2's English voices (kal: 8 kHz)


def degrade(audio: np.ndarray, condition: str, rng: np.random.Generator) -> np.ndarray:
    from deepspeech.data.augment import (
        add_noise,
        colored_noise,
        reverberate,
        room_impulse_response,
    )

    if condition == "clean":
        return audio
    if condition == "reverb":
        return reverberate(audio, room_impulse_response(REVERB_RT60_S, REVERB_DRR_DB, rng))
    snr = float(condition.split()[0])
    return add_noise(audio, colored_noise(audio.size, "pink", rng), snr)


def flite_speech(text: str, index: int, folder: Path) -> np.ndarray:
    """`text` spoken by flite voice `index` mod 5: (n,) float32 at 16 kHz."""
    from deepspeech.audio import load_audio

    wav = folder / "flite.wav"
    voice = FLITE_VOICES[index % len(FLITE_VOICES)]
    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(wav)], check=True)
    return load_audio(wav)


def conditions() -> list[str]:
    other_engine = ["flite"] if shutil.which("flite") else []
    return ["clean", *(f"{snr} dB" for snr in NOISE_SNRS_DB), "reverb", *other_engine]


def make_condition_set(corpus: Path, condition: str, out: Path) -> Path:
    """A manifest of the test split under `condition`, WAVs written under `out`."""
    from deepspeech.audio import load_wav, write_wav
    from deepspeech.data.manifest import Utterance, read_manifest, write_manifest

    utterances = []
    out.mkdir(parents=True, exist_ok=True)
    for index, utterance in enumerate(read_manifest(corpus / "test.csv")):
        if condition == "flite":
            audio = flite_speech(utterance.transcript, index, out)
        else:
            rng = np.random.default_rng([index, len(condition)])
            audio = np.clip(degrade(load_wav(utterance.wav_path), condition, rng), -1, 1)
        path = out / f"{index:05d}.wav"
        write_wav(path, audio.astype(np.float32))
        utterances.append(Utterance(path, path.stat().st_size, utterance.transcript))
    manifest = out / "test.csv"
    write_manifest(manifest, utterances)
    return manifest


def evaluate(checkpoint: Path, manifest: Path, cache: Path, lm: Path | None) -> dict[str, float]:
    from deepspeech.data.cache import open_cached_set, read_manifests
    from deepspeech.decoding.decoders import DecoderConfig
    from deepspeech.decoding.pool import batch_decoder
    from deepspeech.training.checkpoint import restore_inference_model
    from deepspeech.training.evaluate import evaluate_set, make_eval_step

    model, info = restore_inference_model(checkpoint)
    cached = open_cached_set(
        read_manifests(manifest, info.alphabet), cache, info.features.numcep, info.alphabet
    )
    step = make_eval_step(model, info.features.numcep)
    decoders = {"greedy": DecoderConfig()}
    if lm:
        decoders["lm"] = DecoderConfig(decoder="beam", beam_width=64, lm_path=lm)
    results = {}
    for name, config in decoders.items():
        with batch_decoder(config, info.alphabet, kind="logits") as decoder:
            report = evaluate_set(
                step, cached, info.features.stride, info.alphabet, "test", 0, decoder=decoder
            )
        results[name] = report.wer
    return results


def compare(results: dict[tuple[str, str], dict[str, float]], a: str, b: str) -> str:
    """How model `a` compares with `b` on the noisiest and the clean greedy condition."""
    noisy = f"{min(NOISE_SNRS_DB)} dB"

    def ratio(condition: str, decoder: str = "greedy") -> str:
        mine, theirs = results[a, condition][decoder], results[b, condition][decoder]
        if mine == 0 or theirs == 0:
            return f"{mine:.2%} against {theirs:.2%}"
        factor = theirs / mine if theirs >= mine else mine / theirs
        word = "lower" if theirs >= mine else "higher"
        return f"{mine:.2%} against {theirs:.2%}, {factor:.1f}× {word}"

    voices = ""
    if "flite" in conditions():
        decoder = "lm" if "lm" in results[a, "flite"] else "greedy"
        voices = f"; on flite's voices ({decoder}) {ratio('flite', decoder)}"
    return (
        f"{a} against {b}, greedy: at {noisy} SNR {ratio(noisy)}; at 10 dB {ratio('10 dB')}; "
        f"with reverb {ratio('reverb')}; on clean audio {ratio('clean')}{voices}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="NAME=CHECKPOINT_DIR")
    parser.add_argument("--lm", type=Path, help="ARPA LM for beam search (optional)")
    parser.add_argument("--corpus", type=Path, default=Path("runs/sample-corpus"))
    args = parse_args(parser)
    models = dict(spec.split("=", 1) for spec in args.model)

    results: dict[tuple[str, str], dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-robust-") as tmp:
        for condition in conditions():
            folder = Path(tmp) / condition.replace(" ", "")
            manifest = make_condition_set(args.corpus, condition, folder)
            for name, checkpoint in models.items():
                results[name, condition] = evaluate(
                    Path(checkpoint), manifest, Path(tmp) / "cache", args.lm
                )

    decoders = ["greedy", "lm"] if args.lm else ["greedy"]
    header = "| model | decoding | " + " | ".join(conditions()) + " |"
    table = [header, "|---|---|" + "---:|" * len(conditions())]
    for name in models:
        for decoder in decoders:
            cells = [f"{results[name, c][decoder]:.2%}" for c in conditions()]
            table.append(f"| {name} | {decoder} | " + " | ".join(cells) + " |")
    sentences = []
    for name in models:
        clean, noisy = results[name, "clean"]["greedy"], results[name, "10 dB"]["greedy"]
        ratio = noisy / clean if clean > 0 else float("inf")
        verdict = "within" if ratio <= 2 else "over"
        sentences.append(
            f"{name}: greedy WER at 10 dB SNR is {ratio:.1f}× clean ({verdict} the 2× target)."
        )
    first, *others = models
    for name in others:
        sentences.append(compare(results, first, name))
    if "flite" in conditions():
        for name in models:
            heard = ", ".join(f"{d} {results[name, 'flite'][d]:.2%}" for d in decoders)
            sentences.append(f"{name} on another engine's voices (flite): WER {heard}.")
    else:
        sentences.append("flite is not installed, so no other engine's voices were measured.")
    summary = " ".join(sentences)
    if not args.markdown:
        print_result(table, summary)
        return
    spoken = f", and spoken by flite's voices {', '.join(FLITE_VOICES)} in turn"
    intro = (
        "Test split of the sample corpus (held-out voices and sentences), clean and degraded: "
        f"pink noise at {', '.join(map(str, NOISE_SNRS_DB))} dB SNR, and reverb (RT60 "
        f"{REVERB_RT60_S} s, DRR {REVERB_DRR_DB} dB){spoken if 'flite' in conditions() else ''}. "
        "Models: " + ", ".join(f"`{n}` = {c}" for n, c in models.items()) + "."
    )
    options = " ".join(f"--model {n}={c}" for n, c in models.items())
    lm = f" --lm {args.lm}" if args.lm else ""
    command = f".venv/bin/python benchmarks/robustness.py {options}{lm} --markdown"
    print_result(table, summary, head("Robustness", intro, command))


if __name__ == "__main__":
    main()
