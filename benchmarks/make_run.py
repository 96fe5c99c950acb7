"""The figures of the last `make run`, read from what it left under runs/ (nothing is re-run).

Run: make run && .venv/bin/python benchmarks/make_run.py [--runs runs] [--markdown]

From the MLflow store (runs/mlflow.db): the sample run's steps, epochs, augmentation, training
time and test WER/CER (greedy, through the training evaluation); from
runs/sample/beam-report.json (make run's `evaluate --decoder beam --lm`): the same test set with
beam search and the LM; from runs/make-run.started and .finished (written by make run itself):
the whole job's time, install excluded. The README quotes this section instead of hand-copied
numbers.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import json
import os
from pathlib import Path

from machine import cpu_model


def whole_job(runs: Path) -> str:
    """The sentence on make run's own timing, or '' when the last make run did not finish."""
    started, finished = runs / "make-run.started", runs / "make-run.finished"
    if not (started.is_file() and finished.is_file()):
        return ""
    seconds = int(finished.read_text()) - int(started.read_text())
    verdict = "within" if seconds <= 12 * 60 else "over"
    return (
        f"`make run` took {seconds // 60} min {seconds % 60:02d} s end to end, install excluded "
        f"({verdict} the 12-minute target). "
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--markdown", action="store_true", help="print a RESULTS.md section")
    args = parser.parse_args()
    from mlflow import MlflowClient

    store = args.runs / "mlflow.db"
    if not store.is_file():
        raise SystemExit(f"{store} not found: run `make run` first")
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
    summary = (
        whole_job(args.runs)
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
    if not args.markdown:
        print("\n".join(table))
        print(summary)
        return
    print("## make run\n")
    print(
        "The sample corpus' test split (voices and sentences training never saw), from the "
        "last `make run` on this machine.\n"
    )
    print("- Command: `make run && .venv/bin/python benchmarks/make_run.py --markdown`")
    print(f"- Date: {datetime.date.today().isoformat()} (run {run.info.run_id[:8]})")
    print(f"- Machine: {cpu_model()}, nproc {os.cpu_count()}\n")
    print("\n".join(table))
    print(f"\n{summary}")


if __name__ == "__main__":
    main()
