"""The `deepspeech` command line: thin typer commands over the library.

Command modules import TensorFlow and MLflow inside their commands only, so `--help` stays fast.
"""

from deepspeech.cli.app import app, main

__all__ = ["app", "main"]
