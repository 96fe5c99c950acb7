"""Fine-tuning: does starting from make run's model pay, under conditions it never saw?

Run: .venv/bin/python benchmarks/finetune.py [--base runs/sample/checkpoints]
     [--corpus runs/sample-corpus] [--recipe experiments/sample.yaml] [--work runs/finetune]
     [--variants telephone,digits] [--epochs 2] [--learning-rate 0.001] [--keep RUN,...]
     [--markdown]

For each variant of the corpus (`deepspeech.corpus.variants`: `telephone`, the same clips
through a G.712 band, 8 kHz, mu-law line; `digits`, numbers written as digits, a new alphabet):

- from scratch: `deepspeech train --config RECIPE` on the variant, the recipe's own epochs;
- fine-tuned: the same command with `--init-from BASE --epochs N --learning-rate LR`
  (a fresh cosine schedule over N epochs, peak LR);
- before either (telephone only; the base alphabet cannot spell digits): the base model's
  dev WER on the variant, `deepspeech evaluate`.

Dev WER (greedy) after each epoch comes from each run's MLflow history. The target: the
fine-tuned run reaches the from-scratch run's final dev WER within a third of its steps. The
plot of dev WER against steps goes to benchmarks/notes/finetune.png.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from section import head, parse_args, print_result

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from deepspeech.corpus.variants import ALPHABET_FILE, make_variant  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEEPSPEECH = [sys.executable, "-m", "deepspeech"]
PLOT = ROOT / "benchmarks" / "notes" / "finetune.png"
TARGET_SHARE = 1 / 3  # of the from-scratch run's steps


@dataclass(frozen=True)
class Curve:
    """One training run's dev WER (fraction) after each epoch, and its steps per epoch."""

    name: str
    steps_per_epoch: int
    dev_wer: list[float]
    seconds: float

    @property
    def points(self) -> list[tuple[int, float]]:
        return [(self.steps_per_epoch * (i + 1), w) for i, w in enumerate(self.dev_wer)]

    def steps_to_reach(self, wer: float) -> int | None:
        return next((s for s, w in self.points if w <= wer + 1e-12), None)


def train_curve(name: str, command: list[str], tracking_uri: str) -> Curve:
    """Train (a finished run kept in its folder only resumes: nothing to train) and read its
    dev WER per epoch and its featurizing + training seconds back from MLflow."""
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("finetune")
    (run,) = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.runName = '{name}'", max_results=1
    )
    history = sorted(client.get_metric_history(run.info.run_id, "dev_wer"), key=lambda m: m.step)
    seconds = sum(
        m.value
        for key in ("epoch_featurize_seconds", "epoch_train_seconds")
        for m in client.get_metric_history(run.info.run_id, key)
    )
    return Curve(name, int(run.data.params["steps_per_epoch"]), [m.value for m in history], seconds)


