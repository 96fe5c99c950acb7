"""deepspeech/decoding/subtitles.py: cues from timed words, written as SRT and WebVTT and read
back with the `srt` and `webvtt-py` parsers."""

from __future__ import annotations

import itertools

import pytest
import srt
import webvtt
from hypothesis import given
from hypothesis import strategies as st

from deepspeech.decoding.subtitles import (
    MEDIA_TYPES,
    SUBTITLE_FORMATS,
    Cue,
    SubtitleSettings,
    cues,
    subtitles,
    to_srt,
    to_vtt,
)
from deepspeech.decoding.transcript import WordMetadata
from deepspeech.errors import ConfigError

SETTINGS = SubtitleSettings()


def spoken(
    text: str, start: float = 0.0, gap: float = 0.1, per_char: float = 0.06
) -> list[WordMetadata]:
    """`text`'s words said one after another from `start`, `gap` seconds apart."""
    words, t = [], start
    for word in text.split():
        words.append(WordMetadata(word, t, t + per_char * len(word), 0.9))
        t += per_char * len(word) + gap
    return words


def srt_cues(text: str) -> list[Cue]:
    return [
        Cue(s.start.total_seconds(), s.end.total_seconds(), tuple(s.content.split("\n")))
        for s in srt.parse(text)
    ]


def vtt_cues(text: str) -> list[Cue]:
    return [
        Cue(
            c.start_time.in_milliseconds() / 1000,
            c.end_time.in_milliseconds() / 1000,
            tuple(c.lines),
        )
        for c in webvtt.from_string(text).captions
    ]


def ms(seconds: float) -> float:
    """Seconds as both formats write them: whole milliseconds."""
    return round(seconds * 1000) / 1000


def assert_well_formed(found: list[Cue], words: list[str], settings: SubtitleSettings) -> None:
    """Every word once and in order; lines within the limits; cues in order, never overlapping."""
    assert " ".join(" ".join(c.lines) for c in found) == " ".join(words)
    for cue in found:
        assert 1 <= len(cue.lines) <= settings.max_lines
        assert all(0 < len(line) <= settings.max_line_chars for line in cue.lines)
        assert cue.start <= cue.end
    for a, b in itertools.pairwise(found):
        assert a.end <= b.start


def test_a_pause_between_words_starts_a_new_cue_and_both_formats_say_so() -> None:
    words = spoken("we should clean seven big pens") + spoken("i could open two plates", start=3.0)
    assert words[6].start_time - words[5].end_time >= SETTINGS.pause_seconds
    for parse, text in ((srt_cues, to_srt(words)), (vtt_cues, to_vtt(words))):
        found = parse(text)
        assert [c.lines for c in found] == [
            ("we should clean seven big pens",),
            ("i could open two plates",),
        ]
        assert [(c.start, c.end) for c in found] == [
            (0.0, ms(words[5].end_time)),
            (3.0, ms(words[-1].end_time)),
        ]


def test_long_speech_is_cut_into_cues_of_balanced_lines_within_the_limits() -> None:
    text = (
        "the quick brown fox jumps over the lazy dog while the five boxing wizards jump "
        "quickly and a wizard's job is to vex chumps quickly in fog"
    )
    words = spoken(text, per_char=0.03)
    found = vtt_cues(to_vtt(words))
    assert_well_formed(found, text.split(), SETTINGS)
    assert len(found) >= 2 and max(len(c.lines) for c in found) == 2
    for cue in found:  # no other break point gives a shorter longest line
        if len(cue.lines) == 2:
            texts = " ".join(cue.lines).split()
            best = min(
                max(len(" ".join(texts[:i])), len(" ".join(texts[i:])))
                for i in range(1, len(texts))
            )
            assert max(map(len, cue.lines)) == best


def test_a_cue_stays_on_screen_at_most_max_cue_seconds() -> None:
    text = "one two three four five six seven eight nine ten"
    words = spoken(text, gap=0.3, per_char=0.3)
    found = cues(words)
    assert len(found) > 1
    assert all(c.end - c.start <= SETTINGS.max_cue_seconds for c in found)
    assert_well_formed(found, text.split(), SETTINGS)


