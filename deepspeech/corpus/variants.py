"""A corpus under conditions its model never saw, for fine-tuning experiments.

- `telephone`: the same utterances through a narrow-band telephone line: the G.712 band
  (300-3400 Hz), 8 kHz sampling and 8-bit G.711 mu-law coding (libsndfile's own encoder), then
  back to 16 kHz, the rate the model reads. What a model trained on wide-band speech meets
  on a call-centre recording.
- `digits`: the same audio, with numbers written as digits ("there are 7 cats"): a new
  alphabet (the default one plus 0-9), so the output layer cannot be carried over.

`make_variant` writes `OUT/<split>.csv` for each split of a source corpus (and the WAVs, or
the alphabet file, the variant needs), for `train --init-from` against training from scratch
(benchmarks/finetune.py).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly

from deepspeech.audio import SAMPLE_RATE, load_wav, write_wav
from deepspeech.corpus.grammar import NUMBERS
from deepspeech.data.augment import TELEPHONE_BAND_HZ, band_pass
from deepspeech.data.manifest import Utterance, read_manifest, write_manifest
from deepspeech.errors import ConfigError
from deepspeech.text import Alphabet

TELEPHONE_RATE = 8000  # narrow-band telephony samples at 8 kHz
DIGITS = "0123456789"
# The grammar's numbers are two..ten; "one" is left alone (it is also a pronoun).
DIGIT_OF = {word: str(value) for value, word in enumerate(NUMBERS, start=2)}
VARIANTS = ("telephone", "digits")
ALPHABET_FILE = "alphabet.txt"  # written by the digits variant: train with --alphabet it


def telephone_channel(audio: np.ndarray) -> np.ndarray:
    """16 kHz float audio -> the G.712 band -> 8 kHz -> 8-bit mu-law -> back to 16 kHz."""
    narrow = resample_poly(band_pass(audio, *TELEPHONE_BAND_HZ), TELEPHONE_RATE, SAMPLE_RATE)
    coded = io.BytesIO()
    soundfile.write(coded, np.clip(narrow, -1.0, 1.0), TELEPHONE_RATE, "ULAW", format="WAV")
    coded.seek(0)
    decoded, _ = soundfile.read(coded, dtype="float32")
    wide = resample_poly(decoded, SAMPLE_RATE, TELEPHONE_RATE)[: len(audio)]
    return np.clip(wide, -1.0, 1.0).astype(np.float32)


def digits_transcript(text: str) -> str:
    """'there are seven cats' -> 'there are 7 cats'."""
    return " ".join(DIGIT_OF.get(word, word) for word in text.split(" "))


def digits_alphabet() -> Alphabet:
    return Alphabet([*Alphabet.default().labels, *DIGITS])


def make_variant(
    kind: str,
    manifests: Mapping[str, Path],
    out_dir: Path,
    progress: Callable[[int], None] = lambda n: None,
) -> dict[str, Path]:
    """The `kind` variant of each split's manifest under `out_dir`; {split: new manifest}.
    WAVs already written are reused, so an interrupted run goes on where it stopped."""
    if kind not in VARIANTS:
        raise ConfigError(f"variant {kind!r}: choose one of {', '.join(VARIANTS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, manifest in manifests.items():
        rows = []
        for utterance in read_manifest(manifest):
            rows.append(_variant_row(kind, utterance, out_dir / "wav" / split))
            progress(1)
        written[split] = out_dir / f"{split}.csv"
        write_manifest(written[split], rows)
    if kind == "digits":
        digits_alphabet().to_file(out_dir / ALPHABET_FILE)
    return written


def _variant_row(kind: str, utterance: Utterance, wav_dir: Path) -> Utterance:
    if kind == "digits":
        return Utterance(
            utterance.wav_path, utterance.wav_filesize, digits_transcript(utterance.transcript)
        )
    target = wav_dir / utterance.wav_path.name
    if not target.is_file():  # write_wav is atomic: a file that exists is complete
        write_wav(target, telephone_channel(load_wav(utterance.wav_path)))
    return Utterance(target, target.stat().st_size, utterance.transcript)
