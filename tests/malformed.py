"""Malformed WAV files: every way the bytes a user or a client sends as audio can be wrong.

The WAVs are built from a canonical 44-byte header written here field by field, so each case
names exactly which field it breaks. Each case says whether a reader must refuse it (`refuse`)
or may decode it (a decoder may recover audio from a wrong RIFF size, for instance); what no
case may ever do is crash a reader or make a server answer 5xx. Used by the reliability tests
and by `benchmarks/reliability.py`.
"""

from __future__ import annotations

import math
import random
import struct
from dataclasses import dataclass

import numpy as np

RATE = 16_000
PCM = 1
FLOAT = 3
HEADER_BYTES = 44
# (offset, struct format) of each canonical header field, by name
FIELDS = {
    "riff_size": (4, "<I"),
    "fmt_size": (16, "<I"),
    "format_tag": (20, "<H"),
    "channels": (22, "<H"),
    "sample_rate": (24, "<I"),
    "byte_rate": (28, "<I"),
    "block_align": (32, "<H"),
    "bits": (34, "<H"),
    "data_size": (40, "<I"),
}


@dataclass(frozen=True)
class BadWav:
    name: str
    data: bytes
    refuse: bool  # True: a reader must reject it; False: it may decode what is there


def wav(
    samples: bytes,
    *,
    rate: int = RATE,
    channels: int = 1,
    bits: int = 16,
    format_tag: int = PCM,
) -> bytes:
    """A canonical RIFF/WAVE file: RIFF header, 16-byte fmt chunk, data chunk."""
    block_align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", format_tag, channels, rate, rate * block_align, block_align, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(samples)) + samples
    return b"RIFF" + struct.pack("<I", len(body)) + body


def speech_like_pcm16(seconds: float, seed: int = 0) -> bytes:
    """Little-endian 16-bit samples of a buzzy tone with noise (content does not matter)."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * RATE)) / RATE
    audio = 0.3 * np.sin(2 * np.pi * 140 * t) * np.sin(np.pi * 2 * t) ** 2
    audio += 0.01 * rng.standard_normal(len(t))
    return (audio * 32767).astype("<i2").tobytes()


def with_field(data: bytes, field: str, value: int) -> bytes:
    """`data` with one canonical header field overwritten."""
    offset, fmt = FIELDS[field]
    out = bytearray(data)
    out[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    return bytes(out)


def malformed_wavs(valid: bytes, seed: int = 0) -> list[BadWav]:
    """The malformed corpus made from `valid`, a canonical PCM_16 mono WAV (see `wav`)."""
    assert valid[:4] == b"RIFF" and len(valid) > HEADER_BYTES + 1000, "need a canonical WAV"
    rng = random.Random(seed)
    cases: list[BadWav] = []

    def add(name: str, data: bytes, refuse: bool = True) -> None:
        cases.append(BadWav(name, data, refuse))

    # Cut off inside the header, at every byte: nothing decodable is left.
    for n in range(HEADER_BYTES + 1):
        add(f"truncated at header byte {n}", valid[:n])
    # Cut off inside the data, at an odd byte: the whole samples before the cut are audio.
    add("truncated mid-sample", valid[: HEADER_BYTES + 1001], refuse=False)

    # Wrong sizes. Decoders read what is there when a size overstates it.
    too_big = len(valid) * 1000
    for field, value in [("riff_size", 0), ("riff_size", 1), ("riff_size", 0xFFFFFFFF),
                         ("riff_size", too_big), ("data_size", 1), ("data_size", 0xFFFFFFF0),
                         ("data_size", too_big), ("data_size", 3)]:  # fmt: skip
        add(f"{field} {value}", with_field(valid, field, value), refuse=False)
    add("data_size 0", with_field(valid, "data_size", 0))
    for value in (0, 1, 8, 0xFFFFFFFF):
        add(f"fmt chunk size {value}", with_field(valid, "fmt_size", value))

    # Header values no audio has.
    for value in (0, 17, 0xFFFF):
        refuse = value != 17  # a 17-channel file is odd, but decodable
        add(f"{value} channels", with_field(valid, "channels", value), refuse=refuse)
    for value in (0, 1, 7, 10**7, 0xFFFFFFFF):
        add(f"sample rate {value} Hz", with_field(valid, "sample_rate", value))
    for value in (0, 1, 7, 13, 64, 0xFFFF):
        # Fewer bits than the block holds is legal WAV (12-bit audio in 16-bit containers).
        refuse = value in (0, 64, 0xFFFF)
        add(f"{value} bits per sample", with_field(valid, "bits", value), refuse=refuse)
    add("block align 0", with_field(valid, "block_align", 0), refuse=False)
    add("byte rate 0", with_field(valid, "byte_rate", 0), refuse=False)

    # Encodings that are not PCM: unknown, compressed without their extra fields, extensible
    # without its extension, float at 16 bits.
    for tag, name in [(0, "unknown"), (2, "MS ADPCM"), (0x55, "MP3"), (0x161, "WMA"),
                      (0xFFFE, "WAVE_FORMAT_EXTENSIBLE"), (0x1234, "unregistered")]:  # fmt: skip
        add(f"format tag {tag:#x} ({name})", with_field(valid, "format_tag", tag))
    add("float format at 16 bits", with_field(valid, "format_tag", FLOAT))

    # Float samples that are not numbers.
    n = 4000
    for value in (math.nan, math.inf, -math.inf):
        samples = np.zeros(n, "<f4")
        samples[n // 2] = value
        add(f"float samples with {value}", wav(samples.tobytes(), bits=32, format_tag=FLOAT))
    add("float samples all NaN", wav(np.full(n, np.nan, "<f4").tobytes(), bits=32, format_tag=3))

    # Nothing to decode.
    add("valid WAV of 0 samples", wav(b""))
    add("empty body", b"")
    add("RIFF but not WAVE", b"RIFF" + valid[4:8] + b"AVI " + valid[12:])
    add("WAVE without a data chunk", valid[:36])
    add("data chunk before fmt", valid[:12] + valid[36:] + valid[12:36])

    # Random bytes, bare and behind a valid-looking RIFF/WAVE start.
    for size in (1, 3, 44, 1000, 65_536):
        add(f"{size} random bytes", rng.randbytes(size))
    add("RIFF/WAVE header then random bytes", valid[:12] + rng.randbytes(4000))
    add("random header, valid data", rng.randbytes(HEADER_BYTES) + valid[HEADER_BYTES:])

    # Other containers and text.
    add("a text file", b"speech is not text\n" * 100)
    add("JSON", b'{"audio": "not here"}')
    add("FLAC magic then garbage", b"fLaC" + rng.randbytes(2000))
    return cases
