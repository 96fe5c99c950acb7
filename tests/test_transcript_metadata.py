"""Timed transcripts, N-best and hot words: DeepSpeech 0.9.3's metadata API on hand-built
score matrices (known paths), then on real exported models (offline and streaming)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_decode import frames, spell

from deepspeech.audio import PCM16_SCALE, load_wav
from deepspeech.data.manifest import read_manifest
from deepspeech.decoding.decoders import BeamDecoder, DecoderConfig, GreedyDecoder
from deepspeech.decoding.hot_words import HotWordList, parse_hot_word, parse_hot_words
from deepspeech.decoding.lm import build_kneser_ney
from deepspeech.decoding.streaming import GreedyStreamDecoder
from deepspeech.decoding.transcript import candidate_from_path, decode_with_metadata, metadata_of
from deepspeech.errors import ConfigError
from deepspeech.runtime.session import Placement
from deepspeech.text import Alphabet
from serving.inference import open_model
from serving.stream import SpeechModel

ALPHABET = Alphabet.default()
BLANK = ALPHABET.blank_index
FRAME = 0.02  # seconds per frame at stride 2


def path_of(spec: list[str]) -> np.ndarray:
    return np.array([BLANK if c == "_" else ALPHABET.label_of(c) for c in spec])


def test_tokens_and_words_carry_the_frames_they_were_emitted_at() -> None:
    spec = ["_", "h", "h", "_", "i", "_", " ", " ", "_", "_", "y", "o", "o", "_", " "]
    probabilities = frames(*spec)
    probabilities[4] = frames({"i": 0.4})[0]  # an unsure "i"
    path = path_of(spec)
    along = probabilities[np.arange(len(path)), path]  # each frame's probability of its label
    found = candidate_from_path(path, along, ALPHABET, FRAME, offset=1.0)
    assert found.text == "hi yo"  # the trailing space is dropped, the middle ones folded
    assert [(t.text, t.timestep) for t in found.tokens] == [
        ("h", 1), ("i", 4), (" ", 6), ("y", 10), ("o", 11)
    ]  # fmt: skip
    hi, yo = found.words
    assert (hi.word, hi.start_time, hi.end_time) == ("hi", pytest.approx(1.02), pytest.approx(1.1))
    assert (yo.word, yo.start_time, yo.end_time) == ("yo", pytest.approx(1.2), pytest.approx(1.26))
    assert hi.confidence == pytest.approx(0.4) and yo.confidence == pytest.approx(0.98)
    assert found.confidence == pytest.approx(0.4)  # the least sure word
    later = found.shifted(2.0, timesteps=100)
    assert later.words[0].start_time == pytest.approx(3.02) and later.tokens[0].timestep == 101


def test_empty_and_blank_paths_give_empty_transcripts() -> None:
    for spec in ([], ["_", "_"], [" ", "_", " "]):
        path = path_of(spec)
        along = frames(*spec)[np.arange(len(path)), path] if spec else np.zeros(0)
        found = candidate_from_path(path, along, ALPHABET, FRAME)
        assert found.text == "" and found.words == () and found.confidence == 1.0


@pytest.mark.parametrize("decoder", [GreedyDecoder(ALPHABET), BeamDecoder(ALPHABET)])
def test_metadata_text_is_the_decoders_text(decoder) -> None:
    scores = frames(*spell("the cat "), {"s": 0.5, "z": 0.45}, "_", *spell("at"))
    metadata = decode_with_metadata(decoder, scores, ALPHABET, FRAME, num_results=4)
    assert metadata.text == decoder(scores)
    assert [w.word for w in metadata.best.words] == metadata.text.split()
    starts = [w.start_time for w in metadata.best.words]
    assert starts == sorted(starts)


def test_beam_gives_distinct_alternatives_best_first() -> None:
    scores = frames(*spell("the cat "), {"s": 0.5, "z": 0.45}, "_", *spell("at"))
    metadata = decode_with_metadata(BeamDecoder(ALPHABET), scores, ALPHABET, FRAME, num_results=3)
    texts = [t.text for t in metadata.transcripts]
    assert texts[:2] == ["the cat sat", "the cat zat"] and len(set(texts)) == 3
    assert [t.score for t in metadata.transcripts] == sorted(
        (t.score for t in metadata.transcripts), reverse=True
    )
    greedy = decode_with_metadata(GreedyDecoder(ALPHABET), scores, ALPHABET, FRAME, num_results=3)
    assert len(greedy.transcripts) == 1  # greedy has one hypothesis


@pytest.fixture(scope="module")
def lm_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lm") / "lm.arpa"
    build_kneser_ney(["the cat sat", "the cat ran", "the dog sat", "a cat sat"], 3).write_arpa(path)
    return path


def unsure_zed() -> np.ndarray:
    """Audio that is "the zed sat" by a hair's breadth less than "the zad sat"."""
    return frames(*spell("the z"), {"a": 0.5, "e": 0.45}, "_", *spell("d sat"))


@pytest.mark.parametrize("with_lm", [False, True])
def test_a_hot_word_unknown_to_the_lm_wins_when_boosted(with_lm: bool, lm_path: Path) -> None:
    decoder = BeamDecoder(ALPHABET, lm=lm_path if with_lm else None)
    scores = unsure_zed()
    plain = decode_with_metadata(decoder, scores, ALPHABET, FRAME).text
    hot = decode_with_metadata(decoder, scores, ALPHABET, FRAME, hot_words={"zed": 5.0}).text
    assert plain == "the zad sat" and hot == "the zed sat"
    # A negative boost suppresses a word the acoustics prefer.
    cold = decode_with_metadata(decoder, scores, ALPHABET, FRAME, hot_words={"zad": -5.0})
    assert cold.text == "the zed sat"


