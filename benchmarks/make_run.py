"""The figures of the last `make run`, read from what it left under runs/ (nothing is re-run).

Run: make run && .venv/bin/python benchmarks/make_run.py [--runs runs] [--markdown]

From the MLflow store (runs/mlflow.db): the sample run's steps, epochs, augmentation, training
time and test WER/CER (greedy, through the training evaluation); from
runs/sample/beam-report.json (make run's `evaluate --decoder beam --lm`): the same test set with
beam search and the LM; from runs/make-run.started and .finished (written by make run itself):
the whole job's time, install excluded; from runs/make-run.stages (also make run's) and the
run's per-epoch `epoch_featurize_seconds`, `epoch_train_seconds` and `dev_seconds`: where that
time went. The README quotes this section instead of hand-copied numbers.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import json
from pathlib import Path

from inputs import required_file
from machine import cpu_model
from section import head, parse_args, print_result


def trained_by_last_make_run(runs: Path, trained_from: float) -> bool:
    """Whether the training run (started at `trained_from`, epoch seconds) is the last make
    run's own. A make run over an existing runs/ resumes a finished training and takes about
    a minute: that is no job's time."""
    started = runs / "make-run.started"
    return started.is_file() and trained_from >= int(started.read_text())


def whole_job(runs: Path, fresh: bool) -> str:
    """The sentence on make run's own timing, or '' when the last make run did not finish;
    `fresh`: it trained the model (`trained_by_last_make_run`)."""
    started, finished = runs / "make-run.started", runs / "make-run.finished"
    if not (started.is_file() and finished.is_file()):
        return ""
    if not fresh:
        return (
            "The last `make run` found its training already done, so its time is not a whole "
            "job's (`rm -rf runs` before `make run` times one). "
        )
    seconds = int(finished.read_text()) - int(started.read_text())
    verdict = "within" if seconds <= 12 * 60 else "over"
    return (
        f"`make run` took {seconds // 60} min {seconds % 60:02d} s end to end, install excluded "
        f"({verdict} the 12-minute target). "
    )


STAGES = {  # make run's commands, by the name the Makefile stamps when each ends
    "corpus": "synthesise the sample corpus (`data sample`)",
    "train": "`train`",
    "lm": "build the trigram LM (`lm build`)",
    "export": "export to ONNX (`export`)",
    "evaluate": "beam search + LM on the test set (`evaluate`)",
    "transcribe": "transcribe the test set with onnxruntime (`transcribe`)",
}
EPOCH_PARTS = {  # per-epoch metrics of the training run, part of `train`'s time
    "epoch_featurize_seconds": "featurize each epoch's augmented audio",
    "epoch_train_seconds": "training steps",
    "dev_seconds": "dev report",
}


def stage_seconds(runs: Path) -> dict[str, float]:
    """Seconds each of make run's commands took, from runs/make-run.stages ({} if absent)."""
    path = runs / "make-run.stages"
    if not path.is_file():
        return {}
    stamps = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return {
        name: float(end) - float(start) for (_, start), (name, end) in itertools.pairwise(stamps)
    }


