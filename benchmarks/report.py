"""benchmarks/RESULTS.md as a report, rendered from the stored results of each benchmark.

A benchmark script prints its result as a markdown section (`--markdown`). `parse_section`
reads that section into a `Record` (its title, what it measures, command, date, machine, tables
and sentences), which `run_all.py` stamps with the commit it ran at and stores as
`benchmarks/results/NAME.json`. `render` turns the stored records into the report: a headline
table of every target (`TARGETS`: its value and verdict computed here from the records'
tables and sentences), then one section per benchmark with its command, its tables, a few
generated sentences and a link to its notes (`benchmarks/notes/NAME.md`, written by hand).
"""

from __future__ import annotations

import json
import logging
import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
NOTES_DIR = HERE / "notes"
# The order of the sections: make run first, then cheapest first (the order run_all runs them).
ORDER = ("make_run", "features", "augmentation", "decoding", "parallel_decoding",
         "input_pipeline", "memory", "training", "inference", "export_memory", "quantization",
         "serving", "reliability", "flood", "transcripts", "finetune", "gpu", "streaming",
         "robustness")  # fmt: skip
MAX_LINES = 300  # of the whole report
MAX_TEXT_LINES = 10  # generated sentences per section, counted wrapped at TEXT_WIDTH
TEXT_WIDTH = 100


@dataclass(frozen=True)
class Table:
    """One markdown table of a result: its header, alignment row and cells, as printed."""

    columns: list[str]
    align: list[str]
    rows: list[list[str]]

    def column(self, name: str) -> int:
        if name not in self.columns:
            raise LookupError(f"no column {name!r} in {self.columns}")
        return self.columns.index(name)

    def find(self, **cells: str) -> list[str]:
        """The first row whose named cells (column name with spaces as _) equal `cells`."""
        wanted = {self.column(name.replace("_", " ")): value for name, value in cells.items()}
        for row in self.rows:
            if all(row[i] == value for i, value in wanted.items()):
                return row
        raise LookupError(f"no row with {cells} in the table of {self.columns}")

    def cell(self, first: str, column: str) -> str:
        """The cell in `column` of the row whose first cell is `first`."""
        for row in self.rows:
            if row[0] == first:
                return row[self.column(column)]
        raise LookupError(f"no row starting {first!r} in the table of {self.columns}")

    def values(self, column: str) -> list[str]:
        return [row[self.column(column)] for row in self.rows]

    def markdown(self) -> list[str]:
        """The table's lines; a two-column table of at most two rows reads as one line (the
        report stays within MAX_LINES)."""
        if len(self.columns) == 2 and len(self.rows) <= 2:
            pairs = "; ".join(f"{first} {second}" for first, second in self.rows)
            return [f"{self.columns[0]}, {self.columns[1]}: {pairs}."]
        lines = ["| " + " | ".join(line) + " |" for line in (self.columns, self.align, *self.rows)]
        lines[1] = "|" + "|".join(self.align) + "|"
        return lines


@dataclass(kw_only=True)
class Record:
    """A benchmark's result: what its script printed, with when, where and at which commit."""

    benchmark: str
    title: str
    description: str
    command: str
    command_note: str = ""
    date: str
    date_note: str = ""
    commit: str = "unknown"  # git's HEAD (with -dirty for uncommitted changes) when it ran
    machine: str
    environment: str = ""  # the host and package versions run_all saw when it ran the script
    details: list[str] = field(default_factory=list)
    blocks: list[Table | str] = field(default_factory=list)  # tables and paragraphs, in order
    failure: dict[str, str] | None = None  # the last run that failed after this one succeeded

    @property
    def tables(self) -> list[Table]:
        return [block for block in self.blocks if isinstance(block, Table)]

    @property
    def text(self) -> str:
        return " ".join(block for block in self.blocks if isinstance(block, str))

    @property
    def cpu(self) -> str:
        return re.split(r", nproc|;", self.machine)[0].strip()

    def table_with(self, column: str) -> Table:
        """The first of the record's tables that has `column`."""
        for table in self.tables:
            if column in table.columns:
                return table
        raise LookupError(f"{self.benchmark}: no table with a column {column!r}")

    def to_json(self) -> str:
        data = asdict(self)
        data["blocks"] = [
            {"text": block} if isinstance(block, str) else {"table": asdict(block)}
            for block in self.blocks
        ]
        return _dump(data) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Record:
        data = json.loads(text)
        data["blocks"] = [
            block["text"] if "text" in block else Table(**block["table"])
            for block in data["blocks"]
        ]
        return cls(**data)