def test_hot_word_specs_are_checked() -> None:
    assert parse_hot_word("Kubernetes:7.5") == ("kubernetes", 7.5)
    assert parse_hot_words(["a:1", "b:-2", "a:3"], ALPHABET) == {"a": 3.0, "b": -2.0}
    for bad, message in [
        ("zed", "WORD:BOOST"),
        (":3", "WORD:BOOST"),
        ("zed:lots", "not a number"),
        ("zed:nan", "finite"),
        ("zed:1e6", "finite"),
        ("two words:3", "one word"),
        ("café:3", "not in the model's alphabet"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_hot_words([bad], ALPHABET)


def test_hot_words_need_the_beam_decoder() -> None:
    greedy = HotWordList(ALPHABET, beam=False)
    with pytest.raises(ConfigError, match="beam decoder"):
        greedy.add("zed", 3)
    with pytest.raises(ConfigError, match="beam decoder"):
        GreedyDecoder(ALPHABET).alignments(unsure_zed(), hot_words={"zed": 3.0})
    beam = HotWordList(ALPHABET, beam=True)
    beam.add("Zed", 3)
    assert beam.with_extra({"cat": 1.0}) == {"zed": 3.0, "cat": 1.0}
    beam.erase("zed")
    with pytest.raises(ConfigError, match="not a hot word"):
        beam.erase("zed")
    beam.add("zed", 3)
    beam.clear()
    assert len(beam) == 0


@pytest.fixture(scope="module")
def held_out_wavs(tiny_corpus: Path) -> list[Path]:
    return [u.wav_path for u in read_manifest(tiny_corpus / "test.csv")][:4]


def test_offline_model_metadata_api(random_onnx: Path, held_out_wavs: list[Path]) -> None:
    model = open_model(random_onnx, placement=Placement())
    for wav in held_out_wavs:
        audio = load_wav(wav)
        metadata = model.stt_with_metadata(np.round(audio * PCM16_SCALE).astype(np.int16))
        assert metadata.text == model.transcribe_features([model.features(audio)])[0]
        assert metadata.text == model.stt(audio)
        duration = len(audio) / 16000
        for word in metadata.best.words:
            assert 0 <= word.start_time < word.end_time <= duration + 0.05
            assert 0 <= word.confidence <= 1


def test_beam_hot_words_on_the_offline_model(
    random_onnx: Path, held_out_wavs: list[Path], lm_path: Path
) -> None:
    config = DecoderConfig(decoder="beam", beam_width=16, lm_path=lm_path)
    model = open_model(random_onnx, placement=Placement(), decoder=config)
    audio = load_wav(held_out_wavs[0])
    nbest = model.stt_with_metadata(audio, num_results=3).transcripts
    assert len(nbest) == 3 and len({t.text for t in nbest}) == 3
    target = nbest[1].text.split()[0]  # a word of the runner-up: boost it into first place
    model.add_hot_word(target, 30.0)
    assert target in model.stt(audio).split()
    model.clear_hot_words()
    assert model.stt(audio) == nbest[0].text


def test_stream_metadata_equals_the_offline_metadata(
    random_stream_onnx, held_out_wavs: list[Path], lm_path: Path
) -> None:
    utterance_onnx, stream_onnx = random_stream_onnx
    for config in (DecoderConfig(), DecoderConfig(decoder="beam", beam_width=16, lm_path=lm_path)):
        offline = open_model(utterance_onnx, placement=Placement(), decoder=config)
        model = SpeechModel(stream_onnx, decoder=config)
        for wav in held_out_wavs[:2]:
            audio = np.round(load_wav(wav) * PCM16_SCALE).astype(np.int16)
            expected = offline.stt_with_metadata(audio, num_results=2)
            stream = model.create_stream()
            for i in range(0, len(audio), 1234):
                stream.feed_audio_content(audio[i : i + 1234])
            partial = stream.intermediate_decode_with_metadata()
            assert partial.text == stream.intermediate_decode()
            found = stream.finish_stream_with_metadata(num_results=2)
            assert [t.text for t in found.transcripts] == [t.text for t in expected.transcripts]
            for ours, theirs in zip(found.best.words, expected.best.words, strict=True):
                assert ours.start_time == pytest.approx(theirs.start_time)
                assert ours.confidence == pytest.approx(theirs.confidence, abs=1e-4)


def test_a_greedy_stream_keeps_two_numbers_a_frame_for_its_timings() -> None:
    """A long greedy stream holds each frame's label and its probability, not the whole
    (n_frames, n_classes) matrix, and its timed transcript is the whole utterance's."""
    scores = frames(*spell("the cat sat on the mat ") * 40)
    stream = GreedyStreamDecoder(ALPHABET)
    for start in range(0, len(scores), 7):
        stream.accept(scores[start : start + 7])
    (kept,) = stream.alignments()
    assert kept.path.nbytes + kept.probabilities.nbytes <= 12 * len(scores)
    whole = decode_with_metadata(GreedyDecoder(ALPHABET), scores, ALPHABET, FRAME).best
    streamed = metadata_of([kept], ALPHABET, FRAME).best
    assert streamed.text == whole.text and streamed.words == whole.words
