"""Streaming: final text against offline, work per chunk over a long stream, final-text latency,
and how many real-time WebSocket streams one server holds.

Run: .venv/bin/python benchmarks/streaming.py [--checkpoint-dir DIR --test-files CSV]
     [--n-hidden 256] [--stream-seconds 60] [--streams 16,32,64,96,128] [--markdown]

With a trained unidirectional checkpoint (`experiments/sample-streaming.yaml`) both graphs are
exported from it and every test-split utterance is transcribed offline and streamed (20 ms
chunks); without one, a random-weights model of width --n-hidden stands in (speed does not
depend on the weights; transcripts then compare random letters). Then, in this process:
one --stream-seconds stream of 20 ms chunks, each feed timed (first 10 % against last 10 %),
and the time `finish_stream` takes after the last chunk. Last, `deepspeech serve
--stream-model` on 127.0.0.1 and N clients in this process, each sending 20 ms chunks paced in
real time for --level-seconds: a partial's latency is the time from sending the chunk that
produced its text to receiving it (the stream API run here says which chunk that is), and the
final's is the time from EOS to the final message. Client and server share the 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
from inputs import speech_like_wav
from section import head, parse_args, print_result

# This script's folder holds benchmarks/serving.py, which would shadow the `serving` package;
# the server harness lives with the tests.
sys.path[0] = str(Path(__file__).resolve().parent.parent / "tests")

import websockets  # noqa: E402
from servers import run_server_process  # noqa: E402

from deepspeech.audio import SAMPLE_RATE, load_wav  # noqa: E402
from deepspeech.runtime.session import Placement  # noqa: E402
from serving.inference import open_model  # noqa: E402
from serving.stream import SpeechModel, Stream, to_pcm16  # noqa: E402

CHUNK_SAMPLES = SAMPLE_RATE // 50  # 20 ms, what an AudioWorklet or WebRTC source delivers
TARGET_GROWTH = 1.2  # last 10 % of chunks / first 10 %
TARGET_FINAL_MS = 100.0
TARGET_P99_MS = 300.0
TARGET_STREAMS = 32


def export_models(checkpoint_dir: Path | None, n_hidden: int, folder: Path) -> tuple[Path, Path]:
    """(whole-utterance graph, streaming graph) of the checkpoint, or of random weights."""
    import onnx

    from deepspeech.export.config import ExportConfig
    from deepspeech.export.convert import convert_streaming_to_onnx, convert_to_onnx, write_metadata
    from deepspeech.export.pipeline import export_model
    from deepspeech.runtime.graph import STREAM_GRAPH, ModelMetadata

    if checkpoint_dir:
        offline = export_model(ExportConfig(checkpoint_dir, folder / "model.onnx")).output
        stream = export_model(
            ExportConfig(checkpoint_dir, folder / "stream.onnx", streaming=True)
        ).output
        return offline, stream
    import keras

    from deepspeech.audio import FeatureConfig
    from deepspeech.model.birnn import build_birnn
    from deepspeech.model.config import ModelConfig
    from deepspeech.text import Alphabet

    keras.utils.set_random_seed(0)
    alphabet = Alphabet.default()
    model = build_birnn(ModelConfig(alphabet.num_classes, n_hidden=n_hidden, rnn="unidirectional"))
    metadata = ModelMetadata(alphabet, FeatureConfig(stride=2), n_hidden, rnn="unidirectional")
    paths = []
    for convert, graph in (
        (convert_to_onnx, "utterance"),
        (convert_streaming_to_onnx, STREAM_GRAPH),
    ):
        proto, _ = convert(model)
        write_metadata(proto, dataclasses.replace(metadata, graph=graph))
        paths.append(folder / f"{graph}.onnx")
        onnx.save(proto, paths[-1])
    return paths[0], paths[1]


def test_audio(test_files: Path | None) -> list[np.ndarray]:
    """int16 test utterances: the manifest's, or 20 speech-like clips."""
    if test_files:
        from deepspeech.data.manifest import read_manifest

        return [to_pcm16(load_wav(u.wav_path)) for u in read_manifest(test_files)]
    import io

    return [to_pcm16(load_wav(io.BytesIO(speech_like_wav(3.0, seed)))) for seed in range(20)]


def feed(model: SpeechModel, audio: np.ndarray) -> tuple[str, list[str]]:
    """Stream 20 ms chunks: (final text, text after each chunk)."""
    stream = model.create_stream()
    texts = []
    for start in range(0, len(audio), CHUNK_SAMPLES):
        stream.feed_audio_content(audio[start : start + CHUNK_SAMPLES])
        texts.append(stream.intermediate_decode())
    return stream.finish_stream(), texts


