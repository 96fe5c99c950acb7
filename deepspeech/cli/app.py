"""Root typer app: global options, logging set-up and the one place errors become exit codes."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from typer.exceptions import TyperException

import deepspeech.cli.importers  # noqa: F401  (registers data librispeech, tedlium, commonvoice, import)
from deepspeech import __version__
from deepspeech.cli.data import data_app
from deepspeech.cli.export import export
from deepspeech.cli.lm import lm_app
from deepspeech.cli.runs import runs_app
from deepspeech.cli.serve import serve, transcribe
from deepspeech.cli.sweep import sweep
from deepspeech.cli.train import evaluate, train
from deepspeech.data.augment_spec import AUGMENT_HELP
from deepspeech.errors import DeepSpeechError
from deepspeech.logs import configure_logging

USER_ERROR_EXIT_CODE = 2

app = typer.Typer(
    name="deepspeech",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)

_debug = False


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"deepspeech {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Verbose logging, and full tracebacks on errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """DeepSpeech speech-to-text: make corpora, train the BiRNN with CTC, export to ONNX, serve."""
    global _debug
    _debug = debug
    configure_logging(debug)


def _register_commands() -> None:
    app.add_typer(data_app, name="data")
    app.add_typer(lm_app, name="lm")
    app.command("train", epilog=AUGMENT_HELP)(train)
    app.command("evaluate")(evaluate)
    app.command("sweep")(sweep)
    app.command("export")(export)
    app.command("transcribe")(transcribe)
    app.command("serve")(serve)
    app.add_typer(runs_app, name="runs")


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: user errors print one line and exit 2; bugs keep their traceback."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="deepspeech", standalone_mode=False)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except TyperException as e:  # usage errors: typer prints them with a hint
        e.show()
        sys.exit(getattr(e, "exit_code", USER_ERROR_EXIT_CODE))
    except typer.Abort:
        print("Aborted.", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        sys.exit(130)
    except DeepSpeechError as e:
        if _debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT_CODE)
    sys.exit(result if isinstance(result, int) else 0)
