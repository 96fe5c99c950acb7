"""WER reports: the 2017 `calculate_report` plus corpus-level WER/CER and best/median/worst.

The 2017 report averages per-sample WER, which lets short utterances dominate; corpus figures
(total edits / total reference units) are what papers quote, so both are shown side by side.
The sums are `deepspeech.metrics`'s; this module picks and formats the samples.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from deepspeech.metrics import corpus_rate, error_rate, mean_rate
from deepspeech.text import char_errors, word_errors


@dataclass(frozen=True)
class Sample:
    """One decoded utterance with its loss and error counts."""

    wav_filename: str
    original: str
    result: str
    loss: float
    word_edits: int
    words: int
    char_edits: int
    chars: int

    @property
    def wer(self) -> float:
        return error_rate(self.word_edits, self.words)

    @property
    def cer(self) -> float:
        return error_rate(self.char_edits, self.chars)


def make_sample(wav_filename: str, original: str, result: str, loss: float) -> Sample:
    word_edits, words = word_errors(original, result)
    char_edits, chars = char_errors(original, result)
    return Sample(wav_filename, original, result, float(loss), word_edits, words, char_edits, chars)


@dataclass(frozen=True)
class WerReport:
    """What a person reads after an epoch: corpus figures, 2017 mean WER and example samples."""

    set_name: str
    n_samples: int
    mean_loss: float
    mean_wer: float  # 2017: mean of per-sample WER
    wer: float  # corpus: total word edits / total reference words
    cer: float  # corpus: total char edits / total reference chars
    worst_samples: tuple[Sample, ...]  # 2017: report_count lowest-loss samples with WER > 0
    best: Sample | None
    median: Sample | None
    worst: Sample | None

    def to_dict(self) -> dict[str, Any]:
        def sample_dict(s: Sample | None) -> dict[str, Any] | None:
            if s is None:
                return None
            return {**dataclasses.asdict(s), "wer": s.wer, "cer": s.cer}

        return {
            "set": self.set_name,
            "n_samples": self.n_samples,
            "mean_loss": self.mean_loss,
            "mean_wer": self.mean_wer,
            "wer": self.wer,
            "cer": self.cer,
            "samples": [sample_dict(s) for s in self.worst_samples],
            "best": sample_dict(self.best),
            "median": sample_dict(self.median),
            "worst": sample_dict(self.worst),
        }

    def to_text(self) -> str:
        rule = "-" * 80
        lines = [
            rule,
            f"{self.set_name}: {self.n_samples} samples - WER {self.wer:.2%}, CER {self.cer:.2%} "
            f"(mean per-sample WER {self.mean_wer:.2%}), mean loss {self.mean_loss:.3f}",
            rule,
        ]
        for title, samples in (
            ("lowest-loss samples with errors", self.worst_samples),
            ("best / median / worst", (self.best, self.median, self.worst)),
        ):
            shown = [s for s in samples if s is not None]
            if not shown:
                continue
            lines.append(f"{title}:")
            for s in shown:
                lines += [
                    f"  WER {s.wer:.3f}, CER {s.cer:.3f}, loss {s.loss:.3f}  {s.wav_filename}",
                    f"   - src: {s.original!r}",
                    f"   - res: {s.result!r}",
                ]
            lines.append(rule)
        return "\n".join(lines)


def calculate_report(set_name: str, samples: Sequence[Sample], report_count: int) -> WerReport:
    """Summarise decoded samples the 2017 way, plus corpus WER/CER and best/median/worst."""
    n = len(samples)
    if n == 0:
        raise ValueError(f"{set_name}: no samples to report on")
    with_errors = sorted((s for s in samples if s.wer > 0), key=lambda s: s.loss)[:report_count]
    by_wer = sorted(samples, key=lambda s: (s.wer, s.loss))
    return WerReport(
        set_name=set_name,
        n_samples=n,
        mean_loss=sum(s.loss for s in samples) / n,
        mean_wer=mean_rate((s.word_edits, s.words) for s in samples),
        wer=corpus_rate((s.word_edits, s.words) for s in samples),
        cer=corpus_rate((s.char_edits, s.chars) for s in samples),
        worst_samples=tuple(sorted(with_errors, key=lambda s: s.wer)),
        best=by_wer[0],
        median=by_wer[n // 2],
        worst=by_wer[-1],
    )