def test_a_short_cue_is_held_for_min_seconds_but_not_over_the_next() -> None:
    words = [
        WordMetadata("yes", 1.0, 1.2, 0.9),
        WordMetadata("no", 1.8, 2.0, 0.9),  # 0.6 s later: a new cue, before 1 s is up
        WordMetadata("maybe", 5.0, 5.3, 0.9),
    ]
    found = srt_cues(to_srt(words))
    assert [(c.start, c.end) for c in found] == [(1.0, 1.8), (1.8, 2.8), (5.0, 6.0)]


def test_a_word_longer_than_a_line_is_split_across_lines() -> None:
    settings = SubtitleSettings(max_line_chars=10)
    found = cues([WordMetadata("a" * 25, 0.0, 2.5, 0.5)], settings)
    assert [c.lines for c in found] == [("a" * 10, "a" * 10), ("a" * 5,)]
    assert [(c.start, c.end) for c in found] == [(0.0, 2.0), (2.0, 3.0)]


def test_no_words_give_valid_empty_files() -> None:
    assert cues([]) == []
    assert to_srt([]) == "" and list(srt.parse(to_srt([]))) == []
    vtt = to_vtt([])
    assert vtt.startswith("WEBVTT") and webvtt.from_string(vtt).captions == []


def test_formats_media_types_and_an_unknown_format() -> None:
    words = spoken("hello there")
    assert set(MEDIA_TYPES) == set(SUBTITLE_FORMATS)
    assert subtitles(words, "srt") == to_srt(words)
    assert subtitles(words, "vtt") == to_vtt(words)
    with pytest.raises(ConfigError, match="subtitle format 'ass' is unknown; use one of srt, vtt"):
        subtitles(words, "ass")


def test_webvtt_text_is_escaped() -> None:
    vtt = to_vtt([WordMetadata("r&b", 0.0, 0.5, 1.0), WordMetadata("<3", 0.6, 0.9, 1.0)])
    assert "r&amp;b &lt;3" in vtt


def test_times_before_zero_and_words_out_of_order() -> None:
    assert cues([WordMetadata("hi", -0.02, 0.3, 1.0)])[0].start == 0.0
    with pytest.raises(ValueError, match=r"words must be in time order: 'a' at 1\.0 s follows 'b'"):
        cues([WordMetadata("b", 2.0, 2.5, 1.0), WordMetadata("a", 1.0, 1.5, 1.0)])


def test_settings_out_of_range_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="max_line_chars must be positive"):
        SubtitleSettings(max_line_chars=0)
    with pytest.raises(ConfigError, match=r"min_cue_seconds must be in 0\.\.max_cue_seconds"):
        SubtitleSettings(min_cue_seconds=8.0)


word_lists = st.lists(
    st.tuples(
        st.text(alphabet="abcdefghij'", min_size=1, max_size=50),
        st.floats(0.0, 1.5),  # gap before the word
        st.floats(0.0, 2.0),  # its duration
    ),
    max_size=40,
)


@given(word_lists, st.integers(5, 42), st.integers(1, 3))
def test_any_words_give_well_formed_cues(
    spec: list[tuple[str, float, float]], width: int, max_lines: int
) -> None:
    words, t = [], 0.0
    for text, gap, duration in spec:
        words.append(WordMetadata(text, t + gap, t + gap + duration, 1.0))
        t += gap + duration
    settings = SubtitleSettings(max_line_chars=width, max_lines=max_lines)
    found = cues(words, settings)
    pieces = [text[i : i + width] for text, _, _ in spec for i in range(0, len(text), width)]
    assert_well_formed(found, pieces, settings)
    assert srt_cues(to_srt(words, settings)) == [
        Cue(ms(c.start), ms(c.end), c.lines) for c in found
    ]
    assert vtt_cues(to_vtt(words, settings)) == [
        Cue(ms(c.start), ms(c.end), c.lines) for c in found
    ]
