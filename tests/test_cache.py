"""Tests for deepspeech/data/cache.py: real WAVs of the tiny corpus, real shard files."""

from __future__ import annotations

import itertools
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deepspeech.audio import audio_to_features, load_wav
from deepspeech.data.cache import (
    FEATURE_DTYPE,
    INDEX_FILE,
    LABEL_DTYPE,
    ctc_min_frames,
    entry_folder,
    open_cached_set,
    read_manifests,
    shard_bounds,
)
from deepspeech.data.manifest import read_manifest, write_manifest
from deepspeech.errors import AudioFormatError, ManifestError
from deepspeech.text import Alphabet

ALPHABET = Alphabet.default()


def open_set(manifest: Path, cache: Path, workers: int = 1):
    return open_cached_set(read_manifests(manifest, ALPHABET), cache, 26, ALPHABET, workers=workers)


def shard_arrays(cached, k: int) -> tuple[np.ndarray, np.ndarray]:
    shard = cached.shards[k]
    frames = np.fromfile(shard.feature_file, FEATURE_DTYPE).reshape(-1, cached.numcep)
    return frames, np.fromfile(shard.label_file, LABEL_DTYPE)


def test_shards_hold_each_utterances_features_and_labels(tiny_corpus: Path, tmp_path: Path) -> None:
    cached = open_set(tiny_corpus / "train.csv", tmp_path, workers=2)
    utterances = read_manifest(tiny_corpus / "train.csv")
    assert [u.wav_path for u in cached.utterances] == [u.wav_path for u in utterances]
    assert len(cached.shards) == len(shard_bounds(utterances)) > 1
    for k in (0, len(cached.shards) - 1):
        shard = cached.shards[k]
        frames, labels = shard_arrays(cached, k)
        starts = np.concatenate([[0], np.cumsum(shard.frames)])
        label_starts = np.concatenate([[0], np.cumsum(shard.label_lengths)])
        for j in range(len(shard.frames)):
            utterance = utterances[shard.first + j]
            expected = audio_to_features(load_wav(utterance.wav_path))
            got = frames[starts[j] : starts[j + 1]].astype(np.float32)
            np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-2)  # float16
            encoded = ALPHABET.encode(utterance.transcript)
            np.testing.assert_array_equal(labels[label_starts[j] : label_starts[j + 1]], encoded)
            assert shard.min_frames[j] == ctc_min_frames(encoded)


