"""`deepspeech train --ray-address local --workers 2`: a real local Ray, real TensorFlow workers.

Every Ray run happens inside a private network namespace where the machine allows it
(`unshare -n`, loopback only): Ray and TensorFlow's gRPC servers then cannot be reached from,
or reach, anything but 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from test_train import (
    SGD,
    _network_namespace_prefix,
    checkpoint_weights,
    cli_train,
    mlflow_runs,
    replay_on_one_device,
    resumable_run,
)

from deepspeech.errors import ConfigError
from deepspeech.training.config import TrainConfig
from deepspeech.training.ray_launch import absolute_options

RAY_ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": "0"}


def in_namespace(command: list[str]) -> list[str]:
    """`command` run in a loopback-only network namespace (or as is where that is not possible)."""
    script = f"ip link set lo up 2>/dev/null || true; exec {shlex.join(command)}"
    return [*_network_namespace_prefix(), script]


@contextmanager
def _whole_group(process: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """The driver, started in a session of its own; if the test fails or times out before it
    ends, its whole process group (Ray's GCS, raylet and workers with it) is killed, not left
    training on the cores the next tests need."""
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def ray_train(corpus: Path, tmp: Path, *extra: str, train_files: Path | None = None) -> list[str]:
    return cli_train(
        corpus, tmp, "--ray-address", "local", "--workers", "2", *extra, train_files=train_files
    )


def test_options_cross_to_workers_as_absolute_paths(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = TrainConfig(train_files="a.csv,sub/b.csv", checkpoint_dir="ckpt", lm="")
    options = absolute_options(config)
    assert options["train_files"] == f"{tmp_path}/a.csv,{tmp_path}/sub/b.csv"
    assert options["checkpoint_dir"] == str(tmp_path / "ckpt")
    assert options["tracking_uri"] == f"sqlite:///{tmp_path}/mlflow.db"
    assert options["lm"] == "" and TrainConfig(**options).train_files == options["train_files"]


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"workers": 2}, "workers 2 needs --ray-address"),
        ({"workers": 0, "ray_address": "local"}, "workers must be positive"),
        ({"ray_address": "local", "gpus_per_worker": -1.0}, "must be >= 0"),
        ({"ray_address": "local", "max_failures": -2}, "max_failures >= -1"),
    ],
)
def test_bad_ray_options_are_rejected(options: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        TrainConfig(**options)


def test_a_bad_manifest_fails_before_ray_starts(tiny_corpus: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    lines = (tiny_corpus / "train.csv").read_text().splitlines()
    wav = str(tiny_corpus / lines[1].split(",")[0])
    bad.write_text(
        "\n".join([lines[0], lines[1].replace(lines[1].split(",")[0], wav), f"{wav},1,x"])
    )
    command = ray_train(tiny_corpus, tmp_path, train_files=bad)
    result = subprocess.run(command, capture_output=True, text=True, env=RAY_ENV)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {bad}:3"), result.stderr  # nothing else started


@pytest.mark.slow
def test_more_gpus_than_the_cluster_has_fail_in_one_line(tiny_corpus: Path, tmp_path: Path) -> None:
    command = ray_train(tiny_corpus, tmp_path, "--gpus-per-worker", "1")
    result = subprocess.run(in_namespace(command), capture_output=True, text=True, env=RAY_ENV)
    assert result.returncode == 2, result.stderr
    assert "error: 2 workers x 1 GPU need 2 GPUs, but the Ray cluster at local has 0" in (
        result.stderr
    )


@pytest.mark.slow
def test_two_ray_workers_give_the_same_weights_as_one_device(
    tiny_corpus: Path, few_steps_corpus: Path, tmp_path: Path
) -> None:
    """Each Ray worker reads only its own shards; with plain SGD (a gradient counted twice or
    half would show in every update) the weights equal one device trained on the global
    batches the two workers formed, replayed from the run's own checkpoint 0."""
    import tensorflow as tf

    from deepspeech.training.checkpoint import restore_inference_model

    two = tmp_path / "ray"
    command = ray_train(
        tiny_corpus, two, "--epochs", "1", *SGD, "--batch-size", "4", train_files=few_steps_corpus
    )
    result = subprocess.run(in_namespace(command), capture_output=True, text=True, env=RAY_ENV)
    assert result.returncode == 0, result.stderr[-5000:]
    (run,) = mlflow_runs(two)  # only the chief logs
    assert run.data.params["devices"] == "2 workers x 1 device(s)"
    assert run.data.params["global_batch_size"] == "8"
    steps = int(run.data.params["steps_per_epoch"])
    assert f"(step {steps}, epoch 1)" in result.stdout

    trained = checkpoint_weights(two / "ckpt")
    expected = replay_on_one_device(few_steps_corpus, two, 2, 4, float(SGD[-1]))
    difference = max(float(np.abs(trained[k] - expected[k]).max()) for k in trained)
    model, _ = restore_inference_model(two / "ckpt")
    tf.train.Checkpoint(model=model).restore(str(two / "ckpt" / "ckpt-0")).expect_partial()
    update = max(float(np.abs(trained[v.path] - v.numpy()).max()) for v in model.weights)
    print(f"max |ray - one device|: {difference}; largest update: {update}")
    # Rounding only (each worker's products have half the rows, summed in another order):
    # a gradient counted twice or half would differ by about the update itself.
    assert update > 0.01, "the steps changed too little to tell"
    assert difference <= 1e-3 * update


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            found.append(child)
            todo.append(child)
    return found


def _ray_train_workers(root: int) -> list[int]:
    """Pids of Ray Train's worker processes (their title is `ray::RayTrainWorker...`)."""
    workers = []
    for pid in _descendants(root):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"ray::RayTrainWorker"):
            workers.append(pid)
    return sorted(workers)


