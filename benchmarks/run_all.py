"""`make bench`: run the benchmarks, store their results, and render benchmarks/RESULTS.md.

Run: .venv/bin/python benchmarks/run_all.py [--only NAME,...] [--render]
     [--options NAME="OPTIONS"]... [--output benchmarks/RESULTS.md] [--results benchmarks/results]

Each benchmark prints its result as a markdown section (`--markdown`). This script runs them one
after another (never two at once: they would share the 2 cores), reads each section into a
record stamped with the commit it ran at (`git`'s HEAD, `-dirty` with uncommitted changes) and
stores it as benchmarks/results/NAME.json. Then it renders RESULTS.md from every stored record
(`report.render`): a headline table of the targets, then one section per benchmark. With
`--only`, the other benchmarks keep their stored results; `--render` runs nothing and only
re-renders. A section a script wrote into RESULTS.md itself (`make gpu-check` writes the GPU
one) is stored before rendering. A failed benchmark keeps its last result, marked as such, and
makes the exit code 1.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import logging
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from machine import cpu_model, gpu_description
from report import RESULTS_DIR, Record, load_records, parse_section, render, save_record

logger = logging.getLogger("run_all")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# In the order they run: cheapest first, so a broken setup fails early.
BENCHMARKS = ("make_run", "features", "augmentation", "decoding", "parallel_decoding",
              "input_pipeline", "memory", "training", "inference", "export_memory",
              "quantization", "serving", "reliability", "flood", "transcripts")  # fmt: skip
# Run only when named in --only: `make gpu-check` runs gpu on a CUDA machine, and streaming and
# robustness measure trained models their commands name; finetune trains four models (~40 min).
NAMED_ONLY = ("gpu", "streaming", "robustness", "finetune")
PACKAGES = ("numpy", "python_speech_features", "tensorflow", "onnxruntime-gpu", "onnxruntime",
            "tf2onnx", "flashlight-text", "fastapi", "uvicorn", "httpx", "websockets")  # fmt: skip


def installed_versions() -> str:
    found = []
    for package in PACKAGES:
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            continue
    return ", ".join(found)


def environment() -> str:
    """The host and versions, stored with each record this run makes."""
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu_model()}, nproc {os.cpu_count()}, {memory_gib:.0f} GiB, {platform.system()} "
        f"{platform.release()}; {gpu_description()}; Python {platform.python_version()}; "
        f"{installed_versions()}"
    )


def commit() -> str:
    """HEAD's short hash, with -dirty when tracked files outside the results differ from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    head = git("rev-parse", "--short=7", "HEAD")
    if not head:
        return "unknown"
    changed = git(
        "status", "--porcelain", "--untracked-files=no", "--", ".",
        ":!benchmarks/results", ":!benchmarks/RESULTS.md",
    )  # fmt: skip
    return f"{head}-dirty" if changed else head


def run_benchmark(name: str, options: Sequence[str]) -> tuple[str, int]:
    """(its markdown section, its exit code); its progress goes to stderr."""
    logger.info("== benchmarks/%s.py", name)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(HERE / f"{name}.py"), "--markdown", *options],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    logger.info("   %s took %.1f min", name, (time.perf_counter() - start) / 60)
    return result.stdout.strip(), result.returncode


@dataclass(frozen=True)
class Stamp:
    """When, at which commit and in which environment this invocation runs benchmarks."""

    date: str
    commit: str
    environment: str


def store(record: Record, stamp: Stamp, folder: Path) -> None:
    """Store a record made in this invocation, with its commit and environment."""
    record.commit, record.environment = stamp.commit, stamp.environment
    record.machine = record.machine or f"{cpu_model()}, nproc {os.cpu_count()}"
    save_record(record, folder)


def mark_failed(name: str, code: int, stamp: Stamp, folder: Path) -> None:
    """Keep the benchmark's last stored result, marked with the run that failed after it."""
    path = folder / f"{name}.json"
    if path.is_file():
        record = Record.from_json(path.read_text())
        record.failure = {"date": stamp.date, "commit": stamp.commit, "exit_code": str(code)}
        save_record(record, folder)


def store_run(name: str, options: Sequence[str], stamp: Stamp, folder: Path) -> bool:
    """Run one benchmark and store its record (or mark the stored one failed); whether it ran."""
    section, code = run_benchmark(name, options)
    try:
        if code != 0:
            raise ValueError(f"exit code {code}")
        record = parse_section(section, name)
    except ValueError as error:
        logger.error("benchmarks/%s.py failed (%s); see its stderr", name, error)
        mark_failed(name, code, stamp, folder)
        return False
    store(record, stamp, folder)
    return True


def store_written_sections(results_md: Path, stamp: Stamp, folder: Path) -> None:
    """Store the sections a script wrote into RESULTS.md itself (gpu.py's), which are in its
    own format: a rendered section has no `- Date:` line, so only these parse as results."""
    if not results_md.is_file():
        return
    text = results_md.read_text()
    starts = [m.start() for m in re.finditer(r"^## ", text, re.MULTILINE)] + [len(text)]
    for start, end in itertools.pairwise(starts):
        try:
            record = parse_section(text[start:end])
        except ValueError:
            continue
        logger.info("stored the %s section written into %s", record.benchmark, results_md.name)
        store(record, stamp, folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated benchmark names (default: all)")
    parser.add_argument("--render", action="store_true", help="run nothing; re-render only")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="the stored results")
    parser.add_argument(
        "--options",
        action="append",
        default=[],
        metavar='NAME="OPTIONS"',
        help='extra options for one benchmark, e.g. quantization="--checkpoint-dir DIR"',
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    extra = {
        name: shlex.split(value)
        for name, _, value in (option.partition("=") for option in args.options)
    }
    chosen = [] if args.render else args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = set(chosen) - set(BENCHMARKS) - set(NAMED_ONLY)
    if unknown:
        known = (*BENCHMARKS, *NAMED_ONLY)
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {known}")

    stamp = Stamp(datetime.date.today().isoformat(), commit(), environment())
    store_written_sections(args.output, stamp, args.results)
    failed = [
        name
        for name in (*BENCHMARKS, *NAMED_ONLY)
        if name in chosen and not store_run(name, extra.get(name, ()), stamp, args.results)
    ]
    args.output.write_text(render(load_records(args.results)))
    logger.info("wrote %s", args.output)
    if failed:
        logger.error("failed: %s", ", ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
