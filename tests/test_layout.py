"""Imports go one way, stage by stage (docs/layout.md): no cycles, no edge back up a stage.

Read from the source (module-level and function-level imports alike), so an import moved into
a function to hide an edge is still counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# docs/layout.md's stages, first to last; a module may import its own stage and earlier ones.
STAGES = (
    ("deepspeech.errors", "deepspeech.config", "deepspeech.logs", "deepspeech.files",
     "deepspeech.parallel", "deepspeech.timing", "deepspeech.model_uri"),
    ("deepspeech.text", "deepspeech.audio", "deepspeech.stm", "deepspeech.metrics",
     "deepspeech.vad"),
    ("deepspeech.data",),
    ("deepspeech.corpus",),
    ("deepspeech.decoding",),
    ("deepspeech.model",),
    ("deepspeech.training",),
    ("deepspeech.sweep",),
    ("deepspeech.runtime",),
    ("deepspeech.export",),
    ("serving",),
    ("deepspeech.registry",),
    ("deepspeech.cli", "deepspeech.__main__"),
)  # fmt: skip


def stage_of(module: str) -> int | None:
    for index, prefixes in enumerate(STAGES):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    return None


def project_imports() -> dict[str, set[str]]:
    """{module: project modules it imports anywhere in its source}."""
    graph: dict[str, set[str]] = {}
    for top in ("deepspeech", "serving"):
        for path in (ROOT / top).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            name = name.removesuffix(".__init__")
            targets = graph.setdefault(name, set())
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    targets.add(node.module)
                elif isinstance(node, ast.Import):
                    targets.update(alias.name for alias in node.names)
            graph[name] = {t for t in targets if t.split(".")[0] in ("deepspeech", "serving")}
    return graph


def test_every_project_module_has_a_stage() -> None:
    assert [m for m in project_imports() if m != "deepspeech" and stage_of(m) is None] == []


def test_no_import_runs_back_up_a_stage() -> None:
    back = sorted(
        f"{module} -> {target}"
        for module, targets in project_imports().items()
        for target in targets
        if module != "deepspeech"
        and stage_of(target) is not None
        and stage_of(target) > stage_of(module)  # type: ignore[operator]
    )
    assert back == []


def test_serving_never_imports_tensorflow_or_the_cli() -> None:
    graph = project_imports()
    for module, targets in graph.items():
        if module.startswith("serving") or module.startswith("deepspeech.runtime"):
            assert not {t for t in targets if t.startswith("deepspeech.cli")}, module
            source = ROOT / (module.replace(".", "/") + ".py")
            text = source.read_text() if source.exists() else ""
            assert "import tensorflow" not in text and "import keras" not in text, module


def test_no_import_cycles_between_modules() -> None:
    graph = project_imports()

    def resolve(target: str) -> str | None:
        while target and target not in graph:
            target = target.rpartition(".")[0]
        return target or None

    edges = {m: {r for t in ts if (r := resolve(t)) and r != m} for m, ts in graph.items()}
    cycles = []
    for start in edges:  # a path from a module's imports back to itself is a cycle
        seen, frontier = set(), list(edges[start])
        while frontier:
            module = frontier.pop()
            if module == start:
                cycles.append(start)
                break
            if module not in seen:
                seen.add(module)
                frontier.extend(edges[module])
    assert cycles == []
