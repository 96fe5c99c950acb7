"""Tests for deepspeech/stm.py: NIST STM parsing as TED-LIUM ships it."""

from pathlib import Path

import pytest

from deepspeech.errors import DeepSpeechError, STMFormatError
from deepspeech.stm import STMSegment, parse_stm_file

TEDLIUM_STM = """\
;; CATEGORY "0" "" ""
;; LABEL "O" "Overall" "Overall"
;; LABEL "F0" "f0" "Wideband"
AlGore_2009 1 AlGore_2009 0.0 17.82 <o,f0,male> ignore_time_segment_in_scoring
AlGore_2009 1 AlGore_2009 17.82 28.81 <o,f0,male> last year i showed these two slides so that

AlGore_2009 1 AlGore_2009 28.81 36.19 <o,f0,male> demonstrate   that the arctic ice cap
AlGore_2009 1 AlGore_2009 36.19 36.19 <o,f0,male>
AlGore_2009 1 AlGore_2009 36.19 40.5 it 's {NOISE} gone
"""


def write(tmp_path: Path, content: str | bytes, name: str = "talk.stm") -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def test_parse_tedlium_snippet(tmp_path: Path) -> None:
    segments = parse_stm_file(write(tmp_path, TEDLIUM_STM))
    assert len(segments) == 5
    first = segments[0]
    assert first == STMSegment(
        filename="AlGore_2009",
        channel="1",
        speaker_id="AlGore_2009",
        start_time=0.0,
        stop_time=17.82,
        transcript="ignore_time_segment_in_scoring",
        label="o,f0,male",
    )
    assert first.ignore_in_scoring
    assert segments[1].transcript == "last year i showed these two slides so that"
    assert not segments[1].ignore_in_scoring
    assert segments[2].transcript == "demonstrate that the arctic ice cap"
    assert segments[2].start_time == 28.81
    assert segments[2].stop_time == 36.19
    assert segments[3].transcript == ""  # empty transcript, zero-length segment
    assert segments[4].label is None
    assert segments[4].transcript == "it 's {NOISE} gone"


def test_segments_are_frozen() -> None:
    segment = STMSegment.from_line("a 1 s 0 1 hi")
    with pytest.raises(AttributeError):
        segment.transcript = "x"  # type: ignore[misc]


def test_comments_and_blank_lines_only(tmp_path: Path) -> None:
    assert parse_stm_file(write(tmp_path, ";; nothing here\n\n   \n")) == []


def test_latin1_file_falls_back(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, "talk 1 spk 0.5 1.5 <o,f0,female> caf\xe9 ol\xe9\n".encode("latin-1"))
    [segment] = parse_stm_file(path)
    assert segment.transcript == "café olé"
    assert "latin-1" in caplog.text


def test_utf8_file(tmp_path: Path) -> None:
    [segment] = parse_stm_file(write(tmp_path, "talk 1 spk 0 1 naïve café\n"))
    assert segment.transcript == "naïve café"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("AlGore_2009 1 AlGore_2009 17.82", "4 fields, expected at least 5"),
        ("AlGore_2009", "1 fields, expected at least 5"),
        ("AlGore_2009 1 AlGore_2009 abc 28.81 <o,f0,male> hi", "start time 'abc' is not a number"),
        ("AlGore_2009 1 AlGore_2009 17.82 2x <o,f0,male> hi", "stop time '2x' is not a number"),
        ("AlGore_2009 1 AlGore_2009 28.81 17.82 <o,f0,male> hi", "stop time 17.82 is before"),
        ("AlGore_2009 1 AlGore_2009 -1 17.82 hi", "start time '-1' must be a finite, non-negative"),
        ("AlGore_2009 1 AlGore_2009 0 nan hi", "stop time 'nan' must be a finite"),
        ("AlGore_2009 1 AlGore_2009 0 inf hi", "stop time 'inf' must be a finite"),
        ("AlGore_2009 1 AlGore_2009 0 1 <o,f0,male hi there", "'<o,f0,male' opens with '<'"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path, f";; header\n\n{line}\nAlGore_2009 1 AlGore_2009 0 1 fine\n")
    with pytest.raises(STMFormatError, match=message) as info:
        parse_stm_file(path)
    assert f"{path}:3:" in str(info.value)
    assert isinstance(info.value, DeepSpeechError)


def test_from_line_locates_errors() -> None:
    with pytest.raises(STMFormatError, match=r"^x\.stm:7: "):
        STMSegment.from_line("a 1 s 0", path="x.stm", lineno=7)
