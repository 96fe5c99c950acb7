"""Tests for deepspeech/corpus/recordings.py and `deepspeech data import`.

Recordings are made in real formats (WAV at 44.1 kHz stereo, FLAC at 8 kHz, OGG Vorbis, MP3)
beside the broken inputs a user's folder holds (a corrupt file, a missing transcript, digits,
another script), in both layouts: a `.txt` beside each file, and a CSV/TSV table.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile
from test_corpus_importers import assert_training_wav, run_cli, tone, transcripts, wav_mtimes

from deepspeech.corpus.convert import (
    MISSING_AUDIO,
    UNREADABLE_AUDIO,
    UNSPELLABLE,
    CorpusPlan,
    ImportConfig,
    convert_corpus,
)
from deepspeech.corpus.recordings import (
    DUPLICATE,
    NO_PATH,
    NO_SPEAKER,
    NO_TRANSCRIPT,
    SplitConfig,
    parse_ratios,
    plan_recordings,
    speaker_of,
    split_groups,
)
from deepspeech.data.manifest import read_manifest
from deepspeech.errors import ConfigError, CorpusError

CONFIG = ImportConfig(max_seconds=5.0, workers=1)  # spawning a pool costs seconds
ALL_TRAIN = SplitConfig(ratios=(1.0, 0.0, 0.0))


def write_recording(path: Path, seconds: float, rate: int, channels: int = 1, **kw: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, tone(seconds, rate=rate, channels=channels), rate, **kw)


def make_folder(root: Path) -> Path:
    """Three speakers' folders: four good recordings, four to skip, and files to ignore."""
    write_recording(root / "alice/001.wav", 1.5, 44100, channels=2, subtype="PCM_16")
    write_recording(root / "alice/002.flac", 1.0, 8000, format="FLAC")
    write_recording(root / "bob/001.ogg", 1.2, 22050, format="OGG", subtype="VORBIS")
    write_recording(root / "bob/002.mp3", 1.2, 48000, channels=2, format="MP3")
    write_recording(root / "bob/003.wav", 1.0, 16000)
    write_recording(root / "carol/001.wav", 1.0, 16000)
    write_recording(root / "carol/003.flac", 1.0, 16000, format="FLAC")  # no .txt
    (root / "carol/002.wav").write_bytes(np.random.default_rng(1).bytes(4000))  # corrupt
    texts = {
        "alice/001": "Hello, World!",
        "alice/002": "IT'S A TEST.\n",
        "bob/001": "Héllo   again —\nfriends",
        "bob/002": "An MP-three file",
        "bob/003": "I have 3 cats",
        "carol/001": "Привет мир",
        "carol/002": "corrupt audio",
    }
    for stem, text in texts.items():
        (root / f"{stem}.txt").write_text(text, encoding="utf-8")
    (root / "README.txt").write_text("not a transcript")
    (root / "cover.jpg").write_bytes(b"\xff\xd8 not audio")
    (root / "alice/._001.wav").write_bytes(b"macOS shadow file")
    return root


KEPT = {
    "wav/alice/001.wav": "hello world",
    "wav/alice/002.wav": "it's a test",
    "wav/bob/001.wav": "hello again friends",
    "wav/bob/002.wav": "an mp three file",
}


def skip_counts(summary_or_plan: object) -> dict[str, int]:
    return {reason: t.count for reason, t in summary_or_plan.skipped.items()}  # type: ignore[attr-defined]


def split_names(plan: CorpusPlan) -> dict[str, set[str]]:
    """Split -> the sources' paths (relative to their speaker folder's parent) in it."""
    return {
        split: {f"{job.source.parent.name}/{job.source.name}" for job in jobs}
        for split, jobs in plan.splits.items()
    }


# ---- the folder layout, end to end --------------------------------------------------------


def test_folder_of_recordings_end_to_end(tmp_path: Path) -> None:
    src = make_folder(tmp_path / "src")
    out = tmp_path / "out"
    summary = convert_corpus(plan_recordings(src, out, ALL_TRAIN), CONFIG)

    assert summary.manifests == {"train": out / "train.csv"}
    assert transcripts(out / "train.csv") == KEPT
    assert_training_wav(out / "wav/alice/001.wav", seconds=1.5)  # 44.1 kHz stereo
    assert_training_wav(out / "wav/alice/002.wav", seconds=1.0)  # 8 kHz FLAC
    for name in ("bob/001.wav", "bob/002.wav"):  # OGG and MP3: encoders pad a little
        assert_training_wav(out / "wav" / name)
        seconds = soundfile.info(out / "wav" / name).duration
        assert seconds == pytest.approx(1.2, abs=0.1)
    assert len(read_manifest(out / "train.csv")) == 4  # what `data check` and training accept

    assert skip_counts(summary) == {NO_TRANSCRIPT: 1, UNSPELLABLE: 2, UNREADABLE_AUDIO: 1}
    assert summary.skipped[NO_TRANSCRIPT].examples == ["carol/003.flac"]
    assert summary.skipped[UNREADABLE_AUDIO].examples == ["002.wav"]
    assert summary.skipped[UNSPELLABLE].examples == ["003.wav ('3')", "001.wav ('Пвеимрт')"]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav")) == sorted(KEPT)
    assert not list(out.rglob("*.tmp"))  # nothing half-written for the corrupt file
    text = summary.to_text()
    assert text.startswith("recordings: kept 4 utterances")
    assert "no transcript (.txt of the same name beside it): 1, e.g. carol/003.flac" in text


