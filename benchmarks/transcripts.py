"""Transcripts: word timing error, hour-long recordings, hot words and confidence of a model.

Run: .venv/bin/python benchmarks/transcripts.py [--model runs/sample/model.onnx]
     [--lm runs/sample/lm.arpa] [--corpus runs/sample-corpus] [--hours 1] [--short-minutes 10]
     [--hot-words WORD,...] [--boosts 2,4,8,12] [--markdown]

All on the corpus' test split (voices and sentences training never saw), with the exported
model `--model` (make run's by default):

1. Word timing: each clip transcribed greedy and with beam + LM (`stt_with_metadata`); where the
   hypothesis' words are the truth's (`<split>.words.jsonl`), each word's start against the
   true start: |error| median and p95, and the signed median (lag).
2. Recordings: test clips in order (repeated as needed), each after a pause of 0.5-1.5 s of
   pink noise 30 dB below that clip's power, written as a `--short-minutes` WAV and a `--hours`
   one (the short one is the long one's beginning). `deepspeech transcribe --format srt`
   (greedy, CPU) runs on each in a child process of its own: wall time (model load included)
   against the audio's length, the child's peak RSS (wait4), and the WER of the subtitles'
   words against the joined transcripts, beside the same clips transcribed one by one.
3. Hot words: an LM built from the training transcripts less every sentence holding one of
   `--hot-words`, so it never saw them; the test clips decoded with beam + that LM without
   and with each of them boosted (`add_hot_word`) by each of `--boosts` nats. Recall of the hot
   words in the clips that hold them, and the WER of the clips that hold none (decoded with the
   same hot words active) against no boost.
4. Confidence: the test clips in pink noise at 10 dB SNR (seed per clip), greedy; the share of
   all word errors held by the 20 % of clips with the lowest `Metadata.best.confidence`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import srt
from section import head, parse_args, print_result

# This script's folder holds benchmarks/serving.py, which would shadow the `serving` package.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from deepspeech.audio import SAMPLE_RATE, load_wav  # noqa: E402
from deepspeech.corpus.word_times import read_word_times, word_times_path  # noqa: E402
from deepspeech.data.augment import add_noise, colored_noise, power  # noqa: E402
from deepspeech.data.manifest import Utterance, read_manifest  # noqa: E402
from deepspeech.decoding.decoders import DecoderConfig  # noqa: E402
from deepspeech.decoding.lm import build_kneser_ney  # noqa: E402
from deepspeech.decoding.transcript import Metadata, decode_with_metadata  # noqa: E402
from deepspeech.metrics import corpus_rate, word_edit_counts  # noqa: E402
from deepspeech.text import word_errors  # noqa: E402
from deepspeech.vad import VadSettings  # noqa: E402
from serving.inference import OfflineRecognizer, open_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEEPSPEECH = Path(sys.executable).parent / "deepspeech"
PAUSE_SECONDS = (0.5, 1.5)  # between clips in a recording, drawn uniformly
PAUSE_NOISE_DB = -30.0  # pink noise in the pauses, relative to the next clip's power
NOISE_SNR_DB = 10.0  # the confidence test's pink noise
LEAST_CONFIDENT = 0.2  # the share of clips flagged by their confidence
HOT_WORDS = ("library", "teacher", "garage", "kitchen", "station", "market", "office", "bottle",
             "window", "sofa", "shelf", "yellow", "tomorrow", "quietly", "painted")  # fmt: skip
LM_ORDER = 3  # as `make run` builds its LM
TARGET_MEDIAN_MS, TARGET_P95_MS = 50.0, 150.0
TARGET_REAL_TIME = 100.0
TARGET_PEAK_MB, TARGET_PEAK_GROWTH = 1000.0, 1.2
TARGET_WER_GAP = 1.0  # points over clip by clip
TARGET_RECALL, TARGET_OTHER_RISE = 0.8, 0.5  # hot-word recall; other words' WER rise (points)
TARGET_ERROR_SHARE = 0.5  # of all word errors, in the least confident 20 %


@dataclass(frozen=True)
class Timing:
    """Word start errors (hypothesis - truth, seconds) where the words were right."""

    errors: np.ndarray  # (n_words,)
    utterances: int  # compared: the hypothesis' words are the truth's
    timed: int  # utterances the truth times

    def cell(self) -> str:
        ms = self.errors * 1e3
        return (
            f"{np.median(np.abs(ms)):.0f} ms median, {np.percentile(np.abs(ms), 95):.0f} ms "
            f"p95, {np.median(ms):+.0f} ms lag ({len(ms)} words of {self.utterances} of "
            f"{self.timed} timed clips)"
        )


def word_timing(found: Sequence[Metadata], utterances: Sequence[Utterance], corpus: Path) -> Timing:
    """Start errors of the words of each clip whose hypothesis words equal its true words."""
    truth = read_word_times(word_times_path(corpus / "test.csv"))
    errors: list[float] = []
    compared = timed = 0
    for metadata, utterance in zip(found, utterances, strict=True):
        true_words = truth.get(utterance.wav_path.relative_to(corpus.resolve()).as_posix())
        if not true_words:
            continue
        timed += 1
        words = metadata.best.words
        if [w.word for w in words] != [w.word for w in true_words]:
            continue
        compared += 1
        errors += [w.start_time - t.start for w, t in zip(words, true_words, strict=True)]
    return Timing(np.array(errors), compared, timed)


def write_recording(
    path: Path, clips: Sequence[np.ndarray], seconds: float, seed: int
) -> list[int]:
    """A WAV of `clips` in order (again from the first when they run out), each after a pause
    of pink noise, until `seconds` are written: the clips' indices, in order."""
    rng = np.random.default_rng(seed)
    order: list[int] = []
    written = 0
    with soundfile.SoundFile(path, "w", SAMPLE_RATE, 1, "PCM_16") as out:
        while written < seconds * SAMPLE_RATE:
            index = len(order) % len(clips)
            clip = clips[index]
            pause = pause_noise(round(rng.uniform(*PAUSE_SECONDS) * SAMPLE_RATE), clip, rng)
            out.write(np.concatenate([pause, clip]))
            order.append(index)
            written += len(pause) + len(clip)
    return order


