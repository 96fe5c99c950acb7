"""Manifest reading, validation and writing on real files."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepspeech.data.manifest import (
    MANIFEST_HEADER,
    Utterance,
    parse_manifest_list,
    read_manifest,
    read_manifests,
    write_manifest,
)
from deepspeech.errors import ManifestError
from deepspeech.text import Alphabet

WORDS = ("one", "two", "three", "four")


def _make_corpus(root: Path, n: int = 3) -> Path:
    wav_dir = root / "wav"
    wav_dir.mkdir(parents=True)
    rows = []
    for i in range(n):
        wav = wav_dir / f"{i}.wav"
        wav.write_bytes(b"RIFF" + bytes(40 + i))
        rows.append(Utterance(wav, wav.stat().st_size, f"utterance number {WORDS[i]}"))
    csv_path = root / "train.csv"
    write_manifest(csv_path, rows)
    return csv_path


def _write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_write_then_read_round_trip_with_relative_paths(tmp_path: Path) -> None:
    csv_path = _make_corpus(tmp_path)
    text = csv_path.read_text().splitlines()
    assert text[0] == ",".join(MANIFEST_HEADER)
    assert text[1].startswith("wav/0.wav,")
    rows = read_manifest(csv_path)
    assert [r.transcript for r in rows] == [f"utterance number {w}" for w in WORDS[:3]]
    assert all(r.wav_path.is_absolute() and r.wav_path.exists() for r in rows)


def test_corpus_folder_can_be_moved(tmp_path: Path) -> None:
    csv_path = _make_corpus(tmp_path / "a")
    (tmp_path / "a").rename(tmp_path / "b")
    rows = read_manifest(tmp_path / "b" / csv_path.name)
    assert rows[0].wav_path == (tmp_path / "b" / "wav" / "0.wav").resolve()


def test_several_manifests_comma_separated(tmp_path: Path) -> None:
    a = _make_corpus(tmp_path / "a", 2)
    b = _make_corpus(tmp_path / "b", 3)
    rows = read_manifests(f"{a}, {b}")
    assert len(rows) == 5
    assert parse_manifest_list([a, b]) == [a, b]


@pytest.mark.parametrize(
    ("lines", "fragment"),
    [
        (["wav,size,text", "wav/0.wav,44,hello"], ":1: header is"),
        (["wav_filename,wav_filesize,transcript", "wav/0.wav,44"], ":2: expected 3 fields"),
        (["wav_filename,wav_filesize,transcript", "wav/0.wav,big,hi"], ":2: wav_filesize 'big'"),
        (["wav_filename,wav_filesize,transcript", "wav/0.wav,44,  "], ":2: empty transcript"),
        (["wav_filename,wav_filesize,transcript", "wav/0.wav,44,héllo"], ":2: transcript 'héllo'"),
        (["wav_filename,wav_filesize,transcript", "wav/9.wav,44,hi"], ":2: audio file"),
        (
            ["wav_filename,wav_filesize,transcript", "wav/0.wav,45,hi"],
            "is 44 bytes, manifest says 45",
        ),
        (["wav_filename,wav_filesize,transcript"], "no rows"),
    ],
)
def test_bad_manifests_name_file_and_line(tmp_path: Path, lines: list[str], fragment: str) -> None:
    (tmp_path / "wav").mkdir()
    (tmp_path / "wav" / "0.wav").write_bytes(bytes(44))
    csv_path = _write_csv(tmp_path / "bad.csv", lines)
    with pytest.raises(ManifestError) as e:
        read_manifest(csv_path)
    assert str(csv_path) in str(e.value)
    assert fragment in str(e.value)


def test_error_names_the_right_line_after_good_rows(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(bytes(10))
    lines = ["wav_filename,wav_filesize,transcript"] + ["a.wav,10,fine"] * 4 + ["a.wav,10,BAD!"]
    csv_path = _write_csv(tmp_path / "m.csv", lines)
    with pytest.raises(ManifestError, match=r"m\.csv:6: .*'B'"):
        read_manifest(csv_path)


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path / "nope.csv")


def test_custom_alphabet_accepts_its_characters(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(bytes(10))
    csv_path = _write_csv(
        tmp_path / "m.csv", ["wav_filename,wav_filesize,transcript", "a.wav,10,abc 123"]
    )
    alphabet_file = tmp_path / "alphabet.txt"
    alphabet_file.write_text("\n".join([" ", "a", "b", "c", "1", "2", "3"]) + "\n")
    rows = read_manifest(csv_path, Alphabet.from_file(alphabet_file))
    assert rows[0].transcript == "abc 123"


def test_transcripts_with_commas_survive_a_round_trip(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(bytes(10))
    alphabet_file = tmp_path / "alphabet.txt"
    alphabet_file.write_text("\n".join([" ", "a", ",", '"']) + "\n")
    write_manifest(tmp_path / "m.csv", [Utterance(tmp_path / "a.wav", 10, 'a, "a"')])
    rows = read_manifest(tmp_path / "m.csv", Alphabet.from_file(alphabet_file))
    assert rows[0].transcript == 'a, "a"'


def test_validates_a_100k_row_manifest(tmp_path: Path) -> None:
    wav_dir = tmp_path / "wav"
    wav_dir.mkdir()
    n_files = 1000
    for i in range(n_files):
        (wav_dir / f"{i}.wav").write_bytes(bytes(10))
    lines = ["wav_filename,wav_filesize,transcript"] + [
        f"wav/{i % n_files}.wav,10,the quick brown fox jumps over the lazy dog"
        for i in range(100_000)
    ]
    csv_path = _write_csv(tmp_path / "big.csv", lines)
    rows = read_manifest(csv_path)
    assert len(rows) == 100_000
    assert rows[-1].wav_path.name == f"{(100_000 - 1) % n_files}.wav"


VALID_MANIFEST = b"wav_filename,wav_filesize,transcript\nwav/0.wav,44,hello\n"


@settings(max_examples=300, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.builds(  # a valid manifest with some of its bytes replaced or cut short
            lambda cut, at, junk: (VALID_MANIFEST[:at] + junk + VALID_MANIFEST[at:])[:cut],
            st.integers(0, len(VALID_MANIFEST) + 40),
            st.integers(0, len(VALID_MANIFEST)),
            st.binary(max_size=8) | st.sampled_from([b"\0", b"\xff", b'"', b"\r", b",,", b"\n"]),
        ),
    )
)
def test_any_bytes_read_as_rows_or_one_manifest_error(tmp_path_factory, data: bytes) -> None:
    """Whatever bytes a manifest holds, reading it returns rows or raises ManifestError naming
    the file: never a UnicodeDecodeError, csv.Error or other traceback."""
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "wav").mkdir()
    (folder / "wav" / "0.wav").write_bytes(bytes(44))
    csv_path = folder / "m.csv"
    csv_path.write_bytes(data)
    try:
        rows = read_manifest(csv_path)
    except ManifestError as e:
        assert str(csv_path) in str(e)
    else:
        assert rows and all(r.wav_path.is_file() and r.transcript.strip() for r in rows)


def test_a_huge_field_is_a_manifest_error(tmp_path: Path) -> None:
    csv_path = tmp_path / "m.csv"
    csv_path.write_text("wav_filename,wav_filesize,transcript\na.wav,1," + "a" * 200_000 + "\n")
    with pytest.raises(ManifestError, match=r"m\.csv:2: "):
        read_manifest(csv_path)


def test_a_non_utf8_byte_is_named_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(bytes(10))
    rows = ["wav_filename,wav_filesize,transcript"] + ["a.wav,10,fine"] * 2000
    csv_path = tmp_path / "m.csv"
    text = "\n".join(rows).encode() + b"\na.wav,10,caf\xe9\n"  # Latin-1, past the first block
    csv_path.write_bytes(text)
    with pytest.raises(ManifestError, match=r"m\.csv:2002: byte b'\\xe9' is not UTF-8"):
        read_manifest(csv_path)
