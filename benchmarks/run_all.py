"""`make bench`: run every benchmark and rewrite benchmarks/RESULTS.md from their output.

Run: .venv/bin/python benchmarks/run_all.py [--only NAME,...] [--output benchmarks/RESULTS.md]
     [--options NAME="OPTIONS"]...

Each benchmark prints its own RESULTS.md section (`--markdown`): what it measured, its command,
machine and versions, and its ratios measured side by side in one run. This script runs them
one after another (never two at once: they would share the 2 cores), puts the machine and the
versions of everything measured at the top, with a summary line per section, and appends the
hand-written notes of `benchmarks/notes/NAME.md`, which explain figures rather than report
them. A failed benchmark leaves its section saying so, and makes the exit code 1.
With `--only`, the other sections keep their previous text.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from machine import cpu_model, gpu_description

HERE = Path(__file__).resolve().parent
# In the order they run and appear: cheapest first, so a broken setup fails early.
BENCHMARKS = ("make_run", "features", "augmentation", "decoding", "parallel_decoding",
              "input_pipeline", "memory", "training", "inference", "quantization", "serving",
              "reliability", "flood")  # fmt: skip
# Kept as they are unless named in --only: written by `make gpu-check` on a CUDA machine
# (benchmarks/gpu.py), or measuring trained models their own commands name (streaming,
# robustness).
GPU_ONLY = ("gpu", "streaming", "robustness")
PACKAGES = ("numpy", "python_speech_features", "tensorflow", "onnxruntime-gpu", "onnxruntime",
            "tf2onnx", "flashlight-text", "fastapi", "uvicorn", "httpx", "websockets")  # fmt: skip
SECTION_HEADING = re.compile(r"^## ", re.MULTILINE)


def installed_versions() -> str:
    found = []
    for package in PACKAGES:
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            continue
    return ", ".join(found)


def memory_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def run_benchmark(name: str, options: Sequence[str] = ()) -> tuple[str, float, bool]:
    """(its markdown section, seconds it took, whether it succeeded); progress goes to stderr."""
    print(f"== benchmarks/{name}.py", file=sys.stderr, flush=True)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(HERE / f"{name}.py"), "--markdown", *options],
        stdout=subprocess.PIPE,
        text=True,
        cwd=HERE.parent,
    )
    seconds = time.perf_counter() - start
    section = result.stdout.strip()
    if result.returncode != 0 or not section.startswith("## "):
        failure = f"benchmarks/{name}.py failed (exit code {result.returncode}); see its stderr"
        return f"## {name}\n\n**{failure}.**", seconds, False
    return section, seconds, True


def summary_line(section: str) -> str:
    """The section's conclusion: its last paragraph that gives a ratio or a verdict."""
    paragraphs = [p.strip() for p in section.split("\n\n")]
    for paragraph in reversed(paragraphs):
        if not paragraph.startswith(("|", "-", "#")) and ("×" in paragraph or "met" in paragraph):
            return " ".join(paragraph.split())
    return "(no summary)"


def previous_sections(path: Path) -> dict[str, str]:
    """Sections of an existing RESULTS.md by heading, to keep those not re-run."""
    if not path.exists():
        return {}
    text = path.read_text()
    starts = [m.start() for m in SECTION_HEADING.finditer(text)] + [len(text)]
    sections = {}
    for start, end in itertools.pairwise(starts):
        block = text[start:end].strip()
        if block.startswith("## Summary"):
            continue
        sections[block.splitlines()[0][3:].strip()] = block.split("\n\n### Notes")[0]
    return sections


def notes(name: str) -> str:
    path = HERE / "notes" / f"{name}.md"
    return f"\n\n### Notes\n\n{path.read_text().strip()}" if path.exists() else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated benchmark names (default: all)")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument(
        "--options",
        action="append",
        default=[],
        metavar='NAME="OPTIONS"',
        help='extra options for one benchmark, e.g. quantization="--checkpoint-dir DIR"',
    )
    args = parser.parse_args()
    extra = {
        name: shlex.split(value)
        for name, _, value in (option.partition("=") for option in args.options)
    }
    chosen = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = set(chosen) - set(BENCHMARKS) - set(GPU_ONLY)
    if unknown:
        known = (*BENCHMARKS, *GPU_ONLY)
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {known}")

    kept = previous_sections(args.output)
    sections: list[tuple[str, str]] = []  # (name, markdown)
    failed, took = [], {}
    start = time.perf_counter()
    for name in BENCHMARKS:
        if name in chosen:
            section, took[name], ok = run_benchmark(name, extra.get(name, ()))
            if not ok:
                failed.append(name)
        else:
            heading = next((h for h in kept if _script_of(kept[h]) == name), None)
            if heading is None:
                continue
            section = kept[heading]
        sections.append((name, section))
    for name in GPU_ONLY:  # kept, unless asked for by name (with the options they need)
        if name in chosen:
            section, took[name], ok = run_benchmark(name, extra.get(name, ()))
            if not ok:
                failed.append(name)
            sections.append((name, section))
            continue
        heading = next((h for h in kept if _script_of(kept[h]) == name), None)
        if heading is not None:
            sections.append((name, kept[heading]))
    total = time.perf_counter() - start

    summary = "\n".join(
        f"- **{section.splitlines()[0][3:]}** (`benchmarks/{name}.py`"
        + (f", {took[name] / 60:.1f} min" if name in took else ", kept from an earlier run")
        + f"): {summary_line(section)}"
        for name, section in sections
    )
    ran = ", ".join(took)
    kept = [name for name, _ in sections if name not in took]
    header = (
        "# Benchmark results\n\n"
        f"`benchmarks/run_all.py{' --only ' + args.only if args.only else ''}` ran {ran} on "
        f"{datetime.date.today().isoformat()} in {total / 60:.0f} min"
        + (
            f"; {', '.join(kept)} are kept from earlier runs. "
            if kept
            else " (every section, in this one run). "
        )
        + "Each section states its own date and command, and every ratio is measured side by "
        "side in one run of its script (the machines are shared and noisy). Hand-written "
        "notes under a section explain its figures and are kept across runs "
        "(`benchmarks/notes/`).\n\n"
        f"- Machine: {cpu_model()}, nproc {os.cpu_count()}, {memory_gib():.0f} GiB, "
        f"{platform.system()} {platform.release()}; {gpu_description()}\n"
        f"- Python {platform.python_version()}; {installed_versions()}\n\n"
        f"## Summary\n\n{summary}\n"
    )
    body = "\n\n".join(section + notes(name) for name, section in sections)
    args.output.write_text(header + "\n" + body + "\n")
    print(f"wrote {args.output} in {total / 60:.1f} min", file=sys.stderr)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


def _script_of(section: str) -> str | None:
    match = re.search(r"benchmarks/(\w+)\.py", section)
    return match.group(1) if match else None


if __name__ == "__main__":
    main()