def test_rerun_reuses_wavs_even_with_another_split(tmp_path: Path) -> None:
    src = make_folder(tmp_path / "src")
    out = src / "imported"  # OUT inside SRC: its WAVs must not be read back as recordings
    convert_corpus(plan_recordings(src, out, ALL_TRAIN), CONFIG)
    mtimes = wav_mtimes(out)
    manifest = (out / "train.csv").read_bytes()

    again = convert_corpus(plan_recordings(src, out, ALL_TRAIN), CONFIG)
    assert (again.kept, again.converted, again.reused) == (4, 0, 4)
    assert (out / "train.csv").read_bytes() == manifest
    assert skip_counts(again) == {NO_TRANSCRIPT: 1, UNSPELLABLE: 2, UNREADABLE_AUDIO: 1}

    resplit = convert_corpus(plan_recordings(src, out, SplitConfig((0.5, 0.5, 0.0))), CONFIG)
    assert (resplit.converted, resplit.reused) == (0, 4)
    assert wav_mtimes(out) == mtimes
    assert resplit.splits["train"].utterances + resplit.splits["dev"].utterances == 4
    assert not (out / "test.csv").exists()


def test_duplicate_names_are_skipped(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_recording(src / "a.mp3", 0.5, 16000, format="MP3")
    write_recording(src / "a.wav", 0.5, 16000)
    (src / "a.txt").write_text("one recording in two formats")
    plan = plan_recordings(src, tmp_path / "out", ALL_TRAIN)
    assert [job.source.name for job in plan.splits["train"]] == ["a.mp3"]
    assert plan.skipped[DUPLICATE].examples == ["a.wav"]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda src: src.mkdir(), "no audio file found; expected a folder of audio files"),
        (lambda src: None, "no such file or folder"),
    ],
)
def test_folder_without_recordings_says_what_was_expected(
    tmp_path: Path, make: object, expected: str
) -> None:
    src = tmp_path / "src"
    make(src)  # type: ignore[operator]
    with pytest.raises(CorpusError, match=rf"src: {expected}"):
        plan_recordings(src, tmp_path / "out")


