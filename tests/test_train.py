"""Training end to end on the tiny synthetic corpus: sanity overfit, MLflow contents, resume,
kill -9, bad input, and the same weights on 1 device, 2 logical devices and 2 workers."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from deepspeech.data.manifest import read_manifest, write_manifest
from deepspeech.errors import ConfigError, ManifestError
from deepspeech.training.config import TrainConfig
from deepspeech.training.loop import BackgroundRelease, is_plateau, should_stop_early, train
from deepspeech.training.schedule import LearningRateSchedule

pytestmark = pytest.mark.slow

TINY = {"n_hidden": 32, "feature_stride": 2, "report_count": 3, "seed": 3}


def tiny_config(corpus: Path, tmp: Path, **overrides: object) -> TrainConfig:
    options = {
        "train_files": str(corpus / "train.csv"),
        "dev_files": str(corpus / "dev.csv"),
        "test_files": str(corpus / "test.csv"),
        "epochs": 2,
        "batch_size": 8,
        "stats_every": 5,
        "checkpoint_dir": str(tmp / "ckpt"),
        "feature_cache": str(tmp / "feature-cache"),
        "tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}",
        "experiment_name": "tests",
        **TINY,
        **overrides,
    }
    return TrainConfig(**options)


def cli_train(corpus: Path, tmp: Path, *extra: str, train_files: Path | None = None) -> list[str]:
    """The `deepspeech train` command line for the tiny corpus, as a user would type it."""
    return [
        sys.executable,
        "-m",
        "deepspeech",
        "train",
        "--train-files",
        str(train_files or corpus / "train.csv"),
        "--checkpoint-dir",
        str(tmp / "ckpt"),
        "--feature-cache",
        str(tmp / "feature-cache"),
        "--tracking-uri",
        f"sqlite:///{tmp / 'mlflow.db'}",
        "--n-hidden",
        "32",
        "--feature-stride",
        "2",
        "--dropout-rate",
        "0",
        "--seed",
        "3",
        *extra,
    ]


def checkpoint_weights(checkpoint_dir: Path) -> dict[str, np.ndarray]:
    """Every model weight of the folder's latest checkpoint, by variable path.

    Restored through the object graph: a checkpoint file names a variable by its first path
    from the root, which for the LSTM's weights runs through the optimizer, not the model.
    """
    from deepspeech.training.checkpoint import restore_inference_model

    model, _ = restore_inference_model(checkpoint_dir)
    return {v.path: v.numpy() for v in model.weights}


def mlflow_runs(tmp: Path) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments)


@pytest.fixture(scope="module")
def trained(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("train")
    config = tiny_config(tiny_corpus, tmp)
    return config, tmp, train(config)


def test_mlflow_run_holds_the_contract_names(trained) -> None:
    from mlflow import MlflowClient

    _, tmp, result = trained
    (run,) = mlflow_runs(tmp)
    assert run.info.run_id == result.mlflow_run_id and run.info.status == "FINISHED"
    params = run.data.params
    for name in ("n_params", "tf_version", "devices", "git_commit", "n_hidden", "learning_rate"):
        assert name in params, name
    assert params["devices"] == "1 x CPU" and int(params["n_params"]) > 0
    metrics = run.data.metrics
    for name in (
        "train_loss",
        "epoch_train_loss",
        "dev_loss",
        "dev_wer",
        "dev_cer",
        "test_loss",
        "test_wer",
        "test_cer",
        "learning_rate",
        "grad_global_norm",
        "var/h1/kernel/mean",
        "var/h6/bias/max",
        "grad/h1/kernel/std",
        "grad/lstm/forward_lstm/lstm_cell/kernel/min",
    ):
        assert name in metrics, name
    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]
    assert steps == list(range(1, result.steps + 1))
    assert [m.step for m in client.get_metric_history(run.info.run_id, "dev_wer")] == [1, 2]
    # Where each epoch's time went: steps and dev report always take some; without waveform
    # augmentation the epoch reads the cache and waits for no featurizing.
    for name in ("epoch_featurize_seconds", "epoch_train_seconds", "dev_seconds"):
        history = client.get_metric_history(run.info.run_id, name)
        assert [m.step for m in history] == [1, 2], name
        assert all(m.value >= 0 for m in history), name
    for name in ("epoch_train_seconds", "dev_seconds"):
        assert all(m.value > 0 for m in client.get_metric_history(run.info.run_id, name)), name
    artifacts = {
        a.path
        for d in ("reports", "plots", "histograms")
        for a in client.list_artifacts(run.info.run_id, d)
    }
    for name in (
        "reports/dev_epoch1.json",
        "reports/dev_epoch2.txt",
        "reports/test_epoch2.json",
        "plots/loss.png",
        "plots/wer.png",
        "histograms/epoch2.png",
        "histograms/epoch2.json",
    ):
        assert name in artifacts, name


def test_rerunning_a_finished_run_trains_no_more(trained) -> None:
    config, tmp, result = trained
    again = train(config)
    assert again.steps == result.steps and again.mlflow_run_id == result.mlflow_run_id
    assert len(mlflow_runs(tmp)) == 1
    assert again.test_report.wer == pytest.approx(result.test_report.wer)


def test_resume_with_more_epochs_continues_the_same_run(trained, tiny_corpus: Path) -> None:
    from mlflow import MlflowClient

    _, tmp, result = trained
    more = train(tiny_config(tiny_corpus, tmp, epochs=3))
    assert more.epochs == 3 and more.steps == result.steps * 3 // 2
    (run,) = mlflow_runs(tmp)
    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    assert [m.step for m in client.get_metric_history(run.info.run_id, "dev_loss")] == [1, 2, 3]


def test_resume_refuses_a_different_model(trained, tiny_corpus: Path) -> None:
    _, tmp, _ = trained
    with pytest.raises(ConfigError, match="use another --checkpoint-dir"):
        train(tiny_config(tiny_corpus, tmp, n_hidden=48))


def test_resume_refuses_another_optimizer(trained, tiny_corpus: Path) -> None:
    """Adam's slots are in every checkpoint: resuming under SGD would have dropped them."""
    _, tmp, _ = trained
    with pytest.raises(ConfigError, match=r"optimizer 'adam' \(asked: 'sgd'\)"):
        train(tiny_config(tiny_corpus, tmp, optimizer="sgd"))
    with pytest.raises(ConfigError, match=r"mixed_precision False \(asked: True\)"):
        train(tiny_config(tiny_corpus, tmp, mixed_precision=True))


