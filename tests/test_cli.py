"""The console script as a user runs it: exit codes, one-line errors, --help, --version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepspeech import __version__
from deepspeech.audio import SAMPLE_RATE, write_wav
from deepspeech.cli import main
from deepspeech.data.manifest import Utterance, write_manifest


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deepspeech", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_commands_and_does_not_import_tensorflow() -> None:
    code = (
        "import sys\n"
        "from deepspeech.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported by --help'\n"
        "assert 'mlflow' not in sys.modules, 'mlflow imported by --help'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "data" in result.stdout


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"deepspeech {__version__}"


def _corpus(tmp_path: Path, transcript: str) -> Path:
    wav = tmp_path / "a.wav"
    write_wav(wav, np.zeros(SAMPLE_RATE // 2, dtype=np.float32))
    csv_path = tmp_path / "m.csv"
    write_manifest(csv_path, [Utterance(wav, wav.stat().st_size, transcript)])
    return csv_path


def test_data_check_summarises_a_good_manifest(tmp_path: Path) -> None:
    csv_path = _corpus(tmp_path, "hello world")
    result = run_cli("data", "check", str(csv_path))
    assert result.returncode == 0, result.stderr
    assert "1 utterances" in result.stdout and "ok" in result.stdout


def test_user_error_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    csv_path = _corpus(tmp_path, "héllo")
    result = run_cli("data", "check", str(csv_path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and f"{csv_path}:2:" in lines[0]
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    csv_path = _corpus(tmp_path, "héllo")
    result = run_cli("--debug", "data", "check", str(csv_path))
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "ManifestError" in result.stderr


def test_usage_error_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["data", "check"])
    assert e.value.code == 2
    assert "Missing argument" in capsys.readouterr().err


def test_train_help_documents_every_augmentation() -> None:
    result = run_cli("train", "--help")
    assert result.returncode == 0, result.stderr
    assert "--augment" in result.stdout
    for name in ("noise", "reverb", "speed", "pitch", "volume", "eq", "freq_mask", "time_mask"):
        assert f"{name} (" in result.stdout, name


def test_a_bad_augment_spec_fails_in_one_line_before_training(tmp_path: Path) -> None:
    csv_path = _corpus(tmp_path, "hello world")
    manifests = ("--train-files", str(csv_path), "--dev-files", str(csv_path))
    result = run_cli("train", *manifests, "--augment", "noise", "--augment", "echo[p=1]")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    known = "known: noise, reverb, speed, pitch, volume, eq, pad, freq_mask, time_mask, time_warp"
    assert lines[0] == f"error: unknown augmentation 'echo'; {known}"
