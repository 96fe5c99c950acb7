"""Subtitles from timed words: SubRip (SRT) for video players and editors, WebVTT for browsers.

Words (`WordMetadata`, from any decoder) are cut into cues the way subtitle guidelines ask
(the BBC's and Netflix's: at most two lines of 42 characters, at most 7 seconds on screen):

- a new cue starts at a pause of `pause_seconds` between words, so a cue does not stay on
  screen over silence and each one holds a phrase;
- or when the next word would not fit in `max_lines` lines of `max_line_chars` characters,
  or would make the cue last longer than `max_cue_seconds`;
- a cue's lines are broken at word boundaries and balanced (the longest line as short as
  possible), because two even lines read faster than a full one and a stub;
- a cue runs from its first word's start to its last word's end, and one shorter than
  `min_cue_seconds` is held longer (but never past the next cue's start), so it can be read.

The file formats are written by their libraries rather than by hand, because each has rules a
formatter easily gets wrong: `srt` (SRT's comma decimal separator, 1-based indices, blank-line
rules for cue text) and `webvtt-py` (the `WEBVTT` header and cue block layout; `WebVTT.content`
gives the file as a string). Times are rounded to whole milliseconds once, here, so both
formats say the same times.
"""

from __future__ import annotations

import functools
import html
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

import srt
import webvtt

from deepspeech.config import check_positive, setting
from deepspeech.decoding.transcript import WordMetadata
from deepspeech.errors import ConfigError

SUBTITLE_FORMATS = ("srt", "vtt")
MEDIA_TYPES = {"srt": "application/x-subrip", "vtt": "text/vtt"}


@dataclass(frozen=True)
class SubtitleSettings:
    """How timed words become subtitle cues (see the module docstring)."""

    max_line_chars: int = setting(42, "Longest subtitle line, in characters.")
    max_lines: int = setting(2, "Lines per subtitle cue at most.")
    max_cue_seconds: float = setting(7.0, "Longest time a subtitle cue stays on screen (s).")
    pause_seconds: float = setting(0.5, "A pause between words this long (s) starts a new cue.")
    min_cue_seconds: float = setting(
        1.0, "Shortest time a cue stays on screen (s), unless the next cue starts sooner."
    )

    def __post_init__(self) -> None:
        check_positive(self, "max_line_chars", "max_lines", "max_cue_seconds", "pause_seconds")
        if not 0 <= self.min_cue_seconds <= self.max_cue_seconds:
            raise ConfigError(
                f"min_cue_seconds must be in 0..max_cue_seconds ({self.max_cue_seconds}), "
                f"got {self.min_cue_seconds}"
            )


@dataclass(frozen=True)
class Cue:
    """One subtitle: shown from `start` to `end` (seconds), as `lines`."""

    start: float
    end: float
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def cues(
    words: Sequence[WordMetadata], settings: SubtitleSettings = SubtitleSettings()
) -> list[Cue]:
    """Timed words, in time order -> cues that never overlap, lines within the limits."""
    for before, after in itertools.pairwise(words):
        if after.start_time < before.start_time:
            raise ValueError(
                f"words must be in time order: {after.word!r} at {after.start_time} s "
                f"follows {before.word!r} at {before.start_time} s"
            )
    groups = _group(_fitting_words(words, settings.max_line_chars), settings)
    result = []
    for i, group in enumerate(groups):
        start = max(group[0].start_time, 0.0)  # a timing correction can put a word before 0
        next_start = groups[i + 1][0].start_time if i + 1 < len(groups) else math.inf
        end = min(max(group[-1].end_time, start + settings.min_cue_seconds), next_start)
        texts = [w.word for w in group]
        lines = _balanced_lines(
            tuple(texts), _line_count(texts, settings.max_line_chars), settings.max_line_chars
        )
        result.append(Cue(start, max(end, start), lines))
    return result


def to_srt(words: Sequence[WordMetadata], settings: SubtitleSettings = SubtitleSettings()) -> str:
    """A SubRip file of the words' cues (an empty string for no words: an empty SRT file).

    Cues are numbered here, not by `srt.compose`, whose renumbering drops a cue that rounds to
    zero length (a word of under a millisecond) and with it the cue's words.
    """
    entries = [
        srt.Subtitle(
            index=i, start=_milliseconds(c.start), end=_milliseconds(c.end), content=c.text
        )
        for i, c in enumerate(cues(words, settings), start=1)
    ]
    return srt.compose(entries, reindex=False)