def test_resume_refuses_a_checkpoint_that_restores_only_in_part(
    trained, tiny_corpus: Path, tmp_path: Path
) -> None:
    """A run.json that does not name the optimizer (as before it was checked) cannot stop the
    resume, so the restore itself must: under SGD, Adam's slots would go unread."""
    _, tmp, _ = trained
    shutil.copytree(tmp / "ckpt", tmp_path / "ckpt")
    run_json = tmp_path / "ckpt" / "run.json"
    info = json.loads(run_json.read_text())
    del info["train_options"]["optimizer"]
    run_json.write_text(json.dumps(info))
    before = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    config = tiny_config(tiny_corpus, tmp_path, optimizer="sgd", epochs=3)
    with pytest.raises(ConfigError, match="does not match this run's model and optimizer"):
        train(config)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == before


def test_overfits_one_utterance_to_wer_zero(tiny_corpus: Path, tmp_path: Path) -> None:
    """The 2017 sanity check: a model that cannot learn one utterance by heart is broken."""
    (first, *_) = read_manifest(tiny_corpus / "train.csv")
    manifest = tmp_path / "one.csv"
    write_manifest(manifest, [first] * 64)
    config = TrainConfig(
        train_files=str(manifest),
        test_files=str(manifest),
        epochs=12,
        batch_size=8,
        n_hidden=64,
        feature_stride=2,
        dropout_rate=0.0,
        learning_rate=3e-3,
        early_stop=False,
        checkpoint_dir=str(tmp_path / "ckpt"),
        feature_cache=str(tmp_path / "feature-cache"),
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        seed=1,
    )
    result = train(config)
    assert result.test_report.wer == 0.0, result.test_report.to_text()
    # Each epoch's spent input iterator was destroyed off the training thread, and joined.
    assert not [t for t in threading.enumerate() if t.name == "release-input-iterator"]


