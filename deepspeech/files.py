"""Atomic file writes: a file appears complete or not at all.

Corpora, manifests and checkpoint descriptions are written while a user may kill the process;
a half-written WAV or CSV would poison the next run, so every such write goes to a temporary
file in the same folder and is renamed over the target only once complete.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

READABLE_FILE_MODE = 0o644  # mkstemp's 0600 would hide shared data from other users


@contextmanager
def atomic_write(path: Path, mode: str = "w", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary sibling of `path` for writing; on success it replaces `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, mode, **open_kwargs) as stream:
            yield stream
        os.chmod(temporary, READABLE_FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