def to_vtt(words: Sequence[WordMetadata], settings: SubtitleSettings = SubtitleSettings()) -> str:
    """A WebVTT file of the words' cues (just the `WEBVTT` header for no words).

    `&` and `<` are escaped, as WebVTT cue text requires (webvtt-py writes text as given).
    """
    captions = [
        webvtt.Caption(
            _vtt_timestamp(c.start),
            _vtt_timestamp(c.end),
            [html.escape(line, quote=False) for line in c.lines],
        )
        for c in cues(words, settings)
    ]
    return webvtt.WebVTT(captions=captions).content


_WRITERS: dict[str, Callable[[Sequence[WordMetadata], SubtitleSettings], str]] = {
    "srt": to_srt,
    "vtt": to_vtt,
}


def subtitles(
    words: Sequence[WordMetadata], fmt: str, settings: SubtitleSettings = SubtitleSettings()
) -> str:
    """The words as a subtitle file in `fmt` ("srt" or "vtt"; MEDIA_TYPES gives its type)."""
    if fmt not in _WRITERS:
        raise ConfigError(
            f"subtitle format {fmt!r} is unknown; use one of {', '.join(SUBTITLE_FORMATS)}"
        )
    return _WRITERS[fmt](words, settings)


def _fitting_words(words: Sequence[WordMetadata], width: int) -> list[WordMetadata]:
    """The non-empty words, each longer than a line split into line-long pieces whose times
    share the word's time in proportion to their length (so no line is ever too long)."""
    result = []
    for word in words:
        text = word.word.strip()
        if len(text) <= width:
            result += [replace(word, word=text)] if text else []
            continue
        seconds_per_char = (word.end_time - word.start_time) / len(text)
        for i in range(0, len(text), width):
            piece = text[i : i + width]
            start = word.start_time + i * seconds_per_char
            result.append(
                replace(
                    word,
                    word=piece,
                    start_time=start,
                    end_time=start + len(piece) * seconds_per_char,
                )
            )
    return result


def _group(words: list[WordMetadata], settings: SubtitleSettings) -> list[list[WordMetadata]]:
    """Words -> the word lists of consecutive cues (the cutting rules of the module docstring)."""
    groups: list[list[WordMetadata]] = []
    for word in words:
        current = groups[-1] if groups else None
        if (
            current is None
            or word.start_time - current[-1].end_time >= settings.pause_seconds
            or word.end_time - current[0].start_time > settings.max_cue_seconds
            or _line_count([w.word for w in current] + [word.word], settings.max_line_chars)
            > settings.max_lines
        ):
            groups.append([word])
        else:
            current.append(word)
    return groups


def _line_count(texts: Sequence[str], width: int) -> int:
    """Lines the words need at `width` characters a line: filling each line greedily uses
    the fewest lines any layout can."""
    lines, used = 1, 0  # characters on the current line
    for text in texts:
        if used == 0:
            used = len(text)
        elif used + 1 + len(text) <= width:
            used += 1 + len(text)
        else:
            lines, used = lines + 1, len(text)
    return lines


def _balanced_lines(texts: tuple[str, ...], n_lines: int, width: int) -> tuple[str, ...]:
    """Words -> `n_lines` lines of at most `width` characters, broken where the longest line
    is shortest (then the lines' lengths are most even; then the top line is the shorter)."""

    @functools.cache
    def best(first: int, lines: int) -> tuple[int, int, tuple[int, ...]] | None:
        """(longest line, sum of squared lengths, line starts) of words[first:] in `lines`."""
        if lines == 1:
            length = len(" ".join(texts[first:]))
            return (length, length * length, (first,)) if length <= width else None
        options = []
        for stop in range(first + 1, len(texts) - lines + 2):
            length = len(" ".join(texts[first:stop]))
            if length > width:
                break
            rest = best(stop, lines - 1)
            if rest is not None:
                options.append((max(length, rest[0]), length * length + rest[1], (first, *rest[2])))
        return min(options) if options else None

    layout = best(0, n_lines)
    assert layout is not None, f"{n_lines} lines cannot hold {texts}; _line_count is wrong"
    bounds = (*layout[2], len(texts))
    return tuple(" ".join(texts[a:b]) for a, b in itertools.pairwise(bounds))


def _milliseconds(seconds: float) -> timedelta:
    """Seconds rounded to whole milliseconds, the precision both formats write."""
    return timedelta(milliseconds=round(seconds * 1000))


def _vtt_timestamp(seconds: float) -> str:
    """HH:MM:SS.mmm, as WebVTT writes a time (hours grow past two digits if need be)."""
    minutes, milliseconds = divmod(round(seconds * 1000), 60_000)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{milliseconds // 1000:02d}.{milliseconds % 1000:03d}"
