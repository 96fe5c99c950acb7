"""The registry stage, after serving: an exported model made one deployable MLflow version.

`deepspeech export --register NAME [--lm LM --alpha A --beta B | --decoder-from RUN_ID]
[--alias ALIAS]` exports the file (`deepspeech.export`), then this stage packs it with its
decoder settings and LM as the pyfunc of `serving.bundle`, logs it into the training run,
registers a version with its lineage (training run, test WER, dataset digests) and moves the
alias. `decoder` checks the decoder options and reads tuned weights; `publish` registers.
It comes after serving because the bundle's pyfunc is the serving stage's recognizer.
"""
