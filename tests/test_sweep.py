"""`deepspeech sweep`: bad sweep files fail in one line before Ray starts; a real sweep on Ray
Tune (local) nests its trials under one parent run in a real MLflow store; a killed sweep
resumes into the same runs; `runs compare` takes the parent."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from deepspeech.cli.app import main
from deepspeech.errors import ConfigError
from deepspeech.sweep.config import load_sweep
from deepspeech.sweep.space import parse_distribution

EPOCHS = 2
TRIALS = 4


def write_sweep(
    tmp_path: Path, corpus: Path, feature_cache: Path, base: dict | None = None, **sweep
) -> Path:
    """A tiny base recipe and a sweep of it in `tmp_path`, its store and folder there too."""
    recipe = {
        "train_files": str(corpus / "train.csv"),
        "dev_files": str(corpus / "dev.csv"),
        "test_files": str(corpus / "test.csv"),
        "feature_cache": str(feature_cache),
        "n_hidden": 24,
        "feature_stride": 2,
        "dropout_rate": 0.0,
        "batch_size": 8,
        "learning_rate": 0.005,
        "epochs": EPOCHS,
        "early_stop": False,
        "report_count": 1,
        "stats_every": 50,
        "seed": 3,
        "intra_op_threads": 1,
        "inter_op_threads": 1,
        "experiment_name": "sweep-tests",
        **(base or {}),
    }
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(recipe))
    settings = {
        "base_config": "base.yaml",
        "space": {
            # Below the base's 0.005 only: the first trial (the base) learns fastest, so the
            # scheduler has worse trials to stop at the first epoch.
            "learning_rate": "loguniform(0.0002, 0.005)",
            "dropout_rate": "uniform(0.0, 0.3)",
        },
        "trials": TRIALS,
        "max_concurrent": 2,
        "search": "random",
        "seed": 1,
        "sweep_dir": str(tmp_path / "sweeps"),
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        **sweep,
    }
    path = tmp_path / "tiny-sweep.yaml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def sweep_command(path: Path) -> list[str]:
    return [sys.executable, "-m", "deepspeech", "sweep", "--config", str(path)]


def runs_of(tmp_path: Path):
    """(parent runs, child runs) of the test store, children oldest first."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("sweep-tests")
    runs = client.search_runs([experiment.experiment_id], order_by=["start_time ASC"])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def epoch_steps(client, run_id: str, key: str) -> list[int]:
    return [m.step for m in client.get_metric_history(run_id, key)]


def final(client, run_id: str, key: str) -> float:
    return max(client.get_metric_history(run_id, key), key=lambda m: m.step).value


# --- bad sweep files: one line, before anything starts ---------------------------------------
@pytest.mark.parametrize(
    ("space", "settings", "fragment"),
    [
        ({"n_hiden": "choice(16, 32)"}, {}, "not a training setting (did you mean n_hidden?)"),
        ({"dropout_rate": "uniform(0.3, 0.1)"}, {}, "empty range"),
        ({"n_hidden": "integer(64, 16)"}, {}, "empty range"),
        ({"n_hidden": "choice()"}, {}, "is empty"),
        ({"learning_rate": "normal(0.001, 0.1)"}, {}, "unknown distribution 'normal'"),
        ({"learning_rate": "loguniform(0, 0.01)"}, {}, "needs LOW > 0"),
        ({"learning_rate": "loguniform(0.001)"}, {}, "takes two numbers"),
        ({"n_hidden": "uniform(16, 64)"}, {}, "n_hidden is int"),
        ({"dropout_rate": "uniform(0.0, 1.5)"}, {}, "dropout_rate 1.5 must be in [0, 1)"),
        ({"epochs": "integer(1, 3)"}, {}, "not searchable"),
        ({"learning_rate": "loguniform(0.01, 0.1)"}, {}, "outside loguniform(0.01, 0.1)"),
        ({"n_hidden": "choice(16, 32)"}, {"search": "grid"}, "search 'grid' must be one of"),
        ({"n_hidden": "choice(24)"}, {"scheduler": "pbt"}, "scheduler 'pbt' must be one of"),
        ({"n_hidden": "choice(24)"}, {"metric": "test_wer"}, "metric 'test_wer' must be one"),
        ({"n_hidden": "choice(24)"}, {"reduction_factor": 1}, "reduction_factor 1.0 must be"),
        ({"n_hidden": "choice(24)"}, {"spcae": 1}, "unknown option 'spcae'"),
        ({}, {}, "searches nothing"),
    ],
)
def test_a_bad_sweep_is_one_line_error(
    tmp_path: Path, tiny_corpus: Path, space: dict, settings: dict, fragment: str
) -> None:
    path = write_sweep(tmp_path, tiny_corpus, tmp_path / "fc", space=space, **settings)
    with pytest.raises(ConfigError) as error:
        load_sweep(path)
    assert fragment in str(error.value) and "\n" not in str(error.value)


