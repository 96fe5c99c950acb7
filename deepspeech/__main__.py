"""`python -m deepspeech` runs the CLI, as the console script does."""

from deepspeech.cli import main

main()