def base_dev_wer(base: Path, dev: Path, work: Path) -> float:
    report = work / "base-dev.json"
    subprocess.run(
        [*DEEPSPEECH, "evaluate", "--checkpoint-dir", str(base), "--test-files", str(dev),
         "--report-count", "0", "--json", str(report)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return float(json.loads(report.read_text())["wer"])


def run_variant(kind: str, args: argparse.Namespace) -> dict:
    work = args.work / kind
    corpus = {s: args.corpus / f"{s}.csv" for s in ("train", "dev", "test")}
    manifests = make_variant(kind, corpus, work / "corpus")
    uri = f"sqlite:///{(args.work / 'mlflow.db').resolve()}"
    common = [
        *DEEPSPEECH, "train", "--config", str(args.recipe), "--tracking-uri", uri,
        "--experiment-name", "finetune", "--train-files", str(manifests["train"]),
        "--dev-files", str(manifests["dev"]), "--test-files", str(manifests["test"]),
        "--report-count", "1",
    ]  # fmt: skip
    if kind == "digits":
        common += ["--alphabet", str(work / "corpus" / ALPHABET_FILE)]
    curves = []
    for name, extra in (
        ("scratch", []),
        ("fine-tuned", ["--init-from", str(args.base), "--epochs", str(args.epochs),
                        "--learning-rate", str(args.learning_rate)]),
    ):  # fmt: skip
        folder = args.work / f"{kind}-{name}" / "checkpoints"  # runName: its last two parts
        if f"{kind}-{name}" not in args.keep.split(","):
            shutil.rmtree(folder, ignore_errors=True)
        command = [*common, "--checkpoint-dir", str(folder), *extra]
        curves.append(train_curve(f"{kind}-{name}/checkpoints", command, uri))
    before = base_dev_wer(args.base, manifests["dev"], work) if kind == "telephone" else None
    return {"kind": kind, "scratch": curves[0], "tuned": curves[1], "before": before}


def verdict(result: dict) -> tuple[int | None, float, bool]:
    """(fine-tuned steps to the scratch run's final dev WER, their share, met)."""
    scratch, tuned = result["scratch"], result["tuned"]
    total = scratch.points[-1][0]
    steps = tuned.steps_to_reach(scratch.dev_wer[-1])
    share = steps / total if steps is not None else float("inf")
    return steps, share, share <= TARGET_SHARE


def plot(results: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.6), squeeze=False)
    for ax, result in zip(axes[0], results, strict=True):
        for curve, style in ((result["scratch"], "o-"), (result["tuned"], "s-")):
            steps, wers = zip(*[(0, None), *curve.points], strict=True)
            start = result["before"] if curve is result["tuned"] else None
            xs, ys = zip(
                *[(s, 100 * w) for s, w in zip(steps, (start, *wers[1:]), strict=True) if w],
                strict=True,
            )
            ax.plot(xs, ys, style, label=curve.name.split("/")[0].split("-", 1)[1])
        ax.set(title=result["kind"], xlabel="training steps", ylabel="dev WER % (greedy)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)


def table(results: list[dict]) -> tuple[list[str], list[str]]:
    """One row per variant: each run's steps, dev WER after each epoch and seconds."""
    rows = [
        "| variant | steps, scratch | dev WER by epoch, scratch | steps, fine-tuned | "
        "dev WER by epoch, fine-tuned | seconds featurizing + training |",
        "|---|---|---|---|---|---|",
    ]
    lines = []
    for r in results:
        scratch, tuned = r["scratch"], r["tuned"]
        cells = [
            f"{c.points[-1][0]} | {', '.join(f'{100 * w:.2f}%' for w in c.dev_wer)}"
            for c in (scratch, tuned)
        ]
        rows.append(
            f"| {r['kind']} | {cells[0]} | {cells[1]} | {scratch.seconds:.0f}, "
            f"{tuned.seconds:.0f} |"
        )
        steps, share, met = verdict(r)
        reached = (
            f"after {steps} steps, {share:.0%} of the from-scratch run's {scratch.points[-1][0]}"
            if steps is not None
            else f"not within its {tuned.points[-1][0]} steps"
        )
        before = (
            f" Before fine-tuning, make run's model scored {100 * r['before']:.2f}% on this "
            "dev set."
            if r["before"] is not None
            else ""
        )
        lines.append(
            f"{r['kind']}: the fine-tuned run reached the from-scratch model's final dev WER "
            f"({100 * scratch.dev_wer[-1]:.2f}%) {reached} (target ≤ {TARGET_SHARE:.0%}: "
            f"{'met' if met else 'NOT met'}).{before}"
        )
    return rows, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=Path, default=ROOT / "runs/sample/checkpoints")
    parser.add_argument("--corpus", type=Path, default=ROOT / "runs/sample-corpus")
    parser.add_argument("--recipe", type=Path, default=ROOT / "experiments/sample.yaml")
    parser.add_argument("--work", type=Path, default=ROOT / "runs/finetune")
    parser.add_argument("--variants", default="telephone,digits")
    parser.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs")
    parser.add_argument("--learning-rate", type=float, default=0.001, help="fine-tuning peak")
    parser.add_argument(
        "--keep",
        default="",
        help="runs to read back instead of training again, e.g. telephone-scratch (their "
        "folders under --work are kept; a finished run only resumes)",
    )
    args = parse_args(parser)
    results = [run_variant(kind, args) for kind in args.variants.split(",")]
    plot(results)
    rows, lines = table(results)
    intro = (
        f"Fine-tuning make run's model (`{args.base.relative_to(ROOT)}`) against training the "
        f"same recipe from scratch, on variants of `{args.corpus.relative_to(ROOT)}` it never "
        "saw: telephone (G.712 band, 8 kHz, mu-law) and digits (numbers as digits: a new "
        f"alphabet; the output layer keeps the shared characters' columns); fine-tuning: "
        f"{args.epochs} epochs, peak "
        f"learning rate {args.learning_rate:g}; dev WER greedy."
    )
    heading = head(
        "Fine-tuning",
        intro,
        ".venv/bin/python benchmarks/finetune.py --markdown",
        command_note="(plot: [notes/finetune.png](notes/finetune.png))",
    )
    print_result(rows, " ".join(lines), heading if args.markdown else None)


if __name__ == "__main__":
    main()
