"""MLflow model URIs: `models:/NAME/VERSION`, `models:/NAME/latest`, `models:/NAME@ALIAS`, and
`runs:/RUN_ID`. One parser and one registry lookup for everyone who takes a model by URI
(`serve --model`, `transcribe --model`, `train --init-from`).

MLflow is imported where a registry is asked, so parsing stays free for `--help`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepspeech.errors import ModelLoadError

REGISTRY_SCHEME = "models:/"
RUNS_SCHEME = "runs:/"
_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/]+)|@(?P<alias>[^/]+))$")
_RUNS_URI = re.compile(r"^runs:/(?P<run_id>[0-9a-fA-F]{8,64})/?$")


def canonical_source(spec: str) -> str:
    """A model source as it compares and travels: a folder made absolute (the same folder from
    any working directory or Ray worker), a `runs:/` or `models:/` URI as given."""
    if not spec or spec.startswith((RUNS_SCHEME, REGISTRY_SCHEME)):
        return spec
    return str(Path(spec).expanduser().resolve())


@dataclass(frozen=True)
class RegistryUri:
    """A parsed `models:/` URI: a version number, 'latest', or an alias."""

    name: str
    version: str | None
    alias: str | None


def parse_registry_uri(text: str) -> RegistryUri:
    """`models:/NAME/VERSION`, `models:/NAME/latest` or `models:/NAME@ALIAS`, else an error."""
    match = _REGISTRY_URI.match(text)
    if not match:
        raise ModelLoadError(
            f"{text}: not a registry URI; write models:/NAME/VERSION, models:/NAME/latest "
            "or models:/NAME@ALIAS"
        )
    return RegistryUri(match["name"], match["version"], match["alias"])


def parse_runs_uri(text: str) -> str:
    """The run id of `runs:/RUN_ID`, else an error."""
    match = _RUNS_URI.match(text)
    if not match:
        raise ModelLoadError(f"{text}: not a run URI; write runs:/RUN_ID (32 hex digits)")
    return match["run_id"]


def find_model_version(uri: RegistryUri, client: Any) -> Any:
    """The registry's `ModelVersion` the URI names (`client`: an `MlflowClient`). MLflow's own
    errors (no such name, version or alias) propagate for the caller to word."""
    if uri.alias:
        return client.get_model_version_by_alias(uri.name, uri.alias)
    if uri.version != "latest":
        return client.get_model_version(uri.name, uri.version)
    name = uri.name.replace("'", "\\'")
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        raise ModelLoadError(f"models:/{uri.name}/latest: model {uri.name!r} has no versions")
    return max(versions, key=lambda v: int(v.version))