def test_folder_without_transcripts_points_at_its_table(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_recording(src / "clips/a.wav", 0.5, 16000)
    (src / "metadata.csv").write_text("path,text\nclips/a.wav,hello\n")
    with pytest.raises(CorpusError, match=r"none of its 1 audio files has a \.txt.*give it as "):
        plan_recordings(src, tmp_path / "out")


# ---- the table layout ---------------------------------------------------------------------


def make_table_corpus(root: Path) -> tuple[Path, Path]:
    """Clips beside and outside the table's folder; returns (the table folder, elsewhere)."""
    folder = root / "corpus"
    outside = root / "elsewhere"
    write_recording(folder / "clips/a.flac", 1.0, 8000, format="FLAC")
    write_recording(folder / "clips/b.wav", 1.0, 44100, channels=2)
    write_recording(outside / "c.ogg", 1.0, 22050, format="OGG", subtype="VORBIS")
    write_recording(folder / "clips/d.wav", 1.0, 16000)
    return folder, outside


def test_csv_table_end_to_end(tmp_path: Path) -> None:
    folder, outside = make_table_corpus(tmp_path)
    table = folder / "list.csv"
    table.write_text(
        "\ufeffFile,Speaker,Transcript\n"  # Excel's BOM, capitalised names, an extra column
        'clips/a.flac,ann,"Hello, there!"\n'
        f"{outside / 'c.ogg'},cem,Absolute PATH\n"
        "../elsewhere/c.ogg,cem,the same file again\n"
        "clips/missing.wav,ann,never recorded\n"
        ",ann,no path\n"
        "\n"
        'clips/b.wav,bo,"He said ""hi""."\n'
        "clips/d.wav,di,4 digits\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    summary = convert_corpus(plan_recordings(table, out, ALL_TRAIN), CONFIG)

    assert transcripts(out / "train.csv") == {  # WAV paths below the common folder
        "wav/corpus/clips/a.wav": "hello there",
        "wav/corpus/clips/b.wav": "he said hi",
        "wav/elsewhere/c.wav": "absolute path",
    }
    for wav in out.rglob("*.wav"):
        assert_training_wav(wav)
    assert skip_counts(summary) == {MISSING_AUDIO: 1, NO_PATH: 1, DUPLICATE: 1, UNSPELLABLE: 1}
    assert summary.skipped[MISSING_AUDIO].examples == ["clips/missing.wav"]
    assert summary.skipped[NO_PATH].examples == ["list.csv line 6"]
    assert summary.skipped[DUPLICATE].examples == ["../elsewhere/c.ogg"]


def test_tsv_table(tmp_path: Path) -> None:
    folder, _ = make_table_corpus(tmp_path)
    table = folder / "list.tsv"
    table.write_text(
        'path\tsentence\nclips/a.flac\tShe said "yes\nclips/b.wav\tTabs, commas; fine\n',
        encoding="utf-8",
    )
    out = tmp_path / "out"
    convert_corpus(plan_recordings(table, out, ALL_TRAIN), CONFIG)
    assert transcripts(out / "train.csv") == {  # a bare quote is text, not CSV quoting
        "wav/clips/a.wav": "she said yes",
        "wav/clips/b.wav": "tabs commas fine",
    }


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("a.wav,hello world\n", r"no path column in the header \['a.wav', 'hello world'\]"),
        ("path,speaker\na.wav,ann\n", r"no transcript column in the header \['path', 'speaker'\]"),
        ("", r"no path column in the header \[\]"),
        ("path,text\n", "the table has a header but no rows"),
        ("path,text\nnone.wav,hi\ngone.wav,ho\n", "none of the 2 files it names exists"),
    ],
)
def test_unusable_table_is_a_corpus_error(tmp_path: Path, content: str, expected: str) -> None:
    table = tmp_path / "list.csv"
    table.write_text(content)
    with pytest.raises(CorpusError, match=rf"list\.csv: {expected}"):
        plan_recordings(table, tmp_path / "out")


def test_table_not_utf8_is_a_corpus_error(tmp_path: Path) -> None:
    table = tmp_path / "list.csv"
    table.write_bytes("path,text\na.wav,caf\xe9\n".encode("latin-1"))
    with pytest.raises(CorpusError, match="not UTF-8 text"):
        plan_recordings(table, tmp_path / "out")


# ---- splitting ----------------------------------------------------------------------------


def make_speakers(root: Path, speakers: int, files: int) -> Path:
    """`root/spk<i>/<j>.wav` with transcripts. Planning never reads audio: the files are empty."""
    for i in range(speakers):
        for j in range(files):
            path = root / f"spk{i:02d}" / f"{j}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            path.with_suffix(".txt").write_text("words")
    return root


@pytest.mark.parametrize("pattern", [r"^([^/]+)/", r"^spk\d+", r"(spk\d+)/\d+\.wav$"])
def test_speakers_never_span_two_splits(tmp_path: Path, pattern: str) -> None:
    src = make_speakers(tmp_path / "src", speakers=20, files=5)
    split = SplitConfig(ratios=(0.6, 0.2, 0.2), seed=3, speaker_pattern=pattern)
    plan = plan_recordings(src, tmp_path / "out", split)

    speakers = {s: {name.split("/")[0] for name in names} for s, names in split_names(plan).items()}
    assert not speakers["train"] & speakers["dev"]
    assert not speakers["train"] & speakers["test"]
    assert not speakers["dev"] & speakers["test"]
    counts = {s: len(jobs) for s, jobs in plan.splits.items()}
    assert counts == {"train": 60, "dev": 20, "test": 20}  # whole speakers of 5 files
    assert plan_recordings(src, tmp_path / "out", split).splits == plan.splits  # deterministic


def test_split_by_file_follows_the_ratios_and_the_seed(tmp_path: Path) -> None:
    src = make_speakers(tmp_path / "src", speakers=10, files=10)
    plans = {
        seed: plan_recordings(src, tmp_path / "out", SplitConfig(seed=seed)) for seed in (0, 1)
    }
    for plan in plans.values():
        assert {s: len(jobs) for s, jobs in plan.splits.items()} == {
            "train": 80,
            "dev": 10,
            "test": 10,
        }
        for jobs in plan.splits.values():  # manifest order: by path
            assert jobs == sorted(jobs, key=lambda job: job.wav_path)
    assert split_names(plans[0]) != split_names(plans[1])
    again = plan_recordings(src, tmp_path / "out", SplitConfig(seed=0))
    assert split_names(again) == split_names(plans[0])


