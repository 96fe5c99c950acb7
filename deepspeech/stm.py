"""NIST STM transcript parsing, for corpora such as TED-LIUM that ship their transcripts as STM.

An STM line is `filename channel speaker start stop [<label>] transcript...`: one segment of a
recording with its time span in seconds. Importers cut the recordings at these times, so a
malformed line is reported with its file and line number rather than skipped.
"""

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from deepspeech.errors import STMFormatError

logger = logging.getLogger(__name__)

COMMENT_PREFIX = ";;"  # NIST STM comment and header lines (";; CATEGORY ...")
IGNORE_TIME_SEGMENT = "ignore_time_segment_in_scoring"  # transcript of segments not to score
N_FIXED_FIELDS = 5  # filename channel speaker start stop


@dataclass(frozen=True)
class STMSegment:
    """One transcribed span of a recording; times in seconds from the start of the file.

    `label` is the text inside the optional `<...>` field without the brackets (TED-LIUM:
    "o,f0,male"), or None. `transcript` has its words joined by single spaces and may be "".
    """

    filename: str
    channel: str
    speaker_id: str
    start_time: float
    stop_time: float
    transcript: str
    label: str | None = None

    @property
    def ignore_in_scoring(self) -> bool:
        """True for spans the corpus marks as not to be scored (music, applause, no speech)."""
        return self.transcript == IGNORE_TIME_SEGMENT

    @classmethod
    def from_line(cls, line: str, *, path: Path | str = "<stm>", lineno: int = 1) -> "STMSegment":
        """Parse one segment line; `path` and `lineno` only locate errors in messages."""
        where = f"{path}:{lineno}"
        fields = line.split(maxsplit=N_FIXED_FIELDS)
        if len(fields) < N_FIXED_FIELDS:
            raise STMFormatError(
                f"{where}: {len(fields)} fields, expected at least {N_FIXED_FIELDS} "
                f"(filename channel speaker start stop [<label>] transcript): {line.strip()!r}"
            )
        filename, channel, speaker_id, start_text, stop_text = fields[:N_FIXED_FIELDS]
        start_time = _parse_time(start_text, "start", where)
        stop_time = _parse_time(stop_text, "stop", where)
        if stop_time < start_time:
            raise STMFormatError(
                f"{where}: stop time {stop_text} is before start time {start_text}"
            )
        rest = fields[N_FIXED_FIELDS] if len(fields) > N_FIXED_FIELDS else ""
        label = None
        if rest.startswith("<"):
            end = rest.find(">")
            if end < 0:
                raise STMFormatError(
                    f"{where}: label {rest.split()[0]!r} opens with '<' but has no closing '>'"
                )
            label, rest = rest[1:end], rest[end + 1 :]
        return cls(
            filename=filename,
            channel=channel,
            speaker_id=speaker_id,
            start_time=start_time,
            stop_time=stop_time,
            transcript=" ".join(rest.split()),
            label=label,
        )


def _parse_time(text: str, name: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise STMFormatError(f"{where}: {name} time {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise STMFormatError(
            f"{where}: {name} time {text!r} must be a finite, non-negative number of seconds"
        )
    return value


def parse_stm_file(path: Path | str) -> list[STMSegment]:
    """All segments of an STM file, in file order; comment (`;;`) and blank lines skipped.

    TED-LIUM files are UTF-8 but a few are latin-1, so bytes that are not UTF-8 are read as
    latin-1 (with a warning) instead of failing the whole import.
    """
    path = Path(path)
    data = path.read_bytes()
    try:
        content = data.decode("utf-8")
    except UnicodeDecodeError:
        logger.warning("%s: not UTF-8, reading it as latin-1", path)
        content = data.decode("latin-1")
    segments = []
    for lineno, line in enumerate(content.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(COMMENT_PREFIX):
            continue
        segments.append(STMSegment.from_line(line, path=path, lineno=lineno))
    return segments