def test_trains_with_waveform_augmentation_and_leaves_no_copies(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    """Each epoch's audio is prepared while the epoch before trains, through the real loop."""
    from mlflow import MlflowClient

    augment = ("noise[p=0.5,snr=5:20]", "speed[p=0.5,factor=0.9:1.1]")
    result = train(tiny_config(tiny_corpus, tmp_path, epochs=3, augment=augment))
    assert result.epochs == 3 and result.test_report is not None
    (run,) = mlflow_runs(tmp_path)
    assert run.data.params["augment"] == str(augment)
    featurize = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_metric_history(
        run.info.run_id, "epoch_featurize_seconds"
    )
    # The first epoch's audio is featurized while training waits.
    assert [m.step for m in featurize] == [1, 2, 3] and featurize[0].value > 0
    # Every epoch's augmented copy was deleted, and no preparation is left running.
    assert not list((tmp_path / "ckpt" / ".augmented").rglob("*"))
    assert not [t for t in threading.enumerate() if t.name.startswith("augment-next-epoch")]


def test_reports_with_an_lm_share_one_decoder_pool_for_the_run(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `lm`, every report beam-searches in worker processes started once for the run
    (each reads the LM), not once per epoch."""
    from mlflow import MlflowClient

    from deepspeech.decoding.lm import build_kneser_ney
    from deepspeech.decoding.pool import DecoderPool

    lm = tmp_path / "lm.arpa"
    texts = [u.transcript for u in read_manifest(tiny_corpus / "train.csv")]
    build_kneser_ney(texts, order=2).write_arpa(lm)
    started = []
    enter = DecoderPool.__enter__

    def counting_enter(pool: DecoderPool) -> DecoderPool:
        started.append(pool.config)
        return enter(pool)

    monkeypatch.setattr(DecoderPool, "__enter__", counting_enter)
    monkeypatch.setattr("deepspeech.decoding.pool.available_cpus", lambda: 2)
    result = train(tiny_config(tiny_corpus, tmp_path, lm=str(lm), beam_width=8))
    assert result.test_report is not None
    assert [(c.decoder, c.lm_path, c.beam_width) for c in started] == [("beam", lm, 8)]
    (run,) = mlflow_runs(tmp_path)
    dev_wer = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_metric_history(
        run.info.run_id, "dev_wer"
    )
    assert len(dev_wer) == 2  # both epochs' dev reports went through the one pool


def test_background_release_destroys_off_the_calling_thread() -> None:
    destroyed_on: list[str] = []

    class Spent:
        def __del__(self) -> None:
            destroyed_on.append(threading.current_thread().name)

    release = BackgroundRelease()
    holder = [Spent(), Spent()]
    release.release(holder)
    release.join()
    assert holder == []
    assert destroyed_on == ["release-input-iterator"] * 2


def test_bad_manifest_fails_before_training(tiny_corpus: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    rows = list(csv.reader((tiny_corpus / "train.csv").open()))
    rows[3][2] = "naïve résumé"
    with bad.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    for row in rows[1:]:
        target = tmp_path / row[0]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tiny_corpus / row[0], target)
    with pytest.raises(ManifestError, match=r"bad\.csv:4: .*'ï'"):
        train(tiny_config(tiny_corpus, tmp_path, train_files=str(bad)))
    assert not (tmp_path / "ckpt").exists()


def test_cli_bad_manifest_exit_code(tiny_corpus: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        cli_train(tiny_corpus, tmp_path, train_files=tmp_path / "missing.csv"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "manifest not found" in result.stderr and "Traceback" not in result.stderr


def test_early_stopping_rule() -> None:
    config = TrainConfig(es_epochs=4, es_mean_threshold=0.5, es_std_threshold=0.5)
    assert not should_stop_early([10, 8, 6], config)  # too few epochs
    assert should_stop_early([10, 8, 6, 11], config)  # worse than all before
    assert should_stop_early([5.0, 5.1, 5.05, 5.02], config)  # flat
    assert not should_stop_early([10, 8, 6, 4], config)  # still improving
    assert not should_stop_early([10, 8, 6, 11], TrainConfig(early_stop=False))
    assert is_plateau([5, 4, 4.1, 4.2], patience=2)
    assert not is_plateau([5, 4, 3.9, 4.2], patience=2)


def resumable_run(corpus: Path, epochs: int) -> list[str]:
    """Options of the runs the kill tests interrupt: dev and test, a checkpoint every 10 steps."""
    return [
        "--dev-files",
        str(corpus / "dev.csv"),
        "--test-files",
        str(corpus / "test.csv"),
        "--epochs",
        str(epochs),
        "--batch-size",
        "4",
        "--checkpoint-secs",
        "0",
        "--no-early-stop",
        "--lr-schedule",
        "cosine",
        "--warmup-steps",
        "3",
    ]


def _wait_for_checkpoint(checkpoint_dir: Path, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (checkpoint_dir / "checkpoint").exists():
            return
        if process.poll() is not None:
            raise AssertionError(f"training ended early: {process.stderr.read()}")
        time.sleep(0.2)
    raise AssertionError("no checkpoint appeared")


def test_killed_at_random_points_finishes_one_consistent_run(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    """kill -9 several times (in steps, checkpoint writes, dev evaluation: wherever the random
    moment falls), resume each time: one MLflow run, each epoch logged once, all steps done,
    and the same weights as a run never killed: every resumed epoch trained each of its
    remaining utterances exactly once (a batch skipped or repeated would change them)."""
    from mlflow import MlflowClient

    from deepspeech.training.checkpoint import restore_inference_model

    seed = int(os.environ.get("KILL_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    epochs = 4
    command = cli_train(tiny_corpus, tmp_path, *resumable_run(tiny_corpus, epochs))
    kills = []
    for attempt in range(4):
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        if attempt == 0:
            _wait_for_checkpoint(tmp_path / "ckpt", process, timeout=300)
        delay = rng.uniform(0.5, 6.0)
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills.append(round(delay, 2))
        if process.returncode == 0:
            break
        assert process.returncode == -signal.SIGKILL, process.stderr.read()
    assert kills, f"KILL_SEED={seed}: the run finished before any kill"
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"KILL_SEED={seed}, kills {kills}: {result.stderr}"
    (run,) = mlflow_runs(tmp_path)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    expected_epochs = list(range(1, epochs + 1))
    for key in ("dev_loss", "dev_wer", "epoch_train_loss"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert steps == expected_epochs, f"KILL_SEED={seed}, kills {kills}: {key} at {steps}"
    assert len(client.get_metric_history(run.info.run_id, "test_wer")) == 1
    expected_steps = epochs * int(run.data.params["steps_per_epoch"])
    assert f"step {expected_steps}, epoch {epochs}" in result.stdout
    train_steps = {m.step for m in client.get_metric_history(run.info.run_id, "train_loss")}
    assert train_steps == set(range(1, expected_steps + 1)), "a step was never logged"
    # The rate is a function of the step: resumed runs continue the cosine where it was.
    schedule = LearningRateSchedule("cosine", TrainConfig().learning_rate, 3, expected_steps)
    rates = client.get_metric_history(run.info.run_id, "learning_rate")
    assert {m.step for m in rates} == train_steps
    for m in rates:
        assert m.value == pytest.approx(schedule(m.step), rel=1e-5), f"step {m.step}"
    assert run.info.status == "FINISHED"
    model, info = restore_inference_model(tmp_path / "ckpt")
    assert info.mlflow_run_id == run.info.run_id and model.count_params() > 0
    uninterrupted = tmp_path / "uninterrupted"
    reference = [a.replace(str(tmp_path), str(uninterrupted)) for a in command]
    completed = subprocess.run(reference, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr
    _assert_same_weights(
        checkpoint_weights(uninterrupted / "ckpt"), checkpoint_weights(tmp_path / "ckpt")
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _assert_same_weights(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    """Equal up to rounding: other batch splits sum the same products in another order (the
    CPU's LSTM loop multiplies all of a replica's frames at once, so more than Keras' loop
    did: up to 1.0e-4 seen). A gradient counted twice or half moves the SGD runs' weights by
    about their update, 0.1 to 0.5, hundreds of times this tolerance."""
    assert a.keys() == b.keys() and a
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-4, atol=5e-4, err_msg=name)


SGD = ("--optimizer", "sgd", "--learning-rate", "0.005")  # SGD: a gradient counted twice shows


@pytest.fixture(scope="module")
def one_device_weights(
    tiny_corpus: Path, few_steps_corpus: Path, tmp_path_factory: pytest.TempPathFactory
):
    tmp = tmp_path_factory.mktemp("one-device")
    command = cli_train(
        tiny_corpus, tmp, "--epochs", "1", "--batch-size", "8", "--devices", "1", *SGD,
        train_files=few_steps_corpus,
    )  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return checkpoint_weights(tmp / "ckpt")


def test_two_logical_devices_give_the_same_weights(
    one_device_weights, tiny_corpus: Path, few_steps_corpus: Path, tmp_path: Path
) -> None:
    """Each gradient is summed over replicas once (by the step, not again by Keras): with plain
    SGD a double count would double every update."""
    command = cli_train(
        tiny_corpus, tmp_path, "--epochs", "1", "--batch-size", "4", "--devices", "2", *SGD,
        train_files=few_steps_corpus,
    )  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    (run,) = mlflow_runs(tmp_path)
    assert run.data.params["devices"] == "2 x CPU (logical), mirrored"
    assert run.data.params["global_batch_size"] == "8"
    _assert_same_weights(one_device_weights, checkpoint_weights(tmp_path / "ckpt"))


def test_thread_pools_change_the_schedule_not_the_weights(
    one_device_weights, tiny_corpus: Path, few_steps_corpus: Path, tmp_path: Path
) -> None:
    """`--intra-op-threads 1 --inter-op-threads 2` (what make run uses on 2 cores) is applied
    in the training process and trains the same weights as TensorFlow's own pools."""
    command = cli_train(
        tiny_corpus, tmp_path, "--epochs", "1", "--batch-size", "8", "--devices", "1", *SGD,
        "--intra-op-threads", "1", "--inter-op-threads", "2", train_files=few_steps_corpus,
    )  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "TensorFlow intra-op threads: 1" in result.stderr
    assert "TensorFlow inter-op threads: 2" in result.stderr
    (run,) = mlflow_runs(tmp_path)
    assert run.data.params["intra_op_threads"] == "1"
    assert run.data.params["inter_op_threads"] == "2"
    _assert_same_weights(one_device_weights, checkpoint_weights(tmp_path / "ckpt"))


def test_thread_pools_cannot_change_once_tensorflow_runs() -> None:
    import tensorflow as tf

    from deepspeech.training.placement import configure_threads

    tf.constant(1.0).numpy()  # TensorFlow has started in this process
    current = tf.config.threading.get_intra_op_parallelism_threads()
    configure_threads(0, 0)  # TensorFlow's choice: nothing to change
    with pytest.raises(ConfigError, match=r"after TensorFlow started.*new process"):
        configure_threads(current + 1, 0)


def _network_namespace_prefix() -> list[str]:
    """TensorFlow's gRPC server binds every interface: keep it in a private network namespace."""
    if shutil.which("unshare") and shutil.which("ip"):
        probe = subprocess.run(
            ["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True, timeout=10
        )
        if probe.returncode == 0:
            return ["unshare", "-n", "sh", "-c"]
    return ["sh", "-c"]


def replay_on_one_device(
    train_files: Path, tmp: Path, num_workers: int, batch_size: int, learning_rate: float
) -> dict[str, np.ndarray]:
    """What one device gets from the global batches `num_workers` workers formed in epoch 0.

    Starts from the run's own checkpoint 0, and each step concatenates the workers' batches
    (cut by the same pipeline, from each worker's own shards): plain SGD on one device.
    """
    import tensorflow as tf

    from deepspeech.data.cache import open_cached_set, read_manifests
    from deepspeech.data.pipeline import make_dataset, training_plans
    from deepspeech.model.birnn import build_birnn
    from deepspeech.text import Alphabet
    from deepspeech.training.checkpoint import read_run_info
    from deepspeech.training.step import make_optimizer, make_train_step

    alphabet = Alphabet.default()
    info = read_run_info(tmp / "ckpt")
    cached = open_cached_set(
        read_manifests(train_files, alphabet), tmp / "feature-cache", 26, alphabet
    )
    stride = info.features.stride
    plans = training_plans(
        cached,
        batch_size=batch_size,
        replicas_per_worker=1,
        stride=stride,
        seed=TINY["seed"],
        epoch=0,
        num_workers=num_workers,
    )
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = build_birnn(info.model)
        optimizer = make_optimizer("sgd", learning_rate)
        optimizer.build(model.trainable_variables)
    tf.train.Checkpoint(model=model).restore(str(tmp / "ckpt" / "ckpt-0")).expect_partial()
    datasets = [make_dataset(cached, plan, stride) for plan in plans]
    step = None
    for batches in zip(*datasets, strict=True):
        t_max = max(int(b[0].shape[1]) for b in batches)
        l_max = max(int(b[2].shape[1]) for b in batches)
        element = (
            tf.concat(
                [tf.pad(b[0], [[0, 0], [0, t_max - b[0].shape[1]], [0, 0]]) for b in batches], 0
            ),
            tf.concat([b[1] for b in batches], 0),
            tf.concat([tf.pad(b[2], [[0, 0], [0, l_max - b[2].shape[1]]]) for b in batches], 0),
            tf.concat([b[3] for b in batches], 0),
            tf.concat([b[4] for b in batches], 0),
        )
        if step is None:
            spec = tuple(tf.TensorSpec.from_tensor(t) for t in element)
            spec = tuple(tf.TensorSpec([None] * len(s.shape), s.dtype) for s in spec)
            step = make_train_step(
                strategy,
                model,
                optimizer,
                batch_size * num_workers,
                0.0,
                spec,
                with_gradients=False,
            )
        step(element)
    return {v.path: v.numpy() for v in model.weights}


def test_two_workers_read_their_shares_and_match_one_device(
    tiny_corpus: Path, few_steps_corpus: Path, tmp_path: Path
) -> None:
    """2 workers (TF_CONFIG, 127.0.0.1, private network namespace), each reading only its own
    shards: the same weights as one device trained on the global batches they formed."""
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    env_file = tmp_path / "cluster.sh"
    lines = ["ip link set lo up 2>/dev/null || true"]
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        args = cli_train(
            tiny_corpus, tmp_path, "--epochs", "1", "--batch-size", "4", *SGD,
            train_files=few_steps_corpus,
        )  # fmt: skip
        command = " ".join(f"'{a}'" for a in args)
        lines.append(f"TF_CONFIG='{tf_config}' {command} > {tmp_path}/worker{index}.log 2>&1 &")
    lines.append("wait %1 && wait %2")
    env_file.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [*_network_namespace_prefix(), f"sh {env_file}"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    logs = "\n".join((tmp_path / f"worker{i}.log").read_text() for i in range(2))
    assert result.returncode == 0, logs
    (run,) = mlflow_runs(tmp_path)  # only the chief logs
    assert run.data.params["devices"] == "2 workers x 1 device(s)"
    trained = checkpoint_weights(tmp_path / "ckpt")
    expected = replay_on_one_device(few_steps_corpus, tmp_path, 2, 4, float(SGD[-1]))
    _assert_same_weights(expected, trained)


def test_runs_compare_tables_and_plots_the_run(trained, tmp_path: Path) -> None:
    _, tmp, result = trained
    output = tmp_path / "compare.png"
    command = [sys.executable, "-m", "deepspeech", "runs", "compare", "--experiment-name"]
    command += [
        "tests",
        "--tracking-uri",
        f"sqlite:///{tmp / 'mlflow.db'}",
        "--output",
        str(output),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert result.mlflow_run_id[:8] in completed.stdout and "test_wer" in completed.stdout
    assert output.read_bytes()[:4] == b"\x89PNG"
    missing = subprocess.run(
        [*command[:6], "nope", *command[7:]], capture_output=True, text=True, timeout=120
    )
    assert missing.returncode == 2 and "no experiment 'nope'" in missing.stderr


def test_evaluate_and_tune_with_a_language_model(
    trained, tiny_corpus: Path, tmp_path: Path
) -> None:
    """The LM path end to end: build an LM from training text, evaluate with beam + LM, tune."""
    from mlflow import MlflowClient

    config, _tmp, _ = trained
    text = tmp_path / "train.txt"
    text.write_text("\n".join(u.transcript for u in read_manifest(tiny_corpus / "train.csv")))
    lm = tmp_path / "lm.arpa"
    deepspeech = [sys.executable, "-m", "deepspeech"]
    built = subprocess.run(
        [*deepspeech, "lm", "build", "--text", str(text), "--output", str(lm)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    report_json = tmp_path / "report.json"
    evaluated = subprocess.run(
        [
            *deepspeech,
            "evaluate",
            "--checkpoint-dir",
            config.checkpoint_dir,
            "--test-files",
            str(tiny_corpus / "test.csv"),
            "--decoder",
            "beam",
            "--lm",
            str(lm),
            "--json",
            str(report_json),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(report_json.read_text())["n_samples"] > 0
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tuned = subprocess.run(
        [
            *deepspeech,
            "lm",
            "tune",
            "--checkpoint-dir",
            config.checkpoint_dir,
            "--dev-files",
            str(tiny_corpus / "dev.csv"),
            "--lm",
            str(lm),
            "--alphas",
            "0,1",
            "--betas",
            "0,1",
            "--beam-width",
            "8",
            "--tracking-uri",
            uri,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert tuned.returncode == 0, tuned.stderr
    assert "best alpha" in tuned.stdout
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("lm-tune").experiment_id])
    assert {"best_alpha", "best_beta", "best_wer"} <= set(run.data.metrics)
    assert "plots/tuning.png" in {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    greedy_lm = subprocess.run(
        [
            *deepspeech,
            "evaluate",
            "--checkpoint-dir",
            config.checkpoint_dir,
            "--test-files",
            str(tiny_corpus / "test.csv"),
            "--lm",
            str(lm),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert greedy_lm.returncode == 2 and "needs the beam decoder" in greedy_lm.stderr
