"""int8 against fp32: onnxruntime dynamic quantization (`export --quantize int8`), batch 1.

Run: .venv/bin/python benchmarks/quantization.py [--n-hidden 1024] [--seconds 10]
     [--repeats 5] [--checkpoint-dir DIR] [--markdown]

Speed: a BiRNN with random weights is exported with the real export code, quantized with
`deepspeech.export.quantize.quantize_int8`, and timed on the features of `--seconds` of audio:
onnxruntime fp32, onnxruntime int8 (with the usable CPUs, and with 1 thread as the server runs)
and TensorFlow running the model as trained, interleaved in one process. Speed does not
depend on what the weights say. Accuracy does: with `--checkpoint-dir`, that trained model is
exported twice (fp32, int8) and both transcribe its run's test set (greedy); the WER change is
the figure that matters. Without it, no WER is claimed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from inference import random_birnn, time_interleaved, traced_softmax
from inputs import with_metadata
from section import head, parse_args

from deepspeech.audio import N_CEPSTRUM, n_feature_frames
from deepspeech.export.convert import convert_to_onnx
from deepspeech.export.quantize import MAX_WER_INCREASE, quantize_int8
from deepspeech.metrics import word_error_percent
from deepspeech.parallel import available_cpus
from deepspeech.runtime.offline import OfflineModel
from deepspeech.runtime.session import Placement

# This folder's serving.py would shadow the server package (used for the WER): drop the folder.
del sys.path[0]

TARGET_VS_FP32 = 2.0  # int8 speed over fp32 onnxruntime
TARGET_VS_TF = 3.0  # int8 speed over TensorFlow as trained
TARGET_SIZE_RATIO = 0.3  # int8 file over fp32 file
FP32, INT8 = "ORT fp32", "ORT int8"
FP32_ONE, INT8_ONE = "ORT fp32, 1 thread", "ORT int8, 1 thread"
TF_TRAINED = "TensorFlow, as trained"


def speed(n_hidden: int, seconds: float, repeats: int) -> dict:
    """Times (best of `repeats`), file sizes and max |fp32 - int8| probability."""
    import tensorflow as tf

    model = random_birnn(n_hidden)
    proto, _ = convert_to_onnx(model)
    fp32 = with_metadata(proto, n_hidden)
    int8 = quantize_int8(proto).SerializeToString()
    del proto

    frames = n_feature_frames(round(seconds * 16000))
    x = np.random.default_rng(0).standard_normal((1, frames, N_CEPSTRUM)).astype(np.float32)
    n = np.array([frames], np.int32)
    cpus = available_cpus()
    models = {
        FP32: OfflineModel.load(fp32, Placement(threads=cpus)),
        INT8: OfflineModel.load(int8, Placement(threads=cpus)),
        FP32_ONE: OfflineModel.load(fp32, Placement(threads=1)),
        INT8_ONE: OfflineModel.load(int8, Placement(threads=1)),
    }
    tf_masked = traced_softmax(lambda features, lengths: model(features, lengths, training=False))
    runners = {name: (lambda m=m: m.run(list(x))[0]) for name, m in models.items()}
    runners[TF_TRAINED] = lambda: tf_masked(x, n).numpy()
    outputs = {name: run() for name, run in runners.items()}  # warm-up
    times = time_interleaved(runners, repeats)
    return {
        "frames": frames,
        "best": {name: min(t) for name, t in times.items()},
        "median": {name: statistics.median(t) for name, t in times.items()},
        "fp32_bytes": len(fp32),
        "int8_bytes": len(int8),
        "max_diff": float(np.abs(outputs[FP32] - outputs[INT8]).max()),
        "tf_version": tf.__version__,
    }


def accuracy(checkpoint_dir: Path) -> dict:
    """A trained checkpoint exported fp32 and quantized: test-set WER of both, and what
    `export --quantize int8`'s own check (on the parity utterances) said."""
    import onnx

    from deepspeech.data.manifest import read_manifests
    from deepspeech.errors import ExportError
    from deepspeech.export.config import ExportConfig
    from deepspeech.export.pipeline import export_model
    from deepspeech.export.quantize import set_quantization
    from deepspeech.training.checkpoint import read_run_info
    from serving.inference import open_model
    from serving.recordings import transcribe_files

    info = read_run_info(checkpoint_dir)
    test_files = info.train_options["test_files"]
    with tempfile.TemporaryDirectory(prefix="bench-int8-") as tmp:
        files = {FP32: export_model(ExportConfig(checkpoint_dir, Path(tmp) / "fp32.onnx")).output}
        int8 = quantize_int8(onnx.load(files[FP32]))
        set_quantization(int8, "int8")
        files[INT8] = Path(tmp) / "int8.onnx"
        onnx.save(int8, files[INT8])
        try:
            check = export_model(
                ExportConfig(checkpoint_dir, Path(tmp) / "c.onnx", quantize="int8")
            )
            verdict_text = (
                f"passed: {check.quantization_check.int8_wer:.2f}% against "
                f"{check.quantization_check.fp32_wer:.2f}%"
            )
        except ExportError as e:
            verdict_text = f"refused the int8 model: {e}"
        utterances = read_manifests(test_files, info.alphabet)
        paths = [str(u.wav_path) for u in utterances]
        references = [u.transcript for u in utterances]
        wer = {}
        for name, path in files.items():
            texts = [r.text or "" for r in transcribe_files(open_model(path), paths)]
            wer[name] = word_error_percent(references, texts)
    return {
        "checkpoint": str(checkpoint_dir),
        "n_hidden": info.model.n_hidden,
        "test_files": test_files,
        "utterances": len(paths),
        "wer": wer,
        "check": verdict_text,
    }


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def section_head(args: argparse.Namespace, s: dict) -> list[str]:
    """The section's head: what was measured (`s`: `speed`'s figures), on what, by which
    command."""
    command = ".venv/bin/python benchmarks/quantization.py --markdown"
    if (args.n_hidden, args.seconds, args.repeats) != (1024, 10.0, 5):
        command += f" --n-hidden {args.n_hidden} --seconds {args.seconds:g}"
        command += f" --repeats {args.repeats}"
    if args.checkpoint_dir:
        command += f" --checkpoint-dir {args.checkpoint_dir}"
    intro = (
        f"One utterance ({args.seconds:g} s of audio = {s['frames']} feature frames at stride 1, "
        f"batch 1) through a BiRNN (n_hidden {args.n_hidden}, random weights): onnxruntime on "
        "the fp32 export and on its int8 dynamic quantization (`export --quantize int8`: "
        "DynamicQuantizeLSTM, MatMulInteger), and TensorFlow on the same weights as trained, "
        "interleaved in one process. Times are the best of the repetitions."
    )
    machine = (
        f", Python {platform.python_version()}, onnxruntime {version('onnxruntime-gpu')} "
        f"(CPU provider, {available_cpus()} threads unless marked), tensorflow {s['tf_version']}"
    )
    repetitions = (
        f"- {args.repeats} repetitions; max |fp32 − int8| probability "
        f"{s['max_diff']:.2g} (random weights)"
    )
    return head("Quantization", intro, command, repetitions, machine=machine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-hidden", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=10.0, help="audio length per call")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repetitions")
    parser.add_argument("--checkpoint-dir", type=Path, help="a trained run, for the WER change")
    args = parse_args(parser)

    s = speed(args.n_hidden, args.seconds, args.repeats)
    best = s["best"]
    vs_fp32 = best[FP32] / best[INT8]
    vs_fp32_one = best[FP32_ONE] / best[INT8_ONE]
    vs_tf = best[TF_TRAINED] / best[INT8]
    size_ratio = s["int8_bytes"] / s["fp32_bytes"]
    acc = accuracy(args.checkpoint_dir) if args.checkpoint_dir else None

    lines = [
        *section_head(args, s),
        "| implementation | best | median | int8 speed-up |",
        "|---|---:|---:|---:|",
    ]
    for name in (INT8, FP32, INT8_ONE, FP32_ONE, TF_TRAINED):
        reference = INT8_ONE if name in (INT8_ONE, FP32_ONE) else INT8
        lines.append(
            f"| {name} | {best[name] * 1e3:.1f} ms | {s['median'][name] * 1e3:.1f} ms | "
            f"{best[name] / best[reference]:.2f}× |"
        )
    lines += [
        "",
        "| file | size |",
        "|---|---:|",
        f"| fp32 | {s['fp32_bytes'] / 1e6:.1f} MB |",
        f"| int8 | {s['int8_bytes'] / 1e6:.1f} MB ({size_ratio:.2f}×) |",
        "",
    ]
    sentence = (
        f"int8 is {vs_fp32:.2f}× as fast as fp32 onnxruntime ({vs_fp32_one:.2f}× with 1 thread; "
        f"target ≥ {TARGET_VS_FP32:g}×: {verdict(vs_fp32 >= TARGET_VS_FP32)}) and "
        f"{vs_tf:.1f}× as fast as TensorFlow as trained (target ≥ {TARGET_VS_TF:g}×: "
        f"{verdict(vs_tf >= TARGET_VS_TF)}); the file is {size_ratio:.2f}× the fp32 size "
        f"(target ≤ {TARGET_SIZE_RATIO:g}×: {verdict(size_ratio <= TARGET_SIZE_RATIO)})."
    )
    if acc is None:
        sentence += " WER change: not measured in this run (no --checkpoint-dir)."
    else:
        change = acc["wer"][INT8] - acc["wer"][FP32]
        lines += [
            f"Accuracy: the trained run in `{acc['checkpoint']}` (n_hidden {acc['n_hidden']}), "
            f"exported fp32 and quantized, greedy decoding of its test set "
            f"({acc['utterances']} utterances of `{acc['test_files']}`). "
            f"`export --quantize int8`'s check on the parity utterances {acc['check']}.\n",
            "| model | test WER |",
            "|---|---:|",
            f"| fp32 | {acc['wer'][FP32]:.2f}% |",
            f"| int8 | {acc['wer'][INT8]:.2f}% |",
            "",
        ]
        sentence += (
            f" On the trained model's test set int8 changes WER by {change:+.2f} points "
            f"(target ≤ +{MAX_WER_INCREASE:g}: {verdict(change <= MAX_WER_INCREASE)})."
        )
    lines.append(sentence)
    text = "\n".join(lines)
    print(text if args.markdown else text.replace("## ", ""))


if __name__ == "__main__":
    main()
