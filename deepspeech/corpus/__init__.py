"""Corpora: each module turns one source into manifests + 16 kHz mono WAVs.

`sample` makes a synthetic English corpus with espeak-ng (offline, in about a minute), with
`espeak` (the ctypes binding), `grammar` (what is said) and `voices` (who says it) behind it.
Nothing is imported here, so using one corpus never loads another's dependencies.
"""

DEFAULT_UTTERANCES = 12_000  # sample corpus size: about 5 h of training audio, made in ~1 min
SPLITS = ("train", "dev", "test")  # the usual splits of a corpus, in the order listed