def test_normalization_is_the_mean_and_std_of_every_frame(tiny_corpus: Path, tmp_path: Path):
    cached = open_set(tiny_corpus / "dev.csv", tmp_path)
    frames = np.concatenate([audio_to_features(load_wav(u.wav_path)) for u in cached.utterances])
    mean, std = cached.normalization()
    assert mean.shape == std.shape == (26,)
    np.testing.assert_allclose(mean, frames.mean(axis=0), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(std, frames.std(axis=0), rtol=1e-3, atol=1e-3)


def test_shards_hold_about_equal_audio_and_cover_the_manifest(tiny_corpus: Path) -> None:
    utterances = read_manifest(tiny_corpus / "train.csv")
    bounds = shard_bounds(utterances)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(utterances)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    sizes = [sum(u.wav_filesize for u in utterances[a:b]) for a, b in bounds]
    assert 25 <= len(bounds) <= 40  # TARGET_SHARDS for a small manifest
    assert max(sizes[:-1]) < 2.5 * min(sizes[:-1])


def test_cache_size_is_under_forty_megabytes_per_audio_hour(tiny_corpus: Path, tmp_path: Path):
    cached = open_set(tiny_corpus / "train.csv", tmp_path)
    assert cached.audio_hours > 0
    assert cached.megabytes_per_audio_hour <= 40, cached.megabytes_per_audio_hour


def test_a_second_open_reuses_the_entry(tiny_corpus: Path, tmp_path: Path) -> None:
    first = open_set(tiny_corpus / "dev.csv", tmp_path)
    stamps = {p: p.stat().st_mtime_ns for p in first.shards[0].feature_file.parent.iterdir()}
    again = open_set(tiny_corpus / "dev.csv", tmp_path)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert again.frames.tolist() == first.frames.tolist()


def test_a_changed_manifest_gets_a_new_entry(tiny_corpus: Path, tmp_path: Path) -> None:
    utterances = read_manifest(tiny_corpus / "dev.csv")
    manifest = tmp_path / "corpus" / "dev.csv"
    manifest.parent.mkdir()
    write_manifest(manifest, utterances)
    before = entry_folder(tmp_path / "cache", manifest, 26, ALPHABET)
    open_set(manifest, tmp_path / "cache")
    write_manifest(manifest, utterances[:-1])
    after = entry_folder(tmp_path / "cache", manifest, 26, ALPHABET)
    assert after != before
    assert len(open_set(manifest, tmp_path / "cache")) == len(utterances) - 1
    assert entry_folder(tmp_path / "cache", manifest, 13, ALPHABET) != after  # numcep in key


def test_a_shard_without_its_json_is_rebuilt_and_the_others_kept(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    cached = open_set(tiny_corpus / "train.csv", tmp_path)
    folder = cached.shards[0].feature_file.parent
    (folder / INDEX_FILE).unlink()
    (folder / "shard-00001.json").unlink()
    (folder / "shard-00001.feat").write_bytes(b"half a shard")
    kept = (folder / "shard-00000.feat").stat().st_mtime_ns
    rebuilt = open_set(tiny_corpus / "train.csv", tmp_path)
    assert (folder / "shard-00000.feat").stat().st_mtime_ns == kept
    assert rebuilt.frames.tolist() == cached.frames.tolist()
    frames, _ = shard_arrays(rebuilt, 1)
    assert len(frames) == int(rebuilt.shards[1].frames.sum())


def test_kill_9_while_featurizing_never_leaves_a_shard_read_as_complete(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    """Kill the build as soon as its first shard is complete; what is there must be whole,
    and the resumed build must equal a build never interrupted, byte for byte."""
    command = [sys.executable, "-m", "deepspeech", "data", "featurize"]
    command += [str(tiny_corpus / "train.csv"), "--workers", "1"]
    process = subprocess.Popen(
        [*command, "--feature-cache", str(tmp_path / "killed")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    folder = entry_folder(tmp_path / "killed", tiny_corpus / "train.csv", 26, ALPHABET)
    try:
        while process.poll() is None and not list(folder.glob("shard-*.json")):
            time.sleep(0.01)  # poll for work done (a shard), not for an amount of time
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    for json_file in folder.glob("shard-*.json"):
        info = json.loads(json_file.read_text())
        feat = json_file.with_suffix(".feat")
        assert feat.stat().st_size == sum(info["frames"]) * 26 * FEATURE_DTYPE.itemsize
    assert not (folder / INDEX_FILE).exists() or process.returncode == 0
    resumed = subprocess.run(
        [*command, "--feature-cache", str(tmp_path / "killed")], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    fresh = open_set(tiny_corpus / "train.csv", tmp_path / "fresh")
    for shard in fresh.shards:
        twin = folder / shard.feature_file.name
        assert twin.read_bytes() == shard.feature_file.read_bytes()
    assert "MB per audio hour" in resumed.stdout


def test_an_undecodable_wav_fails_naming_the_file(tiny_corpus: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus)
    victim = read_manifest(corpus / "dev.csv")[2].wav_path
    data = bytearray(victim.read_bytes())
    data[:4] = b"JUNK"  # same size, so the manifest check passes; the decoder must refuse
    victim.write_bytes(bytes(data))
    with pytest.raises(AudioFormatError, match=victim.name):
        open_set(corpus / "dev.csv", tmp_path / "cache", workers=2)


def test_a_missing_file_fails_before_any_featurizing(tiny_corpus: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus)
    read_manifest(corpus / "test.csv")[1].wav_path.unlink()
    with pytest.raises(ManifestError, match=r"test\.csv:3"):
        read_manifests(f"{corpus / 'dev.csv'},{corpus / 'test.csv'}", ALPHABET)