def test_the_command_fails_before_ray_starts(
    tmp_path: Path, tiny_corpus: Path, capsys: pytest.CaptureFixture
) -> None:
    path = write_sweep(tmp_path, tiny_corpus, tmp_path / "fc", space={"n_hidden": "integer(9, 3)"})
    started = time.monotonic()
    with pytest.raises(SystemExit) as exit_code:
        main(["sweep", "--config", str(path)])
    assert exit_code.value.code == 2 and time.monotonic() - started < 10
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "empty range" in error and "\n" not in error
    assert not (tmp_path / "sweeps").exists() and not (tmp_path / "mlflow.db").exists()


def test_distributions_become_tune_domains_with_both_ends_included() -> None:
    integer = parse_distribution("n_hidden=integer(2, 4)").to_tune()
    assert {integer.sample() for _ in range(200)} == {2, 3, 4}
    log = parse_distribution("learning_rate=loguniform(1e-4, 1e-2)")
    assert log.spec == "loguniform(0.0001, 0.01)" and log.contains(1e-2)
    assert 1e-4 <= log.to_tune().sample() <= 1e-2
    choice = parse_distribution("rnn=choice('bidirectional', 'unidirectional')")
    assert choice.to_tune().sample() in ("bidirectional", "unidirectional")


def test_the_example_sweep_loads() -> None:
    root = Path(__file__).resolve().parent.parent
    sweep = load_sweep(root / "experiments/sweeps/small.yaml")
    assert sweep.settings.trials == 8 and sweep.settings.max_concurrent == 2
    assert sweep.base.train_files == "runs/sweep-corpus/train.csv"
    assert {d.key for d in sweep.space} == {"learning_rate", "dropout_rate", "n_hidden"}


