"""Shared fixtures: one tiny synthetic corpus per test session, made by the real generator."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_CORPUS_UTTERANCES = 160


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sample corpus of 160 espeak-ng utterances (train/dev/test CSVs in the folder)."""
    from deepspeech.corpus.sample import SampleCorpusConfig, make_sample_corpus

    out = tmp_path_factory.mktemp("tiny-corpus")
    make_sample_corpus(out, SampleCorpusConfig(utterances=TINY_CORPUS_UTTERANCES, seed=7))
    return out