def _dump(value: object, indent: int = 0) -> str:
    """JSON, nested by indentation, with each list of plain values (a table row) on one line."""
    pad = " " * (indent + 1)
    if isinstance(value, dict) and value:
        items = [
            f"{pad}{json.dumps(key)}: {_dump(item, indent + 1)}" for key, item in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
        items = [pad + _dump(item, indent + 1) for item in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    return json.dumps(value, ensure_ascii=False)


def script_name(section: str) -> str | None:
    """The benchmark a section's command runs (`benchmarks/NAME.py`), if it names one."""
    match = re.search(r"benchmarks/(\w+)\.py", section)
    return match.group(1) if match else None


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def parse_section(markdown: str, benchmark: str | None = None) -> Record:
    """A benchmark script's `--markdown` section as a Record (commit left unknown).

    The section is a `## Title` heading, paragraphs saying what was measured, a bullet list
    (`- Command:`, `- Date:`, `- Machine:` and any others), then tables and paragraphs.
    Raises ValueError when the text is not such a section (no `- Date:` line, for one).
    """
    blocks = [block.strip("\n") for block in re.split(r"\n[ \t]*\n", markdown.strip())]
    if not blocks or not blocks[0].startswith("## "):
        raise ValueError("a result section starts with a '## ' heading")
    title, *rest = blocks[0].splitlines()
    found: dict[str, str] = {}
    details: list[str] = []
    description: list[str] = []
    body: list[Table | str] = []
    for block in (["\n".join(rest)] if rest else []) + blocks[1:]:
        lines = block.splitlines()
        if all(line.startswith("- ") for line in lines):
            for line in lines:
                key, _, value = line[2:].partition(": ")
                if key in ("Command", "Date", "Machine") and value:
                    found[key] = value.strip()
                else:
                    details.append(line[2:].strip())
        elif all(line.startswith("|") for line in lines):
            header, align, *rows = (_cells(line) for line in lines)
            body.append(Table(header, align, rows))
        else:
            paragraph = " ".join(line.strip() for line in lines)
            (description if not found and not body else body).append(paragraph)
    if "Date" not in found or "Command" not in found:
        raise ValueError(f"{title}: a result section has '- Command:' and '- Date:' lines")
    command = re.match(r"`([^`]*)`\s*(.*)", found["Command"])
    date = re.match(r"(\d{4}-\d{2}-\d{2})\s*(.*)", found["Date"])
    if command is None or date is None:
        raise ValueError(f"{title}: unreadable command or date: {found}")
    name = benchmark or script_name(found["Command"])
    if name is None:
        raise ValueError(f"{title}: the command names no benchmarks/NAME.py")
    return Record(
        benchmark=name,
        title=title[3:].strip(),
        description=" ".join(description),
        command=command.group(1),
        command_note=command.group(2),
        date=date.group(1),
        date_note=date.group(2),
        machine=found.get("Machine", ""),
        details=details,
        blocks=body,
    )


def load_records(folder: Path = RESULTS_DIR) -> dict[str, Record]:
    """The stored records by benchmark name, in report order."""
    records = {}
    for path in sorted(folder.glob("*.json")):
        record = Record.from_json(path.read_text())
        records[record.benchmark] = record
    rank = {name: i for i, name in enumerate(ORDER)}
    return dict(sorted(records.items(), key=lambda item: rank.get(item[0], len(rank))))


def save_record(record: Record, folder: Path = RESULTS_DIR) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record.benchmark}.json"
    path.write_text(record.to_json())
    return path


# --- figures read from the records ---------------------------------------------------------


def number(cell: str) -> float:
    """The first number in a cell: '23,746×' -> 23746.0, '-0.12 points' -> -0.12."""
    match = re.search(r"[-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?", cell)
    if match is None:
        raise ValueError(f"no number in {cell!r}")
    return float(match.group().replace(",", ""))


def search(record: Record, pattern: str) -> re.Match[str]:
    """`pattern` in the record's sentences; LookupError if the script did not print it."""
    match = re.search(pattern, record.text)
    if match is None:
        raise LookupError(f"{record.benchmark}: no sentence matches {pattern!r}")
    return match


@dataclass(frozen=True)
class Figure:
    """A measured figure: as the headline shows it, and the number a target bounds."""

    text: str
    value: float


@dataclass(frozen=True)
class Verdict:
    value: str
    met: bool | None  # None: nothing to judge (not measured)


Judge = Callable[[Record], Verdict]


def at_most(limit: float, figure: Callable[[Record], Figure | None]) -> Judge:
    def judge(r: Record) -> Verdict:
        found = figure(r)
        return Verdict(found.text, found.value <= limit) if found else NOT_MEASURED

    return judge


def at_least(limit: float, figure: Callable[[Record], Figure | None]) -> Judge:
    def judge(r: Record) -> Verdict:
        found = figure(r)
        return Verdict(found.text, found.value >= limit) if found else NOT_MEASURED

    return judge


NOT_MEASURED = Verdict("not measured in its last run", None)


def make_run_seconds(r: Record) -> Figure | None:
    """None when the last make run resumed a finished training (no whole job to time)."""
    match = re.search(r"`make run` took (\d+) min (\d+) s", r.text)
    if match is None:
        return None
    minutes, seconds = int(match.group(1)), int(match.group(2))
    text = f"{minutes} min {seconds:02d} s"
    step = re.search(r"every part scaled by \d+ / (\d+) ms", r.text)
    if step:  # this CPU's step of training.py's configuration, beside its minutes
        text += f" at {step.group(1)} ms a step"
    return Figure(text, minutes * 60 + seconds)


def make_run_projected(r: Record) -> Figure | None:
    """Make run at the slowest host's step (issue 31), from the "all" row of the section's
    table of parts; None for a record made before it had one."""
    step = re.search(r"\(issue 31: (\d+) ms", r.text)
    try:
        table = r.table_with("share")
    except LookupError:
        return None
    column = next((c for c in table.columns if c.startswith("at the ")), None)
    if step is None or column is None:
        return None
    row = next(row for row in table.rows if row[0] == "all")
    match = re.fullmatch(r"(\d+) min (\d+) s", row[table.column(column)])
    minutes, seconds = int(match.group(1)), int(match.group(2))
    text = f"{minutes} min {seconds:02d} s at {step.group(1)} ms a step"
    return Figure(text, minutes * 60 + seconds)


MAKE_RUN_WER = {  # how the section's summary states each test WER
    "greedy": r"test WER ([\d.]+%) greedy",
    "beam": r"([\d.]+%) with beam search and the LM",
}


def make_run_wer(decoding: str) -> Callable[[Record], Figure]:
    def figure(r: Record) -> Figure:
        match = re.search(MAKE_RUN_WER[decoding], r.text)
        if match is None:
            raise LookupError(f"make_run: no {decoding} test WER in the summary")
        return Figure(match.group(1), number(match.group(1)))

    return figure


def cell(column: str, first: str, suffix: str = "") -> Callable[[Record], Figure]:
    """The figure in `column` of the row whose first cell is `first` (first table with it)."""

    def figure(r: Record) -> Figure:
        text = r.table_with(column).cell(first, column)
        return Figure(text + suffix, number(text))

    return figure


def cache_mb_per_hour(r: Record) -> Figure:
    size = float(search(r, r"\(([\d.]+) MB per audio hour").group(1))
    return Figure(f"{size:g} MB", size)


def _memory_rows(r: Record) -> tuple[list[tuple[float, float]], float]:
    """((audio hours, peak MB) of the measured sets, projected MB for the largest corpus)."""
    table = r.table_with("peak RSS")
    measured = [(number(row[0]), number(row[1])) for row in table.rows if "projected" not in row[0]]
    projected = next(number(row[1]) for row in table.rows if "projected" in row[0])
    return measured, projected


def memory_growth(r: Record) -> Figure:
    measured, _ = _memory_rows(r)
    (small_h, small_mb), (large_h, large_mb) = measured[0], measured[-1]
    return Figure(
        f"{large_mb / small_mb:.2f}× ({small_h:g} h → {large_h:g} h)", large_mb / small_mb
    )


def memory_projected_gb(r: Record) -> Figure:
    _, projected = _memory_rows(r)
    return Figure(f"{projected / 1024:.2f} GB", projected / 1024)  # GB as memory.py counts them


def slowest_speedup(r: Record) -> Figure:
    """Inference: onnxruntime's speed-up over TensorFlow as trained, at each width; the least."""
    table = r.table_with("ORT speed-up vs trained")
    speedups = {row[0]: number(row[table.column("ORT speed-up vs trained")]) for row in table.rows}
    text = ", ".join(f"{value:g}× (n_hidden {width})" for width, value in speedups.items())
    return Figure(text, min(speedups.values()))


def int8_size_ratio(r: Record) -> Figure:
    text = r.table_with("size").cell("int8", "size")  # "21.7 MB (0.25×)"
    ratio = float(re.search(r"\(([\d.]+)×\)", text).group(1))
    return Figure(f"{ratio:g}× ({text.split(' (')[0]})", ratio)


def int8_wer_change(r: Record) -> Figure:
    table = r.table_with("test WER")
    fp32, int8 = (number(table.cell(name, "test WER")) for name in ("fp32", "int8"))
    return Figure(f"{int8 - fp32:+.2f} points ({fp32:.2f}% → {int8:.2f}%)", int8 - fp32)


def batching_speedup(r: Record) -> Figure:
    """Serving: throughput with micro-batching over without, at concurrency 8."""
    table = r.table_with("throughput")
    at_8 = [row for row in table.rows if row[table.column("concurrency")] == "8"]
    alone = next(number(row[table.column("throughput")]) for row in at_8 if row[0] == "1")
    batched = max(number(row[table.column("throughput")]) for row in at_8 if row[0] != "1")
    return Figure(f"{batched / alone:.2f}× ({batched:g} against {alone:g} req/s)", batched / alone)


def load_errors_and_growth(r: Record) -> Verdict:
    table = r.table_with("errors")
    row = table.rows[0]
    errors, requests = int(number(row[table.column("errors")])), row[table.column("requests")]
    growth = float(re.search(r"\(([-+][\d.]+)%\)", row[-1]).group(1))
    return Verdict(
        f"{errors} errors in {requests} requests, RSS {growth:+.1f}%", errors == 0 and growth <= 10
    )


def faults_contained(r: Record) -> Verdict:
    table = r.table_with("5xx")
    server_errors = sum(int(number(text)) for text in table.values("5xx"))
    decoded = int(number(table.rows[0][table.column("refused ones decoded")]))
    after = search(r, r"answered (\d+) and (\d+)").groups()
    ok = server_errors == 0 and decoded == 0 and set(after) == {"200"}
    return Verdict(
        f"{server_errors} 5xx, {decoded} refused files decoded, then {' and '.join(after)}", ok
    )


def flood_bounded(r: Record) -> Verdict:
    table = r.table_with("other 5xx")
    row = table.rows[0]
    other, errors = (int(number(row[table.column(c)])) for c in ("other 5xx", "transport errors"))
    peak_gb = number(row[table.column("RSS peak")]) * 2**20 / 1e9  # the table's MB are MiB
    after = row[table.column("upload after")]
    ok = other == 0 and errors == 0 and peak_gb <= 1.5 and after == "200"
    return Verdict(f"{other} other 5xx, RSS {peak_gb:.2f} GB, then {after}", ok)


def gpu_targets(r: Record) -> Verdict:
    training = r.table_with("audio s/s per GPU")
    audio = number(training.cell("mixed", "audio s/s per GPU"))
    share = number(training.cell("mixed", "input pipeline / step"))
    serving = r.table_with("CUDA speed-up")
    speedup = number(serving.cell("16", "CUDA speed-up"))
    parity = max(number(text) for text in serving.values(serving.columns[-1]))
    ok = audio >= 2000 and share <= 5 and speedup >= 20 and parity <= 1e-3
    return Verdict(f"{audio:,.0f}; {share:g} %; {speedup:g}×; {parity:.1e}", ok)


def streaming_parity(r: Record) -> Verdict:
    same, total = search(r, r"identical to offline on (\d+) of (\d+)").groups()
    return Verdict(f"{same} of {total} utterances", same == total)


def chunk_growth(r: Record) -> Figure:
    growth = float(search(r, r"first 10 % = ([\d.]+)×").group(1))
    return Figure(f"{growth:g}×", growth)


def final_text_p95_ms(r: Record) -> Figure:
    median, p95 = search(r, r"Final text ([\d.]+) ms \(p95 ([\d.]+) ms\)").groups()
    return Figure(f"{median} ms (p95 {p95} ms)", float(p95))


def streams_held(r: Record) -> Figure:
    """The most streams whose partial p99 stayed ≤ 300 ms without errors or wrong finals."""
    table = r.table_with("partial p99")
    held = max(
        (
            int(row[0])
            for row in table.rows
            if number(row[table.column("partial p99")]) <= 300
            and row[table.column("errors")] == "0"
            and row[table.column("wrong finals")] == "0"
        ),
        default=0,
    )
    tried = max(int(row[0]) for row in table.rows)
    return Figure(f"{held} (of up to {tried} tried)", held)


def _wer(r: Record, model: str, decoding: str, condition: str) -> float:
    table = r.table_with("decoding")
    return number(table.find(model=model, decoding=decoding)[table.column(condition)])


def _reference_model(r: Record) -> str:
    """The robustness table's first model: make run's (`augmented`)."""
    return r.table_with("decoding").rows[0][0]


def unidirectional_gap(r: Record) -> Figure:
    uni, bi = _wer(r, "streaming", "lm", "clean"), _wer(r, _reference_model(r), "lm", "clean")
    return Figure(f"{uni - bi:+.2f} points ({uni:.2f}% against {bi:.2f}%)", uni - bi)


def noise_ratio(r: Record) -> Figure:
    model = _reference_model(r)
    clean, noisy = _wer(r, model, "greedy", "clean"), _wer(r, model, "greedy", "10 dB")
    return Figure(f"{noisy / clean:.2f}× ({noisy:.2f}% against {clean:.2f}%)", noisy / clean)


def other_voices_wer(r: Record) -> Figure:
    wer = _wer(r, _reference_model(r), "lm", "flite")
    return Figure(f"{wer:.2f}%", wer)


def _transcripts_value(r: Record, start: str) -> str:
    """The value cell of the row of the transcripts table whose first cell starts `start`."""
    table = r.table_with("measured")
    row = next(row for row in table.rows if row[0].startswith(start))
    return row[table.column("value")]


def word_timing_errors(r: Record) -> Verdict:
    """Word start error, greedy and beam + LM: median ≤ 50 ms and p95 ≤ 150 ms for both."""
    found = []
    for decoding in ("greedy", "beam + LM"):
        value = _transcripts_value(r, f"word start error, {decoding}")
        median, p95 = re.search(r"(\d+) ms median, (\d+) ms p95", value).groups()
        found.append((decoding, float(median), float(p95)))
    text = "; ".join(f"{median:g} / {p95:g} ms {decoding}" for decoding, median, p95 in found)
    return Verdict(text, all(median <= 50 and p95 <= 150 for _, median, p95 in found))


def recording_speed_and_memory(r: Record) -> Verdict:
    value = _transcripts_value(r, "1-hour recording")
    speed = number(value)
    peak, growth = re.search(r"peak RSS (\d+) MB, ([\d.]+)×", value).groups()
    ok = speed >= 100 and float(peak) <= 1000 and float(growth) <= 1.2
    return Verdict(f"{speed:g}× real time; {peak} MB, {growth}×", ok)


def recording_wer_gap(r: Record) -> Figure:
    value = _transcripts_value(r, "WER, 1-hour recording")
    gap = float(re.search(r"\(([-+][\d.]+) points\)", value).group(1))
    return Figure(value, gap)


def hot_word_boost(r: Record) -> Verdict:
    table = r.table_with("measured")
    row = next(row for row in table.rows if row[0].startswith("hot words, boost"))
    value = row[table.column("value")]
    recall = number(value)
    rise = float(re.search(r"WER ([-+][\d.]+) points", value).group(1))
    boost = row[0].removeprefix("hot words, ")
    return Verdict(f"{boost}: recall {recall:g} %, other WER {rise:+.2f} points",
                   recall >= 80 and rise <= 0.5)  # fmt: skip


def low_confidence_share(r: Record) -> Figure:
    value = _transcripts_value(r, "word errors in the least confident")
    return Figure(value, number(value))


def finetune_share(variant: str) -> Callable[[Record], Figure]:
    """The share of the from-scratch run's steps after which the fine-tuned run's dev WER
    first reached the from-scratch run's final one (inf: not within its steps)."""

    def figure(r: Record) -> Figure:
        table = r.table_with("dev WER by epoch, scratch")
        row = table.find(variant=variant)
        runs = {}
        for run in ("scratch", "fine-tuned"):
            wers = [number(w) for w in row[table.column(f"dev WER by epoch, {run}")].split(",")]
            runs[run] = (number(row[table.column(f"steps, {run}")]) / len(wers), wers)
        (scratch_epoch, scratch), (tuned_epoch, tuned) = runs["scratch"], runs["fine-tuned"]
        total = scratch_epoch * len(scratch)
        reached = next((i + 1 for i, w in enumerate(tuned) if w <= scratch[-1]), None)
        if reached is None:
            return Figure(f"not within {tuned_epoch * len(tuned):,.0f} steps", float("inf"))
        share = reached * tuned_epoch / total
        return Figure(
            f"{share:.0%} ({reached * tuned_epoch:,.0f} of {total:,.0f} steps to "
            f"{scratch[-1]:.2f}%)",
            share,
        )

    return figure


@dataclass(frozen=True)
class Target:
    benchmark: str
    measured: str
    target: str  # as its issue states it
    judge: Judge


TARGETS = (
    Target("make_run", "`make run` end to end on 2 cores, install excluded", "≤ 12 min (#13)",
           at_most(12 * 60, make_run_seconds)),
    Target("make_run", "`make run` at the slowest CPU seen (Intel Xeon, 2026-12-05)",
           "≤ 15 min (#31)", at_most(15 * 60, make_run_projected)),
    Target("make_run", "test WER, greedy", "≤ 3 % (#15)", at_most(3, make_run_wer("greedy"))),
    Target("make_run", "test WER, beam 64 + LM", "≤ 0.5 % (#15)",
           at_most(0.5, make_run_wer("beam"))),
    Target("features", "MFCC + context windows, one core", "≥ 300× real time (#3)",
           at_least(300, cell("real time (best)", "audio_to_input_vector", " real time"))),
    Target("input_pipeline", "tf.data from the feature cache", "≥ 20,000× real time (#13)",
           at_least(20_000, cell("audio s per s (best)", "tf.data from the feature cache",
                                 " real time"))),
    Target("input_pipeline", "feature cache per audio hour, stride 1", "≤ 40 MB (#13)",
           at_most(40, cache_mb_per_hour)),
    Target("memory", "peak training RSS, 10× the audio", "≤ 1.2× (#13)",
           at_most(1.2, memory_growth)),
    Target("memory", "peak training RSS projected to 960 h", "≤ 4 GB per worker (#13)",
           at_most(4, memory_projected_gb)),
    Target("training", "input pipeline's share of a step, 1 device", "≤ 5 % (#14)",
           at_most(5, cell("pipeline / step", "1 device"))),
    Target("inference", "onnxruntime over TensorFlow as trained, batch 1, 10 s",
           "≥ 3× at each width (#6)", at_least(3, slowest_speedup)),
    Target("export_memory", "export peak RSS, n_hidden 2048 (convert + parity)", "≤ 4 GB (#31)",
           at_most(4, cell("peak RSS", "2048"))),
    Target("quantization", "int8 over fp32 onnxruntime, n_hidden 1024", "≥ 2× (#17)",
           at_least(2, cell("int8 speed-up", "ORT fp32"))),
    Target("quantization", "int8 over TensorFlow as trained", "≥ 3× (#17)",
           at_least(3, cell("int8 speed-up", "TensorFlow, as trained"))),
    Target("quantization", "int8 file size over fp32", "≤ 0.3× (#17)",
           at_most(0.3, int8_size_ratio)),
    Target("quantization", "int8 test WER change", "≤ +0.5 points (#17)",
           at_most(0.5, int8_wer_change)),
    Target("serving", "micro-batching throughput at concurrency 8", "≥ 2× (#6)",
           at_least(2, batching_speedup)),
    Target("reliability", "60 s of load, 16 clients", "0 errors, RSS growth ≤ 10 % (#9)",
           load_errors_and_growth),
    Target("reliability", "malformed-input corpus, then valid requests",
           "no 5xx, none decoded, 200 after (#9)", faults_contained),
    Target("flood", "200 maximum-size uploads at once",
           "only 503, RSS ≤ 1.5 GB, 200 after (#17)", flood_bounded),
    Target("gpu", "mixed-precision audio s/s per GPU; pipeline share; ORT CUDA at batch 16 "
           "over CPU; parity", "≥ 2,000; ≤ 5 %; ≥ 20×; ≤ 1e-3 (#14)", gpu_targets),
    Target("streaming", "final streamed transcript equals the offline one", "all (#16)",
           streaming_parity),
    Target("streaming", "work per chunk, last 10 % of a 60 s stream over first", "≤ 1.2× (#16)",
           at_most(1.2, chunk_growth)),
    Target("streaming", "final text after the last chunk, n_hidden 256", "≤ 100 ms (#16)",
           at_most(100, final_text_p95_ms)),
    Target("streaming", "real-time streams with partial p99 ≤ 300 ms, 2 cores", "≥ 32 (#16)",
           at_least(32, streams_held)),
    Target("robustness", "unidirectional test WER with the LM, over the BiRNN's",
           "≤ +1 point (#16)", at_most(1, unidirectional_gap)),
    Target("robustness", "make run's model: greedy WER at 10 dB SNR over clean", "≤ 2× (#15)",
           at_most(2, noise_ratio)),
    Target("robustness", "make run's model with the LM on another engine's voices (flite)",
           "≤ 60 %: the floor (#15)", at_most(60, other_voices_wer)),
    Target("robustness", "make run's model with the LM on another engine's voices (flite)",
           "≤ 25 %: the goal (#15)", at_most(25, other_voices_wer)),
    Target("transcripts", "word start error, median / p95, greedy and beam + LM",
           "≤ 50 ms / ≤ 150 ms (#32)", word_timing_errors),
    Target("transcripts", "1-hour recording, `transcribe --format srt`, greedy: speed; peak "
           "RSS, and over a 10-minute one's", "≥ 100×; ≤ 1 GB, ≤ 1.2× (#32)",
           recording_speed_and_memory),
    Target("transcripts", "1-hour recording's WER over its clips transcribed one by one",
           "≤ +1 point (#32)", at_most(1, recording_wer_gap)),
    Target("transcripts", "hot words the LM never saw, smallest boost: recall; other clips' "
           "WER", "≥ 80 %; ≤ +0.5 points (#32)", hot_word_boost),
    Target("transcripts", "word errors in the least confident 20 % of clips, 10 dB SNR",
           "≥ 50 % (#32)", at_least(50, low_confidence_share)),
    Target("finetune", "fine-tuned from make run's model: steps to the from-scratch final "
           "dev WER, telephone audio", "≤ 1/3 of from scratch (#33)",
           at_most(1 / 3, finetune_share("telephone"))),
    Target("finetune", "the same, a new alphabet (numbers as digits)",
           "≤ 1/3 of from scratch (#33)", at_most(1 / 3, finetune_share("digits"))),
)  # fmt: skip


def anchor(title: str) -> str:
    """GitHub's anchor for a `## title` heading."""
    return "#" + re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def verdicts(records: dict[str, Record]) -> list[tuple[Target, Verdict]]:
    found = []
    for target in TARGETS:
        record = records.get(target.benchmark)
        if record is None:
            verdict = Verdict("not measured (no stored result)", None)
        else:
            try:
                verdict = target.judge(record)
            except (LookupError, ValueError, AttributeError, StopIteration) as error:
                logger.warning("%s: %s: %s", target.benchmark, target.measured, error)
                verdict = Verdict("not found in the stored result", None)
        found.append((target, verdict))
    return found


def headline(records: dict[str, Record]) -> list[str]:
    rows = [
        "| benchmark | measured | target | value | met | date | commit | machine |",
        "|---|---|---|---|---|---|---|---|",
    ]
    judged = verdicts(records)
    for target, verdict in judged:
        record = records.get(target.benchmark)
        met = {True: "met", False: "**NOT met**", None: "–"}[verdict.met]
        where = [record.date, f"`{record.commit}`", record.cpu or "–"] if record else ["–"] * 3
        name = f"[{record.title}]({anchor(record.title)})" if record else target.benchmark
        rows.append(
            f"| {name} | {target.measured} | {target.target} | {verdict.value} | {met} | "
            + " | ".join(where)
            + " |"
        )
    met = sum(verdict.met is True for _, verdict in judged)
    measured = sum(verdict.met is not None for _, verdict in judged)
    summary = f"{met} of the {measured} targets measured are met."
    missed = [f"{t.measured}, target {t.target}" for t, v in judged if v.met is False]
    if missed:
        summary += f" Not met: {'; '.join(missed)}."
    unmeasured = [t.benchmark for t, v in judged if v.met is None]
    if unmeasured:
        summary += f" Not measured (no stored result): {', '.join(dict.fromkeys(unmeasured))}."
    return [summary, "", *rows]


# --- generated sentences for the sections whose script says more than fits -----------------


def decoding_sentences(r: Record) -> list[str]:
    """From the decoding table: speed by beam, and what the LM does to WER and unseen words."""
    table = r.table_with("WER")
    column = {name: table.column(name) for name in ("real time", "WER", "unseen words kept")}
    greedy = table.cell("greedy", "WER")
    beams = {
        (int(m.group(1)), m.group(2)): row
        for row in table.rows
        if (m := re.match(r"beam (\d+) \+ LM \((\w+)\)", row[0]))
    }
    widths = sorted({width for width, _ in beams})
    speeds = ", ".join(beams[w, "closed"][column["real time"]] for w in widths)
    closed = sorted({beams[w, "closed"][column["WER"]] for w in widths}, key=number)
    opened = [beams[w, "open"] for w in widths]
    open_wer = sorted({row[column["WER"]] for row in opened}, key=number)
    kept = sorted({row[column["unseen words kept"]].split("/")[0] for row in opened}, key=int)
    unseen = opened[0][column["unseen words kept"]].split("/")[1]
    no_lm = next(row for row in table.rows if "no LM" in row[0])
    return [
        f"Beam search with the LM decodes at {speeds} real time on one core at beams "
        f"{', '.join(map(str, widths))}; greedy at {table.cell('greedy', 'real time')}.",
        f"On the closed vocabulary the LM takes WER from {greedy} (greedy) to "
        f"{' to '.join(closed)}; with the LM that lacks some test words, to "
        f"{' to '.join(open_wer)}, keeping {' to '.join(kept)} of the {unseen} unseen words "
        f"(greedy {table.cell('greedy', 'unseen words kept').split('/')[0]}). Beam search "
        f"without an LM: {no_lm[column['WER']]}.",
    ]


def robustness_sentences(r: Record) -> list[str]:
    """From the robustness table: each model's noise ratio, the best model per condition."""
    table = r.table_with("decoding")
    models = list(dict.fromkeys(row[0] for row in table.rows))
    conditions = table.columns[2:]
    ratios = ", ".join(
        f"`{m}` {_wer(r, m, 'greedy', '10 dB') / _wer(r, m, 'greedy', 'clean'):.2f}×"
        for m in models
    )
    best = ", ".join(
        f"{'clean audio' if c == 'clean' else c} "
        f"{min(_wer(r, m, 'greedy', c) for m in models):.2f}% "
        f"(`{min(models, key=lambda m, c=c: _wer(r, m, 'greedy', c))}`)"
        for c in conditions
    )
    sentences = [
        f"Greedy WER at 10 dB SNR over clean audio: {ratios} (target ≤ 2×).",
        f"Lowest greedy WER: {best}.",
    ]
    if "flite" in conditions and any(row[1] == "lm" for row in table.rows):
        voices = ", ".join(f"`{m}` {_wer(r, m, 'lm', 'flite'):.2f}%" for m in models)
        sentences.append(
            f"With the LM on another engine's voices (flite): {voices} (floor ≤ 60 %, goal ≤ 25 %)."
        )
    return sentences


SENTENCES: dict[str, Callable[[Record], list[str]]] = {
    "decoding": decoding_sentences,
    "robustness": robustness_sentences,
}


# --- the report ------------------------------------------------------------------------------


def _paragraphs(blocks: Sequence[Table | str]) -> list[Table | str]:
    """Adjacent paragraphs joined into one."""
    merged: list[Table | str] = []
    for block in blocks:
        if isinstance(block, str) and merged and isinstance(merged[-1], str):
            merged[-1] = f"{merged[-1]} {block}"
        else:
            merged.append(block)
    return merged


def text_lines(paragraphs: Sequence[str]) -> int:
    return sum(len(textwrap.wrap(p, TEXT_WIDTH)) for p in paragraphs)


def section(record: Record, notes: Path = NOTES_DIR) -> list[str]:
    """A record's section: what it measures, command and run, tables, generated sentences."""
    blocks: list[Table | str] = list(record.blocks)
    if record.benchmark in SENTENCES:
        try:
            sentences = SENTENCES[record.benchmark](record)
            blocks = [*record.tables, " ".join(sentences)]
        except (LookupError, ValueError, ZeroDivisionError) as error:
            logger.warning("%s: sentences from the script kept: %s", record.benchmark, error)
    blocks = _paragraphs(blocks)
    paragraphs = [block for block in blocks if isinstance(block, str)]
    if text_lines(paragraphs) > MAX_TEXT_LINES:
        logger.warning(
            "%s: %d lines of sentences, over %d", record.benchmark, text_lines(paragraphs),
            MAX_TEXT_LINES,
        )  # fmt: skip
    note = notes / f"{record.benchmark}.md"
    link = f"; notes: [notes/{note.name}](notes/{note.name})" if note.is_file() else ""
    measures = " ".join([record.description, *(f"{detail}." for detail in record.details)])
    command = f"`{record.command}`" + (f" {record.command_note}" if record.command_note else "")
    date = f"{record.date} {record.date_note}".strip()
    # What was measured and how it was run share one line: the report stays within MAX_LINES.
    lines = [
        f"## {record.title}",
        f"- Measures: {measures.strip()} Command: {command}; run {date} at commit "
        f"`{record.commit}` on {record.machine or 'a machine not recorded'}{link}",
    ]
    if record.failure:
        failure = record.failure
        lines.append(
            f"- **Its last run ({failure['date']}, commit `{failure['commit']}`) failed "
            f"(exit code {failure['exit_code']}); these figures are from the run before.**"
        )
    for block in blocks:
        lines += ["", *(block.markdown() if isinstance(block, Table) else [block])]
    return lines


def render(records: dict[str, Record], notes: Path = NOTES_DIR) -> str:
    """The whole RESULTS.md from the stored records."""
    untargeted = [
        r.title for r in records.values() if r.benchmark not in {t.benchmark for t in TARGETS}
    ]
    intro = (
        "Generated by `benchmarks/run_all.py` from the results stored in `benchmarks/results/` "
        "(one JSON file per benchmark: what its script printed, with its date, commit and "
        "machine). `make bench` re-runs every benchmark (about 40 min), "
        "`benchmarks/run_all.py --only NAME` one of them, and `benchmarks/run_all.py --render` "
        "rewrites this file from the stored results alone. Each figure is from its own run: "
        "the rows below name its date, commit and machine. Trial histories and explanations "
        "are in `benchmarks/notes/`, linked from each section."
    )
    if untargeted:
        names = ", ".join(untargeted[:-1]) + " and " if len(untargeted) > 1 else ""
        intro += f" {names}{untargeted[-1]} have no target."
    lines = ["# Benchmark results", "", intro, "", *headline(records)]
    for record in records.values():
        lines += ["", *section(record, notes)]
    if len(lines) > MAX_LINES:
        logger.warning("the report has %d lines, over %d", len(lines), MAX_LINES)
    return "\n".join(lines) + "\n"