# --- real sweeps ------------------------------------------------------------------------------
@pytest.mark.slow
def test_sweep_nests_trials_under_one_parent_and_stops_the_worse(
    tmp_path: Path, tiny_corpus: Path, feature_cache: Path
) -> None:
    """Random search, ASHA on dev_loss (the tiny model's WER is 100 % in every trial)."""
    path = write_sweep(tmp_path, tiny_corpus, feature_cache, metric="dev_loss")
    done = subprocess.run(sweep_command(path), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    client, parents, children = runs_of(tmp_path)
    (parent,) = parents
    assert len(children) == TRIALS and parent.info.status == "FINISHED"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert parent.data.params["space.learning_rate"] == "loguniform(0.0002, 0.005)"
    assert parent.data.params["scheduler"] == "asha" and parent.data.params["search"] == "random"
    finals = {c.info.run_id: final(client, c.info.run_id, "dev_loss") for c in children}
    assert parent.data.metrics["best_dev_loss"] == pytest.approx(min(finals.values()))
    best = parent.data.tags["sweep.best_run_id"]
    assert finals[best] == min(finals.values())
    (best_child,) = [c for c in children if c.info.run_id == best]
    assert parent.data.params["best.learning_rate"] == best_child.data.params["learning_rate"]
    stopped = {c.info.run_id for c in children if c.data.tags["sweep.stopped_early"] == "true"}
    assert stopped, "the scheduler stopped no trial"
    for child in children:
        assert child.info.status == "FINISHED"
        steps = epoch_steps(client, child.info.run_id, "dev_loss")
        if child.info.run_id in stopped:
            assert steps == list(range(1, int(child.data.tags["sweep.stopped_at_epoch"]) + 1))
            assert int(child.data.tags["sweep.stopped_at_epoch"]) < EPOCHS
        else:
            assert steps == [1, 2] and "test_wer" in child.data.metrics
        assert "train_loss" in child.data.metrics and "n_params" in child.data.params
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "sweep")}
    assert artifacts == {"sweep/trials.csv", "sweep/dev_loss_by_setting.png"}
    table = client.download_artifacts(parent.info.run_id, "sweep/trials.csv", str(tmp_path))
    lines = Path(table).read_text().splitlines()
    assert len(lines) == TRIALS + 1 and "learning_rate" in lines[0]
    assert parent.data.metrics["trials_stopped_early"] == len(stopped)

    output = tmp_path / "compare.png"
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    compare = [sys.executable, "-m", "deepspeech", "runs", "compare", parent.info.run_id]
    compared = subprocess.run(
        [*compare, "--tracking-uri", store, "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert compared.returncode == 0, compared.stderr
    assert all(c.info.run_id[:8] in compared.stdout for c in children)
    assert parent.info.run_id[:8] not in compared.stdout and "stopped at" in compared.stdout
    assert output.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_a_killed_sweep_resumes_into_the_same_runs(
    tmp_path: Path, tiny_corpus: Path, feature_cache: Path
) -> None:
    """SIGKILL once a trial has finished; the same command finishes the sweep: one parent,
    finished trials not run again, no epoch logged twice. TPE, so its state is restored too."""
    path = write_sweep(tmp_path, tiny_corpus, feature_cache, search="tpe", startup_trials=2)
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(
        sweep_command(path), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        finished = _wait_for_a_finished_trial(tmp_path, first)
        time.sleep(4)  # Tune saves its state every 2 s (runner.EXPERIMENT_STATE_SECONDS)
        assert first.poll() is None, "the sweep ended before it could be killed"
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        time.sleep(3)  # Ray's own processes follow their driver; end any left
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)
        log.close()
    client, parents, children = runs_of(tmp_path)
    assert len(parents) == 1
    before = {c.info.run_id: c.info.end_time for c in children if c.info.run_id in finished}

    done = subprocess.run(sweep_command(path), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    client, parents_after, children = runs_of(tmp_path)
    assert [p.info.run_id for p in parents_after] == [parents[0].info.run_id]
    parent = parents_after[0]
    assert parent.info.status == "FINISHED" and len(children) == TRIALS
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    for child in children:
        assert child.info.status == "FINISHED"
        if child.info.run_id in before:  # finished before the kill: not run again
            assert child.info.end_time == before[child.info.run_id]
        for key in ("dev_wer", "dev_loss", "epoch_train_loss"):
            steps = epoch_steps(client, child.info.run_id, key)
            assert len(steps) == len(set(steps)), (key, steps)
        if child.data.tags["sweep.stopped_early"] == "false":
            assert epoch_steps(client, child.info.run_id, "dev_wer") == [1, 2]
    finals = [final(client, c.info.run_id, "dev_wer") for c in children]
    assert parent.data.metrics["best_dev_wer"] == pytest.approx(min(finals))
    assert parent.data.params["search"] == "tpe"


def _wait_for_a_finished_trial(tmp_path: Path, process: subprocess.Popen) -> set[str]:
    """The ids of the trial runs Tune has ended, once there is one (polled in the store: the
    sweep's Tune callback tags a trial's run `sweep.stopped_early` when Tune ends it)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(1)
        # Not before the sweep has made its store and parent run (it then writes sweep.json):
        # a client opening a store still being created runs MLflow's schema migrations a
        # second time, and the sweep's own fail ("duplicate column name").
        if not list((tmp_path / "sweeps").glob("*/sweep.json")):
            continue
        try:
            _, _, children = runs_of(tmp_path)
        except Exception:  # the store is being created
            continue
        finished = {c.info.run_id for c in children if "sweep.stopped_early" in c.data.tags}
        if finished:
            return finished
    raise AssertionError(f"no trial finished: {(tmp_path / 'first.log').read_text()[-3000:]}")
