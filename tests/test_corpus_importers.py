"""Tests for deepspeech/corpus/{convert,librispeech,tedlium,commonvoice}.py and the CLI commands.

Each corpus is built in its real on-disk format (FLAC, NIST SPHERE + STM, MP3 + tsv) with a few
seconds of tone, plus the broken files real downloads contain, and imported end to end.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile

from deepspeech.audio import SAMPLE_RATE, load_wav, read_wav_info
from deepspeech.corpus import convert
from deepspeech.corpus.commonvoice import plan_commonvoice
from deepspeech.corpus.convert import (
    EMPTY_TRANSCRIPT,
    MISSING_AUDIO,
    OUTSIDE_RECORDING,
    TOO_LONG,
    TOO_SHORT,
    UNREADABLE_AUDIO,
    UNSPELLABLE,
    ConversionJob,
    CorpusPlan,
    ImportConfig,
    ImportSummary,
    convert_corpus,
    prepare_transcript,
)
from deepspeech.corpus.librispeech import plan_librispeech
from deepspeech.corpus.tedlium import (
    NOT_SCORED,
    clean_tedlium_transcript,
    plan_tedlium,
)
from deepspeech.data.manifest import MANIFEST_HEADER, read_manifest
from deepspeech.errors import ConfigError, CorpusError
from deepspeech.text import Alphabet

MAX_SECONDS = 3.0  # small, so an "over-long" clip stays tiny
CONFIG = ImportConfig(max_seconds=MAX_SECONDS, workers=1)  # spawning a pool costs seconds
POOL_CONFIG = ImportConfig(max_seconds=MAX_SECONDS, workers=2)


def tone(seconds: float, rate: int = SAMPLE_RATE, channels: int = 1) -> np.ndarray:
    """A quiet 440 Hz tone with a little noise: (n,) or (n, channels) float32."""
    t = np.arange(round(seconds * rate)) / rate
    signal = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * np.random.default_rng(0).normal(size=len(t))
    if channels > 1:
        signal = np.repeat(signal[:, None], channels, axis=1)
    return signal.astype(np.float32)


def manifest_rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def transcripts(path: Path) -> dict[str, str]:
    """wav_filename -> transcript of a manifest, checking its header on the way."""
    rows = manifest_rows(path)
    assert tuple(rows[0]) == MANIFEST_HEADER
    return {row[0]: row[2] for row in rows[1:]}


def assert_training_wav(path: Path, seconds: float | None = None) -> None:
    info = read_wav_info(path)
    assert (info.sample_rate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16")
    if seconds is not None:
        assert info.frames == round(seconds * SAMPLE_RATE)


def wav_mtimes(out: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deepspeech", *args], capture_output=True, text=True, timeout=120
    )


# ---- LibriSpeech --------------------------------------------------------------------------


def make_librispeech(root: Path) -> Path:
    """`root/LibriSpeech` with dev-clean (good and broken utterances) and test-clean."""
    chapter = root / "LibriSpeech" / "dev-clean" / "84" / "121123"
    chapter.mkdir(parents=True)
    clips = {
        "84-121123-0000": (tone(2.0), "HELLO WORLD"),
        "84-121123-0001": (tone(1.5), "IT'S A TEST"),
        "84-121123-0003": (tone(4.0), "FAR TOO LONG"),
        "84-121123-0004": (tone(1.0), ""),
        "84-121123-0005": (tone(0.1), "A TRANSCRIPT FAR LONGER THAN ITS TENTH OF A SECOND"),
    }
    for utterance_id, (audio, _) in clips.items():
        soundfile.write(chapter / f"{utterance_id}.flac", audio, SAMPLE_RATE, format="FLAC")
    valid = (chapter / "84-121123-0000.flac").read_bytes()
    (chapter / "84-121123-0002.flac").write_bytes(valid[:100])  # truncated download
    lines = [f"{uid} {text}".rstrip() for uid, (_, text) in clips.items()]
    lines += ["84-121123-0002 CORRUPT FILE", "84-121123-0006 NO SUCH FLAC"]
    (chapter / "84-121123.trans.txt").write_text("\n".join(sorted(lines)) + "\n")

    other = root / "LibriSpeech" / "test-clean" / "1089" / "134686"
    other.mkdir(parents=True)
    soundfile.write(other / "1089-134686-0000.flac", tone(1.0), SAMPLE_RATE, format="FLAC")
    (other / "1089-134686.trans.txt").write_text("1089-134686-0000 HE HOPED THERE WOULD BE STEW\n")
    return root


def test_librispeech_end_to_end(tmp_path: Path) -> None:
    src = make_librispeech(tmp_path / "src")
    out = tmp_path / "out"
    progress: list[int] = []
    summary = convert_corpus(plan_librispeech(src, out), POOL_CONFIG, progress=progress.append)

    assert summary.manifests == {
        "dev-clean": out / "dev-clean.csv",
        "test-clean": out / "test-clean.csv",
    }
    assert transcripts(out / "dev-clean.csv") == {
        "dev-clean/84/121123/84-121123-0000.wav": "hello world",
        "dev-clean/84/121123/84-121123-0001.wav": "it's a test",
    }
    assert transcripts(out / "test-clean.csv") == {
        "test-clean/1089/134686/1089-134686-0000.wav": "he hoped there would be stew"
    }
    assert_training_wav(out / "dev-clean/84/121123/84-121123-0000.wav", seconds=2.0)
    assert_training_wav(out / "dev-clean/84/121123/84-121123-0001.wav", seconds=1.5)
    assert len(read_manifest(out / "dev-clean.csv")) == 2  # what training will accept

    assert (summary.kept, summary.converted, summary.reused) == (3, 3, 0)
    assert summary.hours == pytest.approx(4.5 / 3600)
    assert {reason: tally.count for reason, tally in summary.skipped.items()} == {
        UNREADABLE_AUDIO: 1,
        TOO_LONG: 1,
        EMPTY_TRANSCRIPT: 1,
        TOO_SHORT: 1,
        MISSING_AUDIO: 1,
    }
    assert summary.skipped[UNREADABLE_AUDIO].examples == ["84-121123-0002.flac"]
    assert summary.skipped[MISSING_AUDIO].examples == ["84-121123-0006.flac"]
    assert sum(progress) == 8
    text = summary.to_text()
    assert "kept 3 utterances" in text and "84-121123-0002.flac" in text
    assert "longer than --max-seconds (3 s): 1" in text


def test_rerun_reuses_wavs_and_writes_the_same_manifests(tmp_path: Path) -> None:
    src = make_librispeech(tmp_path / "src")
    out = tmp_path / "out"
    convert_corpus(plan_librispeech(src, out), CONFIG)
    mtimes = wav_mtimes(out)
    manifests = {p: p.read_bytes() for p in out.glob("*.csv")}
    (out / "dev-clean/84/121123/.84-121123-0001.wav.x.tmp").write_bytes(b"killed run")

    again = convert_corpus(plan_librispeech(src, out), CONFIG)

    assert (again.kept, again.converted, again.reused) == (3, 0, 3)
    assert wav_mtimes(out) == mtimes
    assert {p: p.read_bytes() for p in out.glob("*.csv")} == manifests
    assert not list(out.rglob("*.tmp"))


def test_rerun_applies_a_stricter_limit_to_reused_wavs(tmp_path: Path) -> None:
    src = make_librispeech(tmp_path / "src")
    out = tmp_path / "out"
    convert_corpus(plan_librispeech(src, out), CONFIG)
    summary = convert_corpus(plan_librispeech(src, out), ImportConfig(max_seconds=1.2, workers=1))
    assert summary.manifests == {"test-clean": out / "test-clean.csv"}
    assert not (out / "dev-clean.csv").exists()  # no stale manifest left behind
    assert summary.skipped[TOO_LONG].count == 3


@pytest.mark.parametrize("level", ["parent", "LibriSpeech", "subset"])
def test_librispeech_accepts_each_folder_level(tmp_path: Path, level: str) -> None:
    root = make_librispeech(tmp_path / "src")
    src = {
        "parent": root,
        "LibriSpeech": root / "LibriSpeech",
        "subset": root / "LibriSpeech" / "test-clean",
    }[level]
    plan = plan_librispeech(src, tmp_path / "out")
    expected = ["test-clean"] if level == "subset" else ["dev-clean", "test-clean"]
    assert list(plan.splits) == expected
    assert plan.splits["test-clean"][0] == ConversionJob(
        source=root / "LibriSpeech/test-clean/1089/134686/1089-134686-0000.flac",
        wav_path=tmp_path / "out/test-clean/1089/134686/1089-134686-0000.wav",
        transcript="HE HOPED THERE WOULD BE STEW",
    )


# ---- TED-LIUM -----------------------------------------------------------------------------

TALK_STM = """\
;; CATEGORY "0" "" ""
;; LABEL "O" "Overall" "Overall"
;; LABEL "F0" "f0" "Wideband"
;; LABEL "male" "Male" "Male"
Talk_2010 1 Talk_2010 0.00 1.00 <o,f0,male> ignore_time_segment_in_scoring
Talk_2010 1 Talk_2010 0.50 0.90 <o,f0,male> <unk> {BREATH}
Talk_2010 1 Talk_2010 1.00 3.50 <o,f0,male> it 's a {NOISE} test <unk> of what(2) we 're doing
Talk_2010 1 Talk_2010 3.50 5.25 <o,f0,male> second segment
Talk_2010 1 Talk_2010 5.25 9.00 <o,f0,male> a segment too long to keep
Talk_2010 1 Talk_2010 9.00 11.00 <o,f0,male> runs past the end
Talk_2010 1 Talk_2010 12.00 13.00 <o,f0,male> after the end
"""
BROKEN_STM = "Broken_2011 1 Broken_2011 0.00 1.00 <o,f0,female> never heard\n"


def make_tedlium(root: Path) -> Path:
    """A release 3 root: `legacy/{dev,test}` plus a `speaker-adaptation/dev` to ignore."""
    dev = root / "legacy" / "dev"
    test = root / "legacy" / "test"
    for split in (dev, test, root / "speaker-adaptation" / "dev"):
        (split / "sph").mkdir(parents=True)
        (split / "stm").mkdir(parents=True)
    soundfile.write(dev / "sph/Talk_2010.sph", tone(10.0), SAMPLE_RATE, format="NIST")
    (dev / "stm/Talk_2010.stm").write_text(TALK_STM)
    (test / "sph/Broken_2011.sph").write_bytes(b"NIST_1A\n   1024\n" + b"\x07" * 1500)
    (test / "stm/Broken_2011.stm").write_text(BROKEN_STM)
    other = root / "speaker-adaptation" / "dev"
    soundfile.write(other / "sph/Other.sph", tone(1.0), SAMPLE_RATE, format="NIST")
    (other / "stm/Other.stm").write_text("Other 1 Other 0.0 1.0 <o,f0,male> other\n")
    return root


def test_tedlium_end_to_end(tmp_path: Path) -> None:
    src = make_tedlium(tmp_path / "TEDLIUM_release-3")
    out = tmp_path / "out"
    summary = convert_corpus(plan_tedlium(src, out), CONFIG)

    assert summary.manifests == {"dev": out / "dev.csv"}  # test's only talk is corrupt
    assert transcripts(out / "dev.csv") == {
        "dev/Talk_2010/Talk_2010-00001000-00003500.wav": "it's a test of what we're doing",
        "dev/Talk_2010/Talk_2010-00003500-00005250.wav": "second segment",
        "dev/Talk_2010/Talk_2010-00009000-00011000.wav": "runs past the end",
    }
    talk = out / "dev" / "Talk_2010"
    assert_training_wav(talk / "Talk_2010-00001000-00003500.wav", seconds=2.5)
    assert_training_wav(talk / "Talk_2010-00003500-00005250.wav", seconds=1.75)
    assert_training_wav(talk / "Talk_2010-00009000-00011000.wav", seconds=1.0)  # cut at the end
    original = tone(10.0)
    cut = load_wav(talk / "Talk_2010-00003500-00005250.wav")
    np.testing.assert_allclose(cut, original[56000:84000], atol=1 / 32768)

    assert {reason: tally.count for reason, tally in summary.skipped.items()} == {
        NOT_SCORED: 1,
        EMPTY_TRANSCRIPT: 1,
        TOO_LONG: 1,
        OUTSIDE_RECORDING: 1,
        UNREADABLE_AUDIO: 1,
    }
    assert summary.skipped[TOO_LONG].examples == ["Talk_2010.sph 5.25-9.00 s"]
    assert summary.skipped[UNREADABLE_AUDIO].examples == ["Broken_2011.sph 0.00-1.00 s"]
    assert not (out / "speaker-adaptation").exists() and not (out / "test.csv").exists()

    mtimes = wav_mtimes(out)
    plan = plan_tedlium(src / "legacy", out)  # SRC at legacy/: the same splits
    again = convert_corpus(plan, CONFIG)
    assert (again.converted, again.reused) == (0, 3)
    assert wav_mtimes(out) == mtimes


def test_tedlium_single_split_folder(tmp_path: Path) -> None:
    src = make_tedlium(tmp_path / "TEDLIUM_release-3")
    plan = plan_tedlium(src / "speaker-adaptation" / "dev", tmp_path / "out")
    assert list(plan.splits) == ["dev"]
    assert [job.source.name for job in plan.splits["dev"]] == ["Other.sph"]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("it 's a {NOISE} test <unk> of what(2) we 're doing", "it's a test of what we're doing"),
        ("i 'm here [laughter] they 've gone", "i'm here they've gone"),
        ("<unk> {BREATH}", ""),
        ("plain words", "plain words"),
    ],
)
def test_clean_tedlium_transcript(raw: str, clean: str) -> None:
    assert clean_tedlium_transcript(raw) == clean


# ---- Common Voice -------------------------------------------------------------------------

TSV_HEADER = "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tlocale"


def make_commonvoice(root: Path) -> Path:
    """`root/en` (a release folder with one language): 48 kHz stereo MP3s, train and dev tsv."""
    language = root / "en"
    clips = language / "clips"
    clips.mkdir(parents=True)
    for name, seconds in [("en_1", 1.5), ("en_2", 1.5), ("en_3", 1.0), ("en_6", 1.0)]:
        audio = tone(seconds, rate=48000, channels=2)
        soundfile.write(clips / f"common_voice_{name}.mp3", audio, 48000, format="MP3")
    soundfile.write(clips / "common_voice_en_7.mp3", tone(4.0, rate=48000), 48000, format="MP3")
    soundfile.write(clips / "common_voice_en_9.mp3", tone(1.0, rate=48000), 48000, format="MP3")
    (clips / "common_voice_en_5.mp3").write_bytes(b"<html>503 Service Unavailable</html>\n" * 20)
    rows = [
        ("common_voice_en_1.mp3", "Héllo, wörld!"),
        ("common_voice_en_2.mp3", 'He said "hi" to me.'),
        ("common_voice_en_3.mp3", "I have 3 cats."),
        ("common_voice_en_4.mp3", "This clip was never downloaded."),
        ("common_voice_en_5.mp3", "A corrupt clip."),
        ("common_voice_en_6", "No extension in the tsv."),
        ("common_voice_en_7.mp3", "A clip that is far too long."),
    ]
    lines = [
        TSV_HEADER,
        *(f"c{i}\t{path}\t{text}\t2\t0\t\t\t\ten" for i, (path, text) in enumerate(rows)),
    ]
    (language / "train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    dev = [TSV_HEADER, "c9\tcommon_voice_en_9.mp3\tПривет мир\t2\t0\t\t\t\ten"]
    (language / "dev.tsv").write_text("\n".join(dev) + "\n", encoding="utf-8")
    (language / "validated.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_commonvoice_end_to_end(tmp_path: Path) -> None:
    src = make_commonvoice(tmp_path / "src")
    out = tmp_path / "out"
    plan = plan_commonvoice(src, out)  # the release folder: its one language
    summary = convert_corpus(plan, CONFIG)

    assert summary.manifests == {"train": out / "train.csv"}  # dev's one clip is Cyrillic
    assert transcripts(out / "train.csv") == {
        "train/common_voice_en_1.wav": "hello world",
        "train/common_voice_en_2.wav": "he said hi to me",
        "train/common_voice_en_6.wav": "no extension in the tsv",
    }
    for wav in (out / "train").glob("*.wav"):
        assert_training_wav(wav)
    seconds = read_wav_info(out / "train/common_voice_en_1.wav").duration_seconds
    assert seconds == pytest.approx(1.5, abs=0.1)  # MP3 adds encoder padding

    assert {reason: tally.count for reason, tally in summary.skipped.items()} == {
        UNSPELLABLE: 2,
        MISSING_AUDIO: 1,
        UNREADABLE_AUDIO: 1,
        TOO_LONG: 1,
    }
    assert summary.skipped[UNSPELLABLE].examples == [
        "common_voice_en_3.mp3 ('3')",
        "common_voice_en_9.mp3 ('Пвеимрт')",
    ]
    assert summary.skipped[MISSING_AUDIO].examples == ["common_voice_en_4.mp3"]
    assert "dev" in summary.splits and summary.splits["dev"].manifest is None


def test_commonvoice_rejects_a_tsv_without_sentences(tmp_path: Path) -> None:
    language = tmp_path / "en"
    (language / "clips").mkdir(parents=True)
    (language / "train.tsv").write_text("client_id\tpath\ttext\nc1\ta.mp3\thello\n")
    with pytest.raises(CorpusError, match=r"train\.tsv: no sentence column"):
        plan_commonvoice(language, tmp_path / "out")


def test_commonvoice_release_with_several_languages_names_them(tmp_path: Path) -> None:
    root = make_commonvoice(tmp_path / "cv-corpus-1.0")
    (root / "fr" / "clips").mkdir(parents=True)
    (root / "fr" / "test.tsv").write_text(TSV_HEADER + "\n")
    with pytest.raises(CorpusError, match=r"several languages \(en, fr\)"):
        plan_commonvoice(root, tmp_path / "out")


# ---- shared machinery ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Héllo, World!", ("hello world", None)),
        ("It’s — fine", ("it's fine", None)),
        ("I have 3 cats", ("i have cats", UNSPELLABLE)),
        ("東京", ("", UNSPELLABLE)),
        ("?!", ("", EMPTY_TRANSCRIPT)),
    ],
)
def test_prepare_transcript(text: str, expected: tuple[str, str | None]) -> None:
    assert prepare_transcript(text, Alphabet.default()) == expected


def test_prepare_transcript_keeps_digits_an_alphabet_has() -> None:
    alphabet = Alphabet((*Alphabet.default().labels, *"0123456789"))
    assert prepare_transcript("I have 3 cats", alphabet) == ("i have 3 cats", None)


def test_import_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="workers"):
        ImportConfig(workers=0)
    with pytest.raises(ConfigError, match="max_seconds"):
        ImportConfig(max_seconds=0)


def crash_on_broken(batch: convert.Batch, max_seconds: float | None) -> list[convert._Outcome]:
    """A batch converter whose worker process dies on any source named 'crash*'."""
    if any(job.source.name.startswith("crash") for group in batch for _, job in group):
        os._exit(1)
    return convert._convert_batch(batch, max_seconds)


def test_a_worker_that_dies_costs_only_its_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    jobs = []
    for name in ["a", "b", "c", "crash", "d"]:  # ("d" after: the pool must go on)
        soundfile.write(src / f"{name}.flac", tone(0.5), SAMPLE_RATE, format="FLAC")
        jobs.append(ConversionJob(src / f"{name}.flac", tmp_path / "out" / f"{name}.wav", "ab"))
    (tmp_path / "out").mkdir()
    batches = [[[(i, job)]] for i, job in enumerate(jobs)]
    config = ImportConfig(workers=2)

    outcomes = [o for b in convert._run_batches(batches, config, crash_on_broken) for o in b]

    by_index = {o.index: o for o in outcomes}
    assert sorted(by_index) == list(range(5))
    assert by_index[3].reason == UNREADABLE_AUDIO and "died" in by_index[3].detail
    assert all(by_index[i].reason is None for i in (0, 1, 2, 4))


def test_summary_text_without_skips() -> None:
    summary = ImportSummary(
        corpus="X",
        out_dir=Path("out"),
        splits={},
        converted=0,
        reused=0,
        skipped={},
        seconds=1.0,
        max_seconds=None,
    )
    assert summary.to_text().splitlines()[-1] == "skipped nothing"


# ---- wrong SRC and the CLI ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "expected"),
    [
        (plan_librispeech, "no LibriSpeech subset found; expected LibriSpeech/<subset>/"),
        (plan_tedlium, "no TED-LIUM split found; expected <split>/sph/<talk>.sph"),
        (plan_commonvoice, "not a Common Voice folder; expected a Common Voice language folder"),
    ],
)
def test_wrong_src_says_what_was_expected(
    tmp_path: Path, plan: Callable[[Path, Path], CorpusPlan], expected: str
) -> None:
    (tmp_path / "src" / "something").mkdir(parents=True)
    with pytest.raises(CorpusError, match=rf"src: {expected}"):
        plan(tmp_path / "src", tmp_path / "out")
    with pytest.raises(CorpusError, match="no such folder"):
        plan(tmp_path / "missing", tmp_path / "out")


@pytest.mark.parametrize(
    ("command", "make", "manifest", "kept"),
    [
        ("librispeech", make_librispeech, "dev-clean.csv", 3),
        ("tedlium", make_tedlium, "dev.csv", 3),
        ("commonvoice", make_commonvoice, "train.csv", 3),
    ],
)
def test_cli_imports(
    tmp_path: Path, command: str, make: Callable[[Path], Path], manifest: str, kept: int
) -> None:
    src = make(tmp_path / "src")
    out = tmp_path / "out"
    args = ["data", command, str(src), str(out), "--max-seconds", "3", "--workers", "1"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert f"kept {kept} utterances" in result.stdout
    assert "unreadable or corrupt audio: 1" in result.stdout
    assert (out / manifest).is_file()
    assert sum(len(read_manifest(path)) for path in out.glob("*.csv")) == kept


def test_cli_rerun_reuses_the_wavs(tmp_path: Path) -> None:
    src = make_librispeech(tmp_path / "src")
    args = ["data", "librispeech", str(src), str(tmp_path / "out"), "--max-seconds", "3"]
    assert run_cli(*args, "--workers", "1").returncode == 0
    again = run_cli(*args, "--workers", "2")
    assert again.returncode == 0, again.stderr
    assert "0 converted, 3 reused" in again.stdout


def test_cli_wrong_src_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    result = run_cli("data", "tedlium", str(tmp_path / "src"), str(tmp_path / "out"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "no TED-LIUM split found" in lines[0]


def test_cli_alphabet_and_no_length_limit(tmp_path: Path) -> None:
    src = make_commonvoice(tmp_path / "src")
    alphabet_file = tmp_path / "alphabet.txt"
    Alphabet((*Alphabet.default().labels, *"0123456789")).to_file(alphabet_file)
    out = tmp_path / "out"
    args = ["--alphabet", str(alphabet_file), "--max-seconds", "0", "--workers", "1"]
    result = run_cli("data", "commonvoice", str(src), str(out), *args)
    assert result.returncode == 0, result.stderr
    kept = transcripts(out / "train.csv")
    assert kept["train/common_voice_en_3.wav"] == "i have 3 cats"  # digits are spellable now
    assert kept["train/common_voice_en_7.wav"] == "a clip that is far too long"  # 4 s, no limit


def test_cli_fails_when_nothing_is_kept(tmp_path: Path) -> None:
    src = make_librispeech(tmp_path / "src") / "LibriSpeech" / "test-clean"
    out = tmp_path / "out"
    result = run_cli("data", "librispeech", str(src), str(out), "--max-seconds", "0.5")
    assert result.returncode == 2
    assert "longer than --max-seconds (0.5 s): 1" in result.stdout
    assert (
        result.stderr.strip().splitlines()[-1]
        == f"error: {out}: no utterance kept; see the reasons above"
    )
