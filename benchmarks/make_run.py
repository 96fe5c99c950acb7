"""The figures of the last `make run`, read from what it left under runs/ (nothing is retrained).

Run: make run && .venv/bin/python benchmarks/make_run.py [--runs runs] [--markdown]

From the MLflow store (runs/mlflow.db): the sample run's steps, epochs, augmentation, training
time and test WER/CER (greedy, through the training evaluation); from
runs/sample/beam-report.json (make run's `evaluate --decoder beam --lm`): the same test set with
beam search and the LM; from runs/make-run.started and .finished (written by make run itself):
the whole job's time, install excluded; from runs/make-run.stages (also make run's) and the
run's per-epoch `epoch_featurize_seconds` and `epoch_train_seconds`: where that time went.
The README quotes this section instead of hand-copied numbers.

Then what this make run would take on the slowest host seen (issue 31: an Intel Xeon whose step
of `benchmarks/training.py`'s configuration, with Keras' LSTM loop as the code ran it then,
took 347 ms on 2026-12-05): every part of the job scaled by 347 ms over that configuration's
step here, measured right after the run on make run's corpus (`training.measure`, interleaved
with the recipe's own step, about two minutes). Why not correct for the load during the run
(make run's own step over the recipe's measured after it): the run's steps are slower than the
measured ones for reasons the slow host shares (whole epochs' batches, the next epoch's audio
featurized beside them), and that correction credited them as load: 13 min 15 s instead of
15 min 45 s for the same run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from pathlib import Path

from inputs import required_file
from machine import cpu_model
from section import head, parse_args, print_result
from training import FEATURE_STRIDE, KERAS_LSTM, N_HIDDEN, Setup, measure

from deepspeech.config import load_config_file
from deepspeech.training.config import TrainConfig

RECIPE = Path(__file__).resolve().parents[1] / "experiments" / "sample.yaml"
# The slowest host seen, from issue 31: its step of training.py's configuration, and its make
# run of that day (the recipe then: batch 32, 6 epochs).
SLOW_HOST = ("Intel Xeon", "2026-12-05", 347.0, "18 min 43 s")
PROJECTION_TARGET = 15 * 60  # issue 31: make run within 15 minutes on that host (goal 12)

STEPS, REPEATS = 30, 3  # training.py's own 30 steps (what the Xeon timed), 3 runs of each


def trained_by_last_make_run(runs: Path, trained_from: float) -> bool:
    """Whether the training run (started at `trained_from`, epoch seconds) is the last make
    run's own. A make run over an existing runs/ resumes a finished training and takes about
    a minute: that is no job's time."""
    started = runs / "make-run.started"
    return started.is_file() and trained_from >= int(started.read_text())


def job_seconds(runs: Path) -> int | None:
    """make run's time end to end, install excluded; None if the last one did not finish."""
    started, finished = runs / "make-run.started", runs / "make-run.finished"
    if not (started.is_file() and finished.is_file()):
        return None
    return int(finished.read_text()) - int(started.read_text())


def minutes(seconds: float) -> str:
    return f"{int(seconds) // 60} min {int(seconds) % 60:02d} s"


def whole_job(runs: Path, fresh: bool) -> str:
    """The sentence on make run's own timing, or '' when the last make run did not finish;
    `fresh`: it trained the model (`trained_by_last_make_run`)."""
    seconds = job_seconds(runs)
    if seconds is None:
        return ""
    if not fresh:
        return (
            "The last `make run` found its training already done, so its time is not a whole "
            "job's (`rm -rf runs` before `make run` times one). "
        )
    verdict = "within" if seconds <= 12 * 60 else "over"
    return (
        f"`make run` took {minutes(seconds)} end to end, install excluded "
        f"({verdict} the 12-minute target). "
    )


def steps_here(corpus: Path, cache: Path) -> tuple[float, float, Setup]:
    """Seconds a step of training.py's configuration as the slow host ran it (`KERAS_LSTM`)
    and of the recipe (as training runs it now), medians measured side by side on make run's
    corpus and feature cache; and the recipe as a training.py setup."""
    recipe = TrainConfig(**load_config_file(RECIPE, TrainConfig))
    if (recipe.n_hidden, recipe.feature_stride) != (N_HIDDEN, FEATURE_STRIDE):
        raise SystemExit(
            f"{RECIPE.name} is no longer n_hidden {N_HIDDEN} at stride {FEATURE_STRIDE}, which "
            "benchmarks/training.py's children build: teach them the recipe's shape first"
        )
    setup = Setup(
        f"make run's recipe (batch {recipe.batch_size})",
        1,
        recipe.intra_op_threads,
        recipe.inter_op_threads,
        recipe.batch_size,
        mixed_precision=recipe.mixed_precision,
    )
    results = measure(corpus, [KERAS_LSTM, setup], STEPS, REPEATS, cache=cache)

    def step(name: str) -> float:
        return statistics.median(r["step_seconds"] for r in results[name])

    return step(KERAS_LSTM.name), step(setup.name), setup


# Per-epoch metrics of the training run, the parts of `train`'s time the table shows.
EPOCH_PARTS = ("epoch_featurize_seconds", "epoch_train_seconds")


def stage_seconds(runs: Path) -> dict[str, float]:
    """Seconds each of make run's commands took, from runs/make-run.stages ({} if absent)."""
    path = runs / "make-run.stages"
    if not path.is_file():
        return {}
    stamps = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return {
        name: float(end) - float(start) for (_, start), (name, end) in itertools.pairwise(stamps)
    }