def test_split_with_uneven_speakers_is_approximate() -> None:
    sizes = {f"s{i}": 1 + (i * 7) % 13 for i in range(40)}  # 1..13 files per speaker
    total = sum(sizes.values())
    assignment = split_groups(sizes, SplitConfig(ratios=(0.8, 0.1, 0.1), seed=5))
    for split, ratio in zip(("train", "dev", "test"), (0.8, 0.1, 0.1), strict=True):
        files = sum(n for key, n in sizes.items() if assignment[key] == split)
        assert abs(files - ratio * total) <= 13  # off by at most about one speaker


def test_adding_a_file_moves_few_others() -> None:
    sizes = {f"f{i}": 1 for i in range(200)}
    before = split_groups(sizes, SplitConfig())
    after = split_groups({**sizes, "new": 1}, SplitConfig())
    moved = [key for key in sizes if before[key] != after[key]]
    assert len(moved) <= 2


def test_paths_the_speaker_pattern_misses_are_skipped(tmp_path: Path) -> None:
    src = make_speakers(tmp_path / "src", speakers=2, files=2)
    (src / "loose.wav").touch()
    (src / "loose.txt").write_text("words")
    plan = plan_recordings(src, tmp_path / "out", SplitConfig(speaker_pattern=r"^spk\d+/"))
    assert plan.total == 4
    assert plan.skipped[NO_SPEAKER].examples == ["loose.wav"]
    with pytest.raises(ConfigError, match=r"--speaker-pattern '\^x' matches none of the 5"):
        plan_recordings(src, tmp_path / "out", SplitConfig(speaker_pattern="^x"))


def test_speaker_of() -> None:
    assert speaker_of("alice/001.wav", re.compile(r"^([^/]+)/")) == "alice"
    assert speaker_of("alice_001.wav", re.compile(r"^[a-z]+")) == "alice"
    assert speaker_of("001.wav", re.compile(r"^([a-z]+)_")) is None
    assert speaker_of("001.wav", re.compile(r"^(x)?\d")) is None  # its group took no part


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.8,0.1,0.1", (0.8, 0.1, 0.1)), ("0.9, 0.1", (0.9, 0.1, 0.0)), ("1", (1.0, 0.0, 0.0))],
)
def test_parse_ratios(text: str, expected: tuple[float, float, float]) -> None:
    assert parse_ratios(text) == expected


@pytest.mark.parametrize("text", ["", "a,b", "0.5,0.2,0.2,0.1", "0.8;0.2"])
def test_parse_ratios_rejects_malformed_lists(text: str) -> None:
    with pytest.raises(ConfigError, match="--split: expected up to 3 comma-separated"):
        parse_ratios(text)


def test_split_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match=r"add up to 1, got 0\.9"):
        SplitConfig(ratios=(0.8, 0.1, 0.0))
    with pytest.raises(ConfigError, match="fractions >= 0"):
        SplitConfig(ratios=(1.2, -0.2, 0.0))
    with pytest.raises(ConfigError, match="not a regular expression"):
        SplitConfig(speaker_pattern="(unclosed")


# ---- the CLI ------------------------------------------------------------------------------


def test_cli_imports_a_folder_by_speaker_and_the_manifests_check(tmp_path: Path) -> None:
    src = make_folder(tmp_path / "src")
    for name in ("dave", "erin"):
        write_recording(src / name / "001.wav", 1.0, 16000)
        (src / name / "001.txt").write_text(f"this is {name}")
    out = tmp_path / "out"
    args = ["--split", "0.5,0.25,0.25", "--speaker-pattern", "^[^/]+", "--workers", "1"]
    result = run_cli("data", "import", str(src), str(out), *args)
    assert result.returncode == 0, result.stderr
    assert "recordings: kept 6 utterances" in result.stdout
    assert "unreadable or corrupt audio: 1" in result.stdout
    assert "no transcript (.txt of the same name beside it): 1" in result.stdout

    manifests = sorted(out.glob("*.csv"))
    speakers = [{Path(w).parts[1] for w in transcripts(m)} for m in manifests]
    assert sum(len(s) for s in speakers) == len(set().union(*speakers))  # none in two splits
    check = run_cli("data", "check", ",".join(map(str, manifests)))
    assert check.returncode == 0, check.stderr
    assert check.stdout.count(", ok") == len(manifests)


def test_cli_bad_table_and_bad_split_are_one_line_errors(tmp_path: Path) -> None:
    table = tmp_path / "list.csv"
    table.write_text("a.wav,hello\n")
    for args, expected in [
        ([str(table), str(tmp_path / "out")], "no path column in the header"),
        ([str(tmp_path), str(tmp_path / "out"), "--split", "0.8,0.3"], "add up to 1"),
    ]:
        result = run_cli("data", "import", *args)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("error: ") and expected in lines[0]