def breakdown(stages: dict[str, float], epochs: dict[str, list[float]], steps: int) -> list[str]:
    """One paragraph: make run's time by command, `train`'s split into its epochs' parts, and
    the mean training step (the figure that moves with the CPU and its load)."""
    if not stages:
        return []
    total = sum(stages.values())

    def part(label: str, seconds: float) -> str:
        return f"{label} {seconds:.0f} s ({seconds / total:.0%})"

    parts = []
    for name, seconds in stages.items():
        if name != "train" or not all(epochs.get(key) for key in EPOCH_PARTS):
            parts.append(part(STAGES.get(name, name), seconds))
            continue
        inside = []
        for key, label in EPOCH_PARTS.items():
            values = epochs[key]
            digits = 1 if max(values) < 10 else 0
            spread = f"{min(values):.{digits}f}–{max(values):.{digits}f}"
            inside.append(f"{label} {sum(values):.0f} s ({len(values)} × {spread} s)")
        rest = seconds - sum(sum(epochs[key]) for key in EPOCH_PARTS)
        inside.append(f"the rest (start, feature cache, test report, saving) {rest:.0f} s")
        parts.append(part(STAGES["train"], seconds) + ": " + ", ".join(inside))
    text = f"Where the {total:.0f} s went: " + "; ".join(parts) + "."
    train_seconds = sum(epochs.get("epoch_train_seconds", []))
    if train_seconds and steps:
        text += (
            f" A training step took {train_seconds / steps * 1000:.0f} ms on average "
            f"({steps} steps), on {cpu_model()}."
        )
    return [text]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    args = parse_args(parser)
    from mlflow import MlflowClient

    store = required_file(args.runs / "mlflow.db", "`make run` first")
    client = MlflowClient(f"sqlite:///{store.resolve()}")
    experiment = client.get_experiment_by_name("sample")
    if experiment is None:
        raise SystemExit(f"no 'sample' experiment in {store}: run `make run` first")
    runs = client.search_runs(
        [experiment.experiment_id], "attributes.status = 'FINISHED'", order_by=["start_time DESC"]
    )
    if not runs:
        raise SystemExit(f"no finished sample run in {store}")
    run = runs[0]
    metrics, params = run.data.metrics, run.data.params
    minutes = (run.info.end_time - run.info.start_time) / 60_000
    steps = len(client.get_metric_history(run.info.run_id, "train_loss"))
    beam = args.runs / "sample" / "beam-report.json"
    lm = json.loads(beam.read_text()) if beam.is_file() else None
    table = [
        "| decoding | test WER | test CER |",
        "|---|---:|---:|",
        f"| greedy | {metrics['test_wer']:.2%} | {metrics['test_cer']:.2%} |",
    ]
    if lm:
        table.append(f"| beam 64 + trigram LM | {lm['wer']:.2%} | {lm['cer']:.2%} |")

    def verdict(value: float, target: float) -> str:
        return f"target ≤ {target:.1%}: {'met' if value <= target else 'NOT met'}"

    augment = ", ".join(ast.literal_eval(params.get("augment", "()"))) or "none"
    prior = float(params.get("running_mean_frames", 0))
    running = "mean and deviation" if params.get("running_variance") == "True" else "mean"
    normalisation = (
        f"the utterance's running {running} ({prior:g} frames' prior)"
        if prior
        else "the training statistics"
    )
    fresh = trained_by_last_make_run(args.runs, run.info.start_time / 1000)
    summary = (
        whole_job(args.runs, fresh)
        + f"The last make-run model (n_hidden {params['n_hidden']}, {params['epochs']} epochs, "
        f"{steps} steps, seed {params['seed']}, normalised with {normalisation}, augmentation "
        f"{augment}) trained in {minutes:.1f} min (training, "
        f"featurizing and evaluation) and reached test WER {metrics['test_wer']:.2%} greedy "
        f"({verdict(metrics['test_wer'], 0.03)})"
        + (
            f", {lm['wer']:.2%} with beam search and the LM ({verdict(lm['wer'], 0.005)})."
            if lm
            else "."
        )
    )
    intro = (
        "The sample corpus' test split (voices and sentences training never saw), from the "
        "last `make run` on this machine."
    )
    command = "make run && .venv/bin/python benchmarks/make_run.py --markdown"
    run_note = f" (run {run.info.run_id[:8]})"
    lines = head("make run", intro, command, date_note=run_note) if args.markdown else None
    print_result(table, summary, lines)
    if not (args.markdown and fresh):  # the breakdown: a section's, and of a whole job only
        return
    epochs = {
        key: [m.value for m in client.get_metric_history(run.info.run_id, key)]
        for key in EPOCH_PARTS
    }
    rows = breakdown(stage_seconds(args.runs), epochs, steps)
    if rows:
        print("\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