def breakdown(
    stages: dict[str, float], epochs: dict[str, list[float]], steps: int, scale: float
) -> list[str]:
    """A table of make run's time by part, here and times `scale` (at the slow host's step),
    with `train` split into its epochs' parts; [] without make run's stamps."""
    if not stages or not all(epochs.get(key) for key in EPOCH_PARTS) or not steps:
        return []

    def spread(key: str) -> str:
        values = epochs[key]
        digits = 1 if max(values) < 10 else 0
        return f"{len(values)} × {min(values):.{digits}f}–{max(values):.{digits}f} s"

    featurize, train = (
        sum(epochs[key]) for key in ("epoch_featurize_seconds", "epoch_train_seconds")
    )
    others = [name for name in stages if name not in ("corpus", "train")]
    rows = [
        ("synthesise the sample corpus (`data sample`)", stages.get("corpus", 0.0)),
        (f"`train`: featurize each epoch's augmented audio ({spread(EPOCH_PARTS[0])})",
         featurize),
        (f"`train`: training steps ({spread(EPOCH_PARTS[1])}; "
         f"{train / steps * 1000:.0f} ms a step, {steps} steps)", train),
        ("`train`: the rest (start, feature cache, dev and test reports, saving)",
         stages["train"] - featurize - train),
        ("then " + ", ".join(f"`{name}` {stages[name]:.0f} s" for name in others),
         sum(stages[name] for name in others)),
    ]  # fmt: skip
    cpu, total = SLOW_HOST[0], sum(stages.values())
    return [
        f"| part of make run | {cpu_model()} | share | at the {cpu}'s step |",
        "|---|---:|---:|---:|",
        *(
            f"| {label} | {seconds:.0f} s | {seconds / total:.0%} | {seconds * scale:.0f} s |"
            for label, seconds in rows
        ),
        f"| all | {minutes(total)} | 100% | {minutes(total * scale)} |",
    ]


def projection_text(
    config_ms: float, recipe_ms: float, run_ms: float, batch: int, total: float
) -> str:
    """How the slow host's column was made, and its verdict."""
    cpu, date, slow_ms, slow_run = SLOW_HOST
    scale = slow_ms / config_ms
    verdict = "met" if total * scale <= PROJECTION_TARGET else "NOT met"
    return (
        f"At the {cpu}'s step (issue 31: {slow_ms:.0f} ms for training.py's configuration, "
        f"batch {KERAS_LSTM.batch} with Keras' LSTM loop, on {date}; its make run took "
        f"{slow_run}) this make run would take {minutes(total * scale)} (target ≤ 15 min: "
        f"{verdict}; goal 12): every part scaled by {slow_ms:.0f} / {config_ms:.0f} ms, that "
        f"configuration's step here, measured after the run ({STEPS} steps, {REPEATS} runs, "
        f"interleaved with the recipe's: {recipe_ms:.0f} ms at batch {batch}, {run_ms:.0f} ms "
        f"a step inside make run)."
    )


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
    train_minutes = (run.info.end_time - run.info.start_time) / 60_000
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

    fresh = trained_by_last_make_run(args.runs, run.info.start_time / 1000)
    summary = (
        whole_job(args.runs, fresh)
        + f"The last make-run model (`{RECIPE.parent.name}/{RECIPE.name}`: n_hidden "
        f"{params['n_hidden']}, batch {params['batch_size']}, {params['epochs']} epochs, {steps} "
        f"steps, seed {params['seed']}) trained in {train_minutes:.1f} min (training, "
        f"featurizing and evaluation) and reached test WER {metrics['test_wer']:.2%} greedy "
        f"(CER {metrics['test_cer']:.2%}; {verdict(metrics['test_wer'], 0.03)})"
        + (
            f", {lm['wer']:.2%} with beam search and the LM (CER {lm['cer']:.2%}; "
            f"{verdict(lm['wer'], 0.005)})."
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
    if args.markdown and fresh:  # where a whole job's time went, and at the slow host's step
        parts, projection = time_parts(args.runs, client, run.info.run_id, params, steps)
        if parts:
            table, summary = parts, f"{summary} {projection}"
    print_result(table, summary, lines)


def time_parts(
    runs: Path, client: object, run_id: str, params: dict[str, str], steps: int
) -> tuple[list[str], str]:
    """The table of make run's parts here and at the slow host's step, and how the latter was
    made; ([], "") without make run's stamps or the run's per-epoch times."""
    epochs = {key: [m.value for m in client.get_metric_history(run_id, key)] for key in EPOCH_PARTS}
    stages = stage_seconds(runs)
    if not (stages and steps and all(epochs.get(key) for key in EPOCH_PARTS)):
        return [], ""
    corpus = Path(params["train_files"].split(",")[0]).parent
    config_s, recipe_s, setup = steps_here(corpus, Path(params["feature_cache"]))
    run_ms = sum(epochs["epoch_train_seconds"]) / steps * 1e3
    table = breakdown(stages, epochs, steps, SLOW_HOST[2] / (config_s * 1e3))
    total = sum(stages.values())
    text = projection_text(config_s * 1e3, recipe_s * 1e3, run_ms, setup.batch, total)
    return table, text


if __name__ == "__main__":
    main()