def pause_noise(n_samples: int, clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n_samples,) float32 pink noise PAUSE_NOISE_DB below `clip`'s power."""
    level = np.sqrt(power(clip) * 10 ** (PAUSE_NOISE_DB / 10))
    return (colored_noise(n_samples, "pink", rng) * level).astype(np.float32)


@dataclass(frozen=True)
class Recording:
    audio_seconds: float
    wall_seconds: float
    peak_mb: float  # the child's peak RSS (ru_maxrss), 10^6 bytes
    wer: float  # of the subtitles' words against the clips' joined transcripts
    clip_wer: float  # of the same clips transcribed one by one

    @property
    def real_time(self) -> float:
        return self.audio_seconds / self.wall_seconds


def transcribe_recording_child(
    model: Path, wav: Path, folder: Path, references: Sequence[str], clip_texts: Sequence[str]
) -> Recording:
    """`deepspeech transcribe --format srt` on `wav` in a child process: time, peak RSS, WER.

    `references` and `clip_texts` are the recording's clips' transcripts and their one-by-one
    hypotheses, in order."""
    subtitles, log = folder / f"{wav.stem}.srt", folder / f"{wav.stem}.log"
    command = [str(DEEPSPEECH), "transcribe", "--model", str(model), "--device", "cpu",
               str(wav), "--format", "srt"]  # fmt: skip
    begin = time.perf_counter()
    with subtitles.open("w") as stdout, log.open("w") as stderr:
        child = subprocess.Popen(command, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage
    wall = time.perf_counter() - begin
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise RuntimeError(f"{' '.join(command)} exited {child.returncode}: {log.read_text()}")
    text = " ".join(cue.content.replace("\n", " ") for cue in srt.parse(subtitles.read_text()))
    reference = " ".join(references)
    return Recording(
        soundfile.info(str(wav)).duration,
        wall,
        usage.ru_maxrss * 1024 / 1e6,  # KiB on Linux
        corpus_rate([word_errors(reference, text)]),
        corpus_rate([word_errors(reference, " ".join(clip_texts))]),
    )


def edges_wer(
    model: OfflineRecognizer, utterances: Sequence[Utterance], clips: Sequence[np.ndarray]
) -> float:
    """Greedy WER of each clip alone with the pause noise the segmenter keeps around speech
    (VadSettings.padding_ms) before and after it: the recording's segments, without cutting."""
    pad = VadSettings().padding_ms * SAMPLE_RATE // 1000
    rng = np.random.default_rng(0)
    texts = []
    for clip in clips:
        noise = pause_noise(2 * pad, clip, rng)
        texts.append(model.stt(np.concatenate([noise[:pad], clip, noise[pad:]])))
    return corpus_rate(word_edit_counts([u.transcript for u in utterances], texts))


@dataclass(frozen=True)
class HotWordTrial:
    boost: float
    recall: float  # of the hot words in the clips that hold them
    other_wer: float  # of the clips that hold none


def hot_word_trials(
    model_path: Path,
    corpus: Path,
    utterances: Sequence[Utterance],
    clips: Sequence[np.ndarray],
    hot_words: Sequence[str],
    boosts: Sequence[float],
    folder: Path,
) -> tuple[list[HotWordTrial], int, int]:
    """Beam + an LM that never saw `hot_words`, at boost 0 then each of `boosts`:
    (trials, hot-word occurrences, clips holding none)."""
    hot = set(hot_words)
    train = read_manifest(corpus / "train.csv", check_files=False)
    kept = [u.transcript for u in train if not hot & set(u.transcript.split())]
    lm = folder / "no-hot-words.arpa"
    build_kneser_ney(kept, LM_ORDER).write_arpa(lm)
    model = open_model(model_path, decoder=DecoderConfig(decoder="beam", lm_path=lm))
    probabilities = []  # the model's outputs, computed once and decoded at every boost
    for clip in clips:
        probs, lengths = model.model.run([model.features(clip)])
        probabilities.append(probs[0][: lengths[0]])
    holding = [i for i, u in enumerate(utterances) if hot & set(u.transcript.split())]
    others = sorted(set(range(len(utterances))) - set(holding))
    occurrences = sum(utterances[i].transcript.split().count(w) for i in holding for w in hot)
    trials = []
    for boost in (0.0, *boosts):
        model.clear_hot_words()
        for word in hot_words if boost else ():
            model.add_hot_word(word, boost)
        texts = [
            decode_with_metadata(
                model.decoder, p, model.metadata.alphabet, model.metadata.features.frame_seconds
            ).text
            for p in probabilities
        ]
        found = sum(
            min(utterances[i].transcript.split().count(w), texts[i].split().count(w))
            for i in holding
            for w in hot
        )
        other = corpus_rate(
            word_edit_counts([utterances[i].transcript for i in others], [texts[i] for i in others])
        )
        trials.append(HotWordTrial(boost, found / occurrences, other))
    return trials, occurrences, len(others)


@dataclass(frozen=True)
class Confidence:
    share: float  # of all word errors, in the least confident LEAST_CONFIDENT of clips
    ceiling: float  # in the LEAST_CONFIDENT of clips with the most errors
    errors: int
    wer: float


def confidence_ranking(
    model: OfflineRecognizer, utterances: Sequence[Utterance], clips: Sequence[np.ndarray]
) -> Confidence:
    """Greedy on the clips in pink noise at NOISE_SNR_DB: where the word errors are when the
    clips are ranked by their confidence."""
    confidences, counts = [], []
    for index, (utterance, clip) in enumerate(zip(utterances, clips, strict=True)):
        rng = np.random.default_rng([index, int(NOISE_SNR_DB)])
        noisy = np.clip(add_noise(clip, colored_noise(clip.size, "pink", rng), NOISE_SNR_DB), -1, 1)
        metadata = model.stt_with_metadata(noisy)
        confidences.append(metadata.best.confidence)
        counts.append(word_errors(utterance.transcript, metadata.text))
    edits = np.array([e for e, _ in counts])
    flagged = round(LEAST_CONFIDENT * len(clips))
    least_sure = np.argsort(confidences, kind="stable")[:flagged]
    total = max(int(edits.sum()), 1)
    return Confidence(
        edits[least_sure].sum() / total,
        np.sort(edits)[::-1][:flagged].sum() / total,
        int(edits.sum()),
        corpus_rate(counts),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("runs/sample/model.onnx"))
    parser.add_argument("--lm", type=Path, default=Path("runs/sample/lm.arpa"))
    parser.add_argument("--corpus", type=Path, default=Path("runs/sample-corpus"))
    parser.add_argument("--hours", type=float, default=1.0, help="the long recording's length")
    parser.add_argument("--short-minutes", type=float, default=10.0, help="the short one's")
    parser.add_argument("--hot-words", default=",".join(HOT_WORDS), help="comma-separated")
    parser.add_argument("--boosts", default="2,4,8,12", help="nats, comma-separated")
    args = parse_args(parser)
    load_before = os.getloadavg()[0]
    utterances = read_manifest(args.corpus / "test.csv")
    hot_words = args.hot_words.split(",")
    unheard = [w for w in hot_words if not any(w in u.transcript.split() for u in utterances)]
    if unheard:
        parser.error(f"--hot-words {','.join(unheard)}: in no test transcript; pick others")
    clips = [load_wav(u.wav_path) for u in utterances]

    greedy = open_model(args.model)
    beam = open_model(args.model, decoder=DecoderConfig(decoder="beam", lm_path=args.lm))
    greedy_found = [greedy.stt_with_metadata(clip) for clip in clips]
    timings = {
        "greedy": word_timing(greedy_found, utterances, args.corpus),
        "beam + LM": word_timing(
            [beam.stt_with_metadata(clip) for clip in clips], utterances, args.corpus
        ),
    }
    log(args, "; ".join(f"word timing, {name}: {t.cell()}" for name, t in timings.items()))

    recordings = {}
    with tempfile.TemporaryDirectory(prefix="bench-transcripts-", dir=ROOT / "runs") as tmp:
        folder = Path(tmp)
        for name, seconds in (("short", args.short_minutes * 60), ("long", args.hours * 3600)):
            wav = folder / f"{name}.wav"
            order = write_recording(wav, clips, seconds, seed=0)
            recordings[name] = transcribe_recording_child(
                args.model, wav, folder,
                [utterances[i].transcript for i in order], [greedy_found[i].text for i in order],
            )  # fmt: skip
            wav.unlink()
            log(args, f"{name} recording: {recordings[name]}")
        edges = edges_wer(greedy, utterances, clips)
        boosts = [float(b) for b in args.boosts.split(",")]
        trials, occurrences, others = hot_word_trials(
            args.model, args.corpus, utterances, clips, hot_words, boosts, folder
        )
        log(args, f"hot words: {trials}")
    confidence = confidence_ranking(greedy, utterances, clips)
    load = (load_before, os.getloadavg()[0])
    changed = [
        f"--{name.replace('_', '-')} {value}"
        for name, value in vars(args).items()
        if name != "markdown" and value != parser.get_default(name)
    ]
    hot = (trials, occurrences, others)
    report(args, changed, timings, recordings, edges, hot, confidence, load)


def log(args: argparse.Namespace, message: str) -> None:
    print(message, file=sys.stderr if args.markdown else sys.stdout, flush=True)


def chosen_boost(trials: Sequence[HotWordTrial]) -> tuple[HotWordTrial, bool]:
    """The smallest boost meeting both hot-word targets, else the largest tried: (it, met)."""
    baseline, *boosted = trials
    for trial in boosted:
        rise = (trial.other_wer - baseline.other_wer) * 100
        if trial.recall >= TARGET_RECALL and rise <= TARGET_OTHER_RISE:
            return trial, True
    return boosted[-1], False


def report(args, changed, timings, recordings, edges, hot, confidence, load) -> None:
    """Print the table and sentences; as a RESULTS.md section with `--markdown` (`changed`:
    the options given other than their defaults, for its command)."""
    trials, occurrences, others = hot
    short, long = recordings["short"], recordings["long"]
    growth = long.peak_mb / short.peak_mb
    gap = (long.wer - long.clip_wer) * 100
    baseline = trials[0]
    trial, hot_met = chosen_boost(trials)
    rise = (trial.other_wer - baseline.other_wer) * 100
    hours = f"{args.hours:g}-hour" if args.hours >= 1 else f"{args.hours * 60:g}-minute"
    minutes = f"{args.short_minutes:g}-minute"
    boost_name = f"boost {trial.boost:g}" + ("" if hot_met else " (none met the target)")
    table = [
        "| measured | value | target |",
        "|---|---|---|",
        *(
            f"| word start error, {name} | {timing.cell()} | ≤ {TARGET_MEDIAN_MS:g} ms median, "
            f"≤ {TARGET_P95_MS:g} ms p95 |"
            for name, timing in timings.items()
        ),
        f"| {hours} recording, greedy | {long.real_time:.0f}× real time, peak RSS "
        f"{long.peak_mb:.0f} MB, {growth:.2f}× the {minutes} one's | ≥ {TARGET_REAL_TIME:g}×; "
        f"≤ {TARGET_PEAK_MB / 1000:g} GB, ≤ {TARGET_PEAK_GROWTH:g}× |",
        f"| WER, {hours} recording against its clips one by one | {long.wer:.2%} against "
        f"{long.clip_wer:.2%} ({gap:+.2f} points) | ≤ +{TARGET_WER_GAP:g} point |",
        f"| hot words, {boost_name} | recall {trial.recall:.1%}, other clips' WER {rise:+.2f} "
        f"points | ≥ {TARGET_RECALL:.0%}, ≤ +{TARGET_OTHER_RISE:g} points |",
        f"| word errors in the least confident {LEAST_CONFIDENT:.0%} of clips, "
        f"{NOISE_SNR_DB:g} dB SNR | {confidence.share:.1%} | ≥ {TARGET_ERROR_SHARE:.0%} |",
    ]
    recalls = ", ".join(f"{t.recall:.1%}" for t in trials)
    wers = ", ".join(f"{t.other_wer:.2%}" for t in trials)
    lines = [
        f"The {hours} recording ran at {long.real_time:.0f}× real time in "
        f"{long.wall_seconds:.0f} s, model load included ({minutes}: {short.real_time:.0f}×; "
        f"target ≥ {TARGET_REAL_TIME:g}×: "
        f"{verdict(long.real_time >= TARGET_REAL_TIME)}), peak RSS {long.peak_mb:.0f} MB, "
        f"{growth:.2f}× the {minutes} one's {short.peak_mb:.0f} MB (targets ≤ "
        f"{TARGET_PEAK_MB / 1000:g} GB, ≤ {TARGET_PEAK_GROWTH:g}×: "
        f"{verdict(long.peak_mb <= TARGET_PEAK_MB and growth <= TARGET_PEAK_GROWTH)}).",
        f"Its WER is {long.wer:.2%} against {long.clip_wer:.2%} for its clips one by one "
        f"(target ≤ +{TARGET_WER_GAP:g} point: {verdict(gap <= TARGET_WER_GAP)}); each test "
        f"clip alone with the {VadSettings().padding_ms} ms of pause noise the segmenter keeps "
        f"on each side: {edges:.2%}.",
        f"Hot words ({len(args.hot_words.split(','))} words, {occurrences} in the test clips; the "
        f"LM never saw them): recall {recalls} and WER of the {others} clips without them "
        f"{wers} at boosts 0, {args.boosts.replace(',', ', ')} nats; the smallest boost "
        f"meeting both targets: {f'{trial.boost:g} nats' if hot_met else 'none'}.",
        f"In {NOISE_SNR_DB:g} dB pink noise (greedy WER {confidence.wer:.2%}, "
        f"{confidence.errors} word errors) the least confident {LEAST_CONFIDENT:.0%} of clips "
        f"hold {confidence.share:.1%} of the errors (target ≥ {TARGET_ERROR_SHARE:.0%}: "
        f"{verdict(confidence.share >= TARGET_ERROR_SHARE)}), against {LEAST_CONFIDENT:.0%} for "
        f"a random {LEAST_CONFIDENT:.0%} and {confidence.ceiling:.1%} for the "
        f"{LEAST_CONFIDENT:.0%} with the most errors.",
    ]
    if not args.markdown:
        print_result(table, " ".join(lines))
        return
    intro = (
        f"Transcripts of `{args.model}` on the test split of `{args.corpus}`: word start times "
        "against the corpus' word times (greedy; beam + LM), `deepspeech transcribe --format "
        f"srt` on a {minutes} and a {hours} recording of test clips joined by 0.5-1.5 s pauses "
        f"of pink noise at {PAUSE_NOISE_DB:g} dB (child processes), hot words the LM never saw "
        f"(beam + LM, `add_hot_word`), and confidence ranking at {NOISE_SNR_DB:g} dB SNR."
    )
    command = " ".join([".venv/bin/python benchmarks/transcripts.py --markdown", *changed])
    machine = f"; load average {load[0]:.1f} at the start, {load[1]:.1f} at the end"
    print_result(table, " ".join(lines), head("Transcripts", intro, command, machine=machine))


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


if __name__ == "__main__":
    main()