def compare_offline(offline_path: Path, model: SpeechModel, utterances: list[np.ndarray]):
    offline = open_model(offline_path, placement=Placement(threads=1))
    same = 0
    for audio in utterances:
        expected = offline.transcribe_features([offline.features(audio / 32768.0)])[0]
        same += feed(model, audio)[0] == expected
    return same


def chunk_times(model: SpeechModel, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Seconds per 20 ms feed over the whole stream; the same for a fresh stream fed the same
    first chunks interleaved with the long stream's last 10 % (side by side, so machine noise
    hits both); and the seconds finish_stream took."""
    long, fresh = model.create_stream(), model.create_stream()
    starts = list(range(0, len(audio), CHUNK_SAMPLES))
    tenth = len(starts) // 10
    times, fresh_times = [], []
    for i, start in enumerate(starts):
        times.append(_timed_feed(long, audio[start : start + CHUNK_SAMPLES]))
        if i >= len(starts) - tenth:
            begin = starts[i - (len(starts) - tenth)]
            fresh_times.append(_timed_feed(fresh, audio[begin : begin + CHUNK_SAMPLES]))
    begin = time.perf_counter()
    long.finish_stream()
    return np.array(times), np.array(fresh_times), time.perf_counter() - begin


def _timed_feed(stream: Stream, chunk: np.ndarray) -> float:
    begin = time.perf_counter()
    stream.feed_audio_content(chunk)
    stream.intermediate_decode()
    return time.perf_counter() - begin


def finish_latencies(model: SpeechModel, utterances: list[np.ndarray]) -> np.ndarray:
    """Seconds from the last chunk fed to the final text, per utterance (in process)."""
    return np.array([chunk_times(model, audio)[2] for audio in utterances])


@dataclass
class Level:
    streams: int
    partial_ms: np.ndarray
    final_ms: np.ndarray
    wrong_finals: int
    errors: int

    @property
    def p99(self) -> float:
        return float(np.percentile(self.partial_ms, 99)) if len(self.partial_ms) else float("nan")


async def one_client(url: str, audio: np.ndarray, texts: list[str], final: str, start: float):
    """A real-time client: (partial latencies ms, final latency ms, final text right)."""
    first_chunk_of = {}
    for i, text in enumerate(texts):
        first_chunk_of.setdefault(text, i)
    sent: list[float] = []
    partial_ms: list[float] = []
    async with websockets.connect(url, max_size=None) as ws:

        async def receive() -> tuple[float, bool]:
            async for message in ws:
                now = time.perf_counter()
                data = json.loads(message)
                if data.get("final"):
                    return now, data["text"] == final
                if "error" in data:
                    raise RuntimeError(data)
                partial_ms.append((now - sent[first_chunk_of[data["text"]]]) * 1e3)
            raise RuntimeError("closed before the final text")

        receiver = asyncio.create_task(receive())
        for i, begin in enumerate(range(0, len(audio), CHUNK_SAMPLES)):
            due = start + i * CHUNK_SAMPLES / SAMPLE_RATE
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            sent.append(time.perf_counter())
            await ws.send(audio[begin : begin + CHUNK_SAMPLES].tobytes())
        eos = time.perf_counter()
        await ws.send("EOS")
        received, right = await receiver
    return partial_ms, (received - eos) * 1e3, right


async def run_level(url: str, streams: int, clips: list[tuple[np.ndarray, list[str], str]]):
    start = time.perf_counter() + 0.5
    tasks = [
        one_client(url, *clips[i % len(clips)], start + (i / streams) * 0.02)  # spread in a chunk
        for i in range(streams)
    ]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    good = [r for r in results if not isinstance(r, BaseException)]
    return Level(
        streams,
        np.array([ms for r in good for ms in r[0]]),
        np.array([r[1] for r in good]),
        sum(not r[2] for r in good),
        len(results) - len(good),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint-dir", type=Path, help="a unidirectional training run")
    parser.add_argument("--test-files", type=Path, help="test manifest for the comparison")
    parser.add_argument("--n-hidden", type=int, default=256, help="random model's width")
    parser.add_argument("--stream-seconds", type=float, default=60.0)
    parser.add_argument("--level-seconds", type=float, default=10.0, help="audio per client")
    parser.add_argument("--streams", default="16,32,64,96,128", help="clients per level")
    args = parse_args(parser)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    utterances = test_audio(args.test_files)
    with tempfile.TemporaryDirectory() as folder:
        offline_path, stream_path = export_models(args.checkpoint_dir, args.n_hidden, Path(folder))
        model = SpeechModel(stream_path)
        same = compare_offline(offline_path, model, utterances)
        long_audio = np.concatenate(
            utterances * (1 + int(args.stream_seconds * SAMPLE_RATE) // sum(map(len, utterances)))
        )
        long_audio = long_audio[: int(args.stream_seconds * SAMPLE_RATE)]
        times, fresh, _ = chunk_times(model, long_audio)
        tenth = len(times) // 10
        growth = times[-tenth:].mean() / times[:tenth].mean()
        side_by_side = times[-tenth:].mean() / fresh.mean()
        finals = finish_latencies(model, utterances[:50]) * 1e3

        clip = np.concatenate(utterances)[: int(args.level_seconds * SAMPLE_RATE)]
        clips = []
        for shift in range(4):  # four different clips, so streams do not run in lockstep
            audio = np.roll(clip, shift * SAMPLE_RATE)
            final, texts = feed(model, audio)
            clips.append((audio, texts, final))
        levels = []
        with run_server_process(
            offline_path, "--device", "cpu", "--stream-model", str(stream_path),
            "--max-streams", "256",
        ) as server:  # fmt: skip
            url = server.url.replace("http://", "ws://") + "/v1/stream"
            asyncio.run(run_level(url, 2, clips))  # warm-up
            for streams in (int(n) for n in args.streams.split(",")):
                level = asyncio.run(run_level(url, streams, clips))
                levels.append(level)
                if not args.markdown:
                    p50, final = np.percentile(level.partial_ms, 50), np.median(level.final_ms)
                    print(
                        f"{streams} streams: partial p50 {p50:.0f} ms, p99 {level.p99:.0f} ms, "
                        f"final p50 {final:.0f} ms, wrong finals {level.wrong_finals}, "
                        f"errors {level.errors}",
                        flush=True,
                    )
    held = max(
        (
            lv.streams
            for lv in levels
            if lv.p99 <= TARGET_P99_MS and not lv.errors and not lv.wrong_finals
        ),
        default=0,
    )
    report(args, len(utterances), same, times, (growth, side_by_side), finals, levels, held)


def report(args, n_utterances, same, times, growths, finals, levels, held) -> None:
    growth, side_by_side = growths
    tenth = len(times) // 10
    lines = [
        f"Final transcript identical to offline on {same} of {n_utterances} utterances "
        f"(target: all: {'met' if same == n_utterances else 'NOT met'}).",
        f"Work per 20 ms chunk on a {args.stream_seconds:g} s stream: last 10 % / first 10 % = "
        f"{growth:.2f}× ({times[-tenth:].mean() * 1e3:.3f} ms / {times[:tenth].mean() * 1e3:.3f} "
        f"ms; target ≤ {TARGET_GROWTH:g}×: {'met' if growth <= TARGET_GROWTH else 'NOT met'}); "
        f"against a fresh stream fed its first chunks side by side with those last chunks: "
        f"{side_by_side:.2f}×.",
        f"Final text {np.median(finals):.1f} ms (p95 {np.percentile(finals, 95):.1f} ms) after the "
        f"last chunk in process (target ≤ {TARGET_FINAL_MS:g} ms: "
        f"{'met' if np.percentile(finals, 95) <= TARGET_FINAL_MS else 'NOT met'}).",
        f"Real-time WebSocket streams held with partial p99 ≤ {TARGET_P99_MS:g} ms: {held}, the "
        f"most of the levels tried (target ≥ {TARGET_STREAMS}: "
        f"{'met' if held >= TARGET_STREAMS else 'NOT met'}).",
    ]
    if not args.markdown:
        print("\n".join(lines))
        return
    described = (
        f"`{args.checkpoint_dir}`"
        if args.checkpoint_dir
        else f"random weights, n_hidden {args.n_hidden}"
    )
    command = ".venv/bin/python benchmarks/streaming.py --markdown"
    if args.checkpoint_dir:
        command += f" --checkpoint-dir {args.checkpoint_dir} --test-files {args.test_files}"
    intro = (
        f"The streaming path (`serving.stream`, unidirectional model: {described}, stride 2) fed "
        "20 ms chunks: transcripts against the offline graph of the same model, time per chunk "
        "over a long stream, final-text latency, and concurrent real-time WebSocket clients "
        "of one `deepspeech serve --stream-model` (clients in the benchmark process, sharing "
        "the 2 cores with the server)."
    )
    machine = (
        f", Python {platform.python_version()}, onnxruntime {version('onnxruntime-gpu')}, "
        f"websockets {version('websockets')}"
    )
    table = [
        "| streams | partial p50 | partial p99 | final p50 | final p99 | wrong finals | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {lv.streams} | {np.percentile(lv.partial_ms, 50):.0f} ms | {lv.p99:.0f} ms | "
            f"{np.median(lv.final_ms):.0f} ms | {np.percentile(lv.final_ms, 99):.0f} ms | "
            f"{lv.wrong_finals} | {lv.errors} |"
            for lv in levels
        ),
    ]
    print_result(table, "\n\n".join(lines), head("Streaming", intro, command, machine=machine))


if __name__ == "__main__":
    main()