def _holds_open(pid: int, path: Path) -> bool:
    try:
        return any(os.readlink(fd) == str(path) for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False


def _checkpoint_step(checkpoint_dir: Path) -> int:
    text = (checkpoint_dir / "checkpoint").read_text()
    return int(re.search(r'model_checkpoint_path: "ckpt-(\d+)"', text).group(1))


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_replaced_and_training_resumes(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    """SIGKILL a Ray worker once the first checkpoint exists: Ray starts a new group, which
    resumes from that checkpoint; one MLflow run, every epoch logged once, every step once."""
    from mlflow import MlflowClient

    epochs = 4
    command = ray_train(
        tiny_corpus,
        tmp_path,
        *resumable_run(tiny_corpus, epochs),
        "--max-failures",
        "1",
    )
    log = tmp_path / "driver.log"
    with (
        log.open("w") as stderr,
        _whole_group(
            subprocess.Popen(
                in_namespace(command),
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=RAY_ENV,
                start_new_session=True,
            )
        ) as process,
    ):
        checkpoint_dir = tmp_path / "ckpt"
        # Progress, not time, triggers the kill: the first checkpoint after training steps
        # (checkpoint 0, the initial weights, is saved before the first step).
        while not (
            (checkpoint_dir / "checkpoint").exists() and _checkpoint_step(checkpoint_dir) > 0
        ):
            assert process.poll() is None, f"training ended before a checkpoint: {log.read_text()}"
            time.sleep(0.1)
        workers = _ray_train_workers(process.pid)
        assert len(workers) == 2, workers
        # The chief is the worker holding the MLflow store open; killing it is the harder case
        # (its run is left RUNNING and must be picked up again, not duplicated).
        chiefs = [pid for pid in workers if _holds_open(pid, tmp_path / "mlflow.db")]
        victim = chiefs[0] if chiefs else workers[0]
        os.kill(victim, signal.SIGKILL)
        step_at_kill = _checkpoint_step(checkpoint_dir)
        stdout, _ = process.communicate()
    errors = log.read_text()
    assert process.returncode == 0, errors[-5000:]
    print(f"killed the chief (pid {victim}) at checkpoint {step_at_kill}")

    (run,) = mlflow_runs(tmp_path)
    steps_per_epoch = int(run.data.params["steps_per_epoch"])
    total = epochs * steps_per_epoch
    assert step_at_kill < total, "the run was over before the kill"
    assert f"ray worker 0 of 2 (pid {victim})" in errors, "the victim was not the chief"
    assert f"resuming from {checkpoint_dir}/ckpt-" in errors, "the new workers did not resume"
    assert f"(step {total}, epoch {epochs})" in stdout
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    for key in ("dev_loss", "dev_wer", "epoch_train_loss"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert steps == list(range(1, epochs + 1)), f"{key} logged at epochs {steps}"
    assert len(client.get_metric_history(run.info.run_id, "test_wer")) == 1
    logged = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]
    assert sorted(set(logged)) == list(range(1, total + 1)), "a step was never logged"
    assert run.info.status == "FINISHED"
