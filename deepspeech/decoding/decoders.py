"""CTC decoding of per-frame label scores into text (NumPy; shared by training and serving).

Two decoders, one interface (`Decoder`: `(scores, length) -> text`), built from one frozen
`DecoderConfig` by `make_decoder`, so evaluation, transcription, serving and training decode
with the same settings:

- greedy: argmax per frame, merge repeats, drop blanks. No dependencies; the default.
- beam: CTC beam search with flashlight-text's lexicon-free decoder, optionally scoring each
  completed word with a KenLM word n-gram model (`deepspeech lm build`). Lexicon-free means the
  search runs over characters, so words the LM has never seen can still be spelt (they score
  as `<unk>`). A hypothesis scores

      sum of acoustic ln p(label | frame)  +  alpha * ln p_LM(words)  +  beta * n_words

  `alpha` weighs the LM against the acoustic model, `beta` rewards each word, offsetting the
  LM's preference for fewer, longer words; both are in nats (the LM's log10 is converted), so
  values tuned here carry over. `deepspeech.decoding.tuning` searches them on a dev set.

  A word the LM does not know gets p(<unk> | history) times a spelling probability, each
  letter 1/(number of letters), times 10^unk_offset. Without the spelling term an unknown
  word costs the same however long it is, and the search learns to glue a sentence into one
  long "word" to pay the price once; with it, long inventions are expensive and short
  unseen words stay affordable.

Scores may be logits or log-probabilities (training's Keras model gives logits) or
probabilities (the exported ONNX model ends in a softmax): `kind="auto"` tells them apart.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from deepspeech.config import setting
from deepspeech.decoding.hot_words import (
    HotWordList,
    HotWords,
    parse_hot_word,
    parse_hot_words,
    prefixes_of,
)
from deepspeech.decoding.lm import LanguageModel, load_language_model
from deepspeech.errors import ConfigError, LanguageModelError
from deepspeech.text import Alphabet

logger = logging.getLogger(__name__)

ScoreKind = Literal["auto", "logits", "probabilities"]
DecoderName = Literal["greedy", "beam"]
DECODERS: tuple[DecoderName, ...] = ("greedy", "beam")
DEFAULT_BEAM_WIDTH = 64
DEFAULT_ALPHA = 0.75  # LM weight; DeepSpeech 0.x shipped 0.75 too
DEFAULT_BETA = 1.0  # word bonus in nats
DEFAULT_UNK_OFFSET = 0.0  # log10 added to an unknown word's LM score, on top of its spelling
DEFAULT_TOKEN_BEAM = 8  # labels tried per frame and hypothesis: the likeliest ones
DEFAULT_BEAM_THRESHOLD = 20.0  # drop hypotheses this many nats behind the best one
_PROBABILITY_SUM_TOLERANCE = 1e-3  # rows of a softmax output sum to 1 within float32 error
_LOG_FLOOR = 1e-30  # ln(0) would be -inf; flashlight sums scores, so keep them finite
LN10 = math.log(10.0)


def greedy_decode(scores: np.ndarray, alphabet: Alphabet, length: int | None = None) -> str:
    """Best path decoding: argmax per frame, merge repeats, drop blanks.

    `scores` is (n_frames, n_classes) logits or probabilities (argmax is the same); only the
    first `length` frames are read, so padded frames of a batch never leak into the text.
    """
    _check_shape(scores, alphabet)
    best = np.argmax(scores[: scores.shape[0] if length is None else length], axis=1)
    if best.size == 0:
        return ""
    keep = np.ones(best.shape, dtype=bool)
    keep[1:] = best[1:] != best[:-1]
    collapsed = best[keep]
    return alphabet.decode(collapsed[collapsed != alphabet.blank_index])


def greedy_decode_batch(scores: np.ndarray, lengths: np.ndarray, alphabet: Alphabet) -> list[str]:
    """Decode a padded batch: scores (batch, n_frames, n_classes), lengths (batch,)."""
    return [greedy_decode(s, alphabet, int(n)) for s, n in zip(scores, lengths, strict=True)]


def to_log_probs(scores: np.ndarray, kind: ScoreKind = "auto") -> np.ndarray:
    """(n_frames, n_classes) scores -> natural-log probabilities, float32, C-contiguous.

    "logits" (log-probabilities too: log-softmax leaves them unchanged) are log-softmaxed;
    "probabilities" are logged, floored at 1e-30. "auto" takes non-negative rows that sum to 1
    for probabilities, anything else for logits.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if kind == "auto":
        kind = "probabilities" if looks_like_probabilities(scores) else "logits"
    if kind == "probabilities":
        log_probs = np.log(np.maximum(scores, _LOG_FLOOR))
    elif kind == "logits":
        shifted = scores - scores.max(axis=-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    else:
        raise ValueError(f"kind {kind!r} is not one of auto, logits, probabilities")
    return np.ascontiguousarray(log_probs, dtype=np.float32)


def greedy_alignment(scores: np.ndarray) -> Alignment:
    """Best path of (n_frames, n_classes) logits or probabilities, with each frame's
    probability of its label: argmax is the same either way, and a softmax's output needs no
    log-softmax of the whole matrix."""
    path = np.argmax(scores, axis=1)
    if looks_like_probabilities(scores):
        picked = np.asarray(scores, np.float32)[np.arange(len(path)), path]
        return Alignment(path, picked, float(np.log(np.maximum(picked, _LOG_FLOOR)).sum()))
    log_probs = to_log_probs(scores, "logits")
    return alignment_along(path, log_probs, float(log_probs[np.arange(len(path)), path].sum()))


def looks_like_probabilities(scores: np.ndarray) -> bool:
    """True when every row is non-negative and sums to 1, as a softmax output does."""
    if scores.size == 0:
        return False
    sums = scores.sum(axis=-1)
    return bool(
        scores.min() >= 0
        and np.abs(sums - 1).max() <= _PROBABILITY_SUM_TOLERANCE * scores.shape[-1]
    )


@dataclass(frozen=True)
class Alignment:
    """A hypothesis as the search found it: one label per frame, how likely the model found
    that label at that frame, and the hypothesis' log score.

    The path says where each character was emitted and its probabilities how sure the model
    was; `deepspeech.decoding.transcript` turns them into timed tokens and words. Only the
    path's own probabilities are kept, not the whole (n_frames, n_classes) matrix, so a greedy
    stream holds two numbers a frame.
    """

    path: np.ndarray  # (n_frames,) label ids, blank included
    probabilities: np.ndarray  # (n_frames,) p(path[t] | frame t)
    score: float


def alignment_along(path: np.ndarray, log_probs: np.ndarray, score: float) -> Alignment:
    """The Alignment of `path` through (n_frames, n_classes) natural-log probabilities."""
    picked = log_probs[np.arange(len(path)), path]
    return Alignment(path, np.exp(picked), score)


class Decoder(Protocol):
    """What evaluation, transcription and serving call: one utterance's scores -> text."""

    def __call__(self, scores: np.ndarray, length: int | None = None) -> str: ...

    def alignments(
        self,
        scores: np.ndarray,
        length: int | None = None,
        *,
        num_results: int = 1,
        hot_words: HotWords | None = None,
    ) -> list[Alignment]:
        """Up to `num_results` hypotheses with distinct texts, best first."""
        ...

    def decode_batch(self, scores: np.ndarray, lengths: Sequence[int] | np.ndarray) -> list[str]:
        """A padded batch (batch, n_frames, n_classes) with its lengths (batch,) -> texts."""
        ...


@dataclass(frozen=True)
class DecoderConfig:
    """How to turn scores into text; the same settings wherever decoding happens.

    `alpha`, `beta` and `lm_path` only matter for the beam decoder; an LM with the greedy
    decoder is refused rather than silently ignored.
    """

    decoder: DecoderName = setting(
        "greedy",
        "greedy (best path, fast) or beam (CTC beam search; with --lm, word LM scoring).",
    )
    beam_width: int = setting(DEFAULT_BEAM_WIDTH, "Hypotheses kept per frame by the beam decoder.")
    alpha: float = setting(DEFAULT_ALPHA, "LM weight on ln p(words); tune it with `lm tune`.")
    beta: float = setting(DEFAULT_BETA, "Bonus per word in nats; tune it with `lm tune`.")
    lm_path: Path | None = setting(
        None, "ARPA word LM (`deepspeech lm build`) for the beam decoder.", key="lm"
    )
    unk_offset: float = setting(
        DEFAULT_UNK_OFFSET, "log10 added to an unknown word's LM score (<= 0)."
    )
    token_beam: int = setting(DEFAULT_TOKEN_BEAM, "Labels tried per frame and hypothesis.")
    beam_threshold: float = setting(
        DEFAULT_BEAM_THRESHOLD, "Hypotheses this many nats behind the best are dropped."
    )
    hot_words: tuple[str, ...] = setting(
        (),
        "WORD:BOOST, repeatable: favour WORD by BOOST nats (e.g. 8; negative suppresses), "
        "even a word the LM never saw. Beam decoder only.",
        key="hot_word",
        metavar="WORD:BOOST",
    )

    def __post_init__(self) -> None:
        if self.decoder not in DECODERS:
            raise ConfigError(f"decoder {self.decoder!r} is unknown; use one of {DECODERS}")
        _check_beam_settings(self.beam_width, self.token_beam, self.beam_threshold, self.unk_offset)
        object.__setattr__(self, "hot_words", tuple(self.hot_words))
        for spec in self.hot_words:
            parse_hot_word(spec)  # the syntax now; the alphabet when a model is opened
        if self.hot_words and self.decoder == "greedy":
            raise ConfigError("hot words need the beam decoder; add --decoder beam")
        if self.lm_path is not None:
            object.__setattr__(self, "lm_path", Path(self.lm_path))
            if self.decoder == "greedy":
                raise ConfigError(
                    f"an LM ({self.lm_path}) needs the beam decoder; add --decoder beam"
                )


@dataclass(frozen=True)
class GreedyDecoder:
    """`greedy_decode` behind the `Decoder` interface."""

    alphabet: Alphabet
    hot_words: HotWordList = field(init=False, repr=False, compare=False)  # always empty

    def __post_init__(self) -> None:
        object.__setattr__(self, "hot_words", HotWordList(self.alphabet, beam=False))

    def __call__(self, scores: np.ndarray, length: int | None = None) -> str:
        return greedy_decode(scores, self.alphabet, length)

    def alignments(
        self,
        scores: np.ndarray,
        length: int | None = None,
        *,
        num_results: int = 1,
        hot_words: HotWords | None = None,
    ) -> list[Alignment]:
        """The best path, the one hypothesis greedy decoding has (whatever `num_results`)."""
        _check_shape(scores, self.alphabet)
        self.hot_words.with_extra(hot_words)  # refuses any: greedy has no hypotheses to rank
        return [greedy_alignment(scores[: scores.shape[0] if length is None else length])]

    def decode_batch(self, scores: np.ndarray, lengths: Sequence[int] | np.ndarray) -> list[str]:
        return greedy_decode_batch(scores, np.asarray(lengths), self.alphabet)


class BeamDecoder:
    """CTC beam search over characters (flashlight-text), with or without a word LM.

    Build it once and call it per utterance: the LM is loaded here, and each call only
    makes the small per-utterance search objects, so one decoder may be shared by threads.
    """

    def __init__(
        self,
        alphabet: Alphabet,
        *,
        beam_width: int = DEFAULT_BEAM_WIDTH,
        lm: LanguageModel | Path | str | None = None,
        alpha: float = DEFAULT_ALPHA,
        beta: float = DEFAULT_BETA,
        unk_offset: float = DEFAULT_UNK_OFFSET,
        token_beam: int = DEFAULT_TOKEN_BEAM,
        beam_threshold: float = DEFAULT_BEAM_THRESHOLD,
        kind: ScoreKind = "auto",
        hot_words: HotWords | None = None,
    ) -> None:
        from flashlight.lib.text.decoder import CriterionType, LexiconFreeDecoderOptions

        _check_beam_settings(beam_width, token_beam, beam_threshold, unk_offset)
        if isinstance(lm, str | Path):
            lm = load_language_model(lm)
        if lm is not None and " " not in alphabet:
            raise LanguageModelError(
                "a word LM needs the space character in the alphabet to find word ends"
            )
        self.alphabet = alphabet
        self.lm = lm
        self.alpha = alpha
        self.beta = beta
        self.unk_offset = unk_offset
        self.kind = kind
        self.hot_words = HotWordList(alphabet, beam=True, words=hot_words)  # add_hot_word's
        # _WordLM returns alpha * ln p + beta (and hot-word boosts) itself, so the decoder's
        # weight is 1 when it scores words and 0 when nothing does (no LM, no hot words).
        self._options = {
            weight: LexiconFreeDecoderOptions(
                beam_size=beam_width,
                beam_size_token=min(token_beam, alphabet.num_classes),
                beam_threshold=beam_threshold,
                lm_weight=weight,
                sil_score=0.0,
                log_add=True,  # merge alignments of the same text by summing, as CTC defines
                criterion_type=CriterionType.CTC,
            )
            for weight in (0.0, 1.0)
        }
        self._space = alphabet.label_of(" ") if " " in alphabet else alphabet.blank_index

    def __call__(self, scores: np.ndarray, length: int | None = None) -> str:
        """(n_frames, n_classes) scores of one utterance -> its best transcript."""
        best = self.alignments(scores, length)
        return self.tokens_to_text(best[0].path) if best else ""

    def alignments(
        self,
        scores: np.ndarray,
        length: int | None = None,
        *,
        num_results: int = 1,
        hot_words: HotWords | None = None,
    ) -> list[Alignment]:
        """The `num_results` best hypotheses with distinct texts (the N-best list), best first.

        flashlight's final beam can hold several alignments of one text (ending on a blank or
        on the letter); the first, best-scored one stands for the text.
        """
        _check_shape(scores, self.alphabet)
        log_probs = to_log_probs(scores[: scores.shape[0] if length is None else length], self.kind)
        n_frames, n_classes = log_probs.shape
        if n_frames == 0:
            return []
        search, _lm = self.new_search(self.hot_words.with_extra(hot_words))  # _lm: kept alive
        results = search.decode(log_probs.ctypes.data, n_frames, n_classes)
        return self.distinct(results, num_results, log_probs, final=True)

    def distinct(
        self, results: Sequence[Any], num_results: int, log_probs: np.ndarray, *, final: bool
    ) -> list[Alignment]:
        """flashlight results over `log_probs` -> alignments with distinct texts; `final`
        results carry an end marker after the frames, all carry a start marker before them."""
        found: list[Alignment] = []
        texts: set[str] = set()
        for result in results:
            path = np.asarray(result.tokens[1 : -1 if final else None], dtype=np.int64)
            text = self.tokens_to_text(path)
            if text not in texts:
                texts.add(text)
                found.append(alignment_along(path, log_probs, float(result.score)))
                if len(found) == num_results:
                    break
        return found

    def new_search(self, hot_words: HotWords | None = None) -> tuple[Any, Any]:
        """A fresh flashlight search and its LM, per utterance (or stream), boosting exactly
        `hot_words` (callers merge the decoder's own list in).

        Keep the LM referenced as long as the search: flashlight holds the Python LM only
        from C++, and once Python frees it the search calls a dead object.
        """
        from flashlight.lib.text.decoder import LexiconFreeDecoder, ZeroLM

        if self.lm is None and not hot_words:
            lm: Any = ZeroLM()
            options = self._options[0.0]
        else:
            lm = _word_lm_class()(
                self.lm, self.alphabet, self.alpha, self.beta, self.unk_offset, hot_words or {}
            )
            options = self._options[1.0]
        search = LexiconFreeDecoder(options, lm, self._space, self.alphabet.blank_index, [])
        return search, lm

    def tokens_to_text(self, tokens: Sequence[int]) -> str:
        """Frame-wise labels of a search result, without its start and end markers -> text."""
        blank = self.alphabet.blank_index
        labels = [label for label, _ in itertools.groupby(tokens) if label != blank]
        return " ".join(self.alphabet.decode(labels).split())

    def decode_batch(self, scores: np.ndarray, lengths: Sequence[int] | np.ndarray) -> list[str]:
        return [self(s, int(n)) for s, n in zip(scores, lengths, strict=True)]


def make_decoder(config: DecoderConfig, alphabet: Alphabet, kind: ScoreKind = "auto") -> Decoder:
    """The decoder `config` describes, ready to call per utterance (the LM loaded once)."""
    if config.decoder == "greedy":
        return GreedyDecoder(alphabet)
    # BeamDecoder's keywords are DecoderConfig's fields, `lm` for `lm_path`.
    options = dataclasses.asdict(config)
    del options["decoder"]
    options["lm"] = options.pop("lm_path")
    options["hot_words"] = parse_hot_words(options.pop("hot_words"), alphabet)
    return BeamDecoder(alphabet, **options, kind=kind)


def beam_decode(
    scores: np.ndarray,
    alphabet: Alphabet,
    length: int | None = None,
    *,
    beam_width: int = DEFAULT_BEAM_WIDTH,
    lm: LanguageModel | Path | str | None = None,
    alpha: float = DEFAULT_ALPHA,
    beta: float = DEFAULT_BETA,
    kind: ScoreKind = "auto",
) -> str:
    """Beam search one utterance, (n_frames, n_classes) scores -> text; see `BeamDecoder`.

    For many utterances build one `BeamDecoder` (or `make_decoder`); an LM given as a path is
    loaded once per file either way (`load_language_model` caches it).
    """
    decoder = BeamDecoder(alphabet, beam_width=beam_width, lm=lm, alpha=alpha, beta=beta, kind=kind)
    return decoder(scores, length)


def beam_decode_batch(
    scores: np.ndarray,
    lengths: Sequence[int] | np.ndarray,
    alphabet: Alphabet,
    *,
    beam_width: int = DEFAULT_BEAM_WIDTH,
    lm: LanguageModel | Path | str | None = None,
    alpha: float = DEFAULT_ALPHA,
    beta: float = DEFAULT_BETA,
    kind: ScoreKind = "auto",
) -> list[str]:
    """Beam search a padded batch: scores (batch, n_frames, n_classes), lengths (batch,)."""
    decoder = BeamDecoder(alphabet, beam_width=beam_width, lm=lm, alpha=alpha, beta=beta, kind=kind)
    return decoder.decode_batch(scores, lengths)


def _check_beam_settings(
    beam_width: int, token_beam: int, beam_threshold: float, unk_offset: float
) -> None:
    if beam_width < 1:
        raise ConfigError(f"beam width {beam_width} must be at least 1")
    if token_beam < 1:
        raise ConfigError(f"token beam {token_beam} must be at least 1")
    if beam_threshold <= 0:
        raise ConfigError(f"beam threshold {beam_threshold} must be positive")
    if unk_offset > 0:  # a reward per unknown word would turn every letter into a word
        raise ConfigError(f"unknown-word offset {unk_offset} must be 0 or negative")


def _check_shape(scores: np.ndarray, alphabet: Alphabet) -> None:
    if scores.ndim != 2 or scores.shape[1] != alphabet.num_classes:
        raise ValueError(
            f"scores shape {scores.shape} does not match (n_frames, {alphabet.num_classes})"
        )


class _WordScores:
    """Scores characters as flashlight asks, words as the n-gram model knows them.

    flashlight's lexicon-free decoder calls `score(state, label)` for every new label.
    Letters extend the word being spelt; the space (or the end, in `finish`) completes
    it, and the word gets alpha * ln p(word | history) + beta. An unknown word's extra
    cost (offset and spelling, see the module docstring) is charged from the letter that
    makes it impossible to complete as a known word on, so hopeless spellings fall
    behind early and leave the beam to others.
    States form flashlight's own trie (`state.child(label)`), with repeated spaces folded,
    so hypotheses with the same text share one state and flashlight merges their
    alignments. Made per utterance; each call is a few dictionary look-ups, because the
    decoder calls `score` for every hypothesis x label x frame.

    This is the scoring without flashlight's `LM` base class, so that importing this module
    never imports flashlight; `_word_lm_class` joins the two.
    """

    def __init__(
        self,
        lm: LanguageModel | None,
        alphabet: Alphabet,
        alpha: float,
        beta: float,
        unk_offset: float,
        hot_words: HotWords,
    ) -> None:
        super().__init__()  # in `_WordLM`: flashlight's LM, which must be set up first
        self._lm: Any = _NoLanguageModel() if lm is None else lm
        self._labels = alphabet.labels
        self._space = alphabet.label_of(" ")
        self._weight = alpha * LN10  # KenLM's log10 -> ln, times the LM weight
        self._beta = 0.0 if lm is None else beta  # no LM: only hot words score
        self._hot = dict(hot_words)
        self._hot_prefixes = prefixes_of(w for w, boost in self._hot.items() if boost > 0)
        self._unk_score = self._weight * unk_offset
        # An unknown word is spelt letter by letter, each letter as likely as any other.
        self._letter_score = alpha * math.log(1 / (len(alphabet) - 1))
        # state -> (word being spelt, KenLM state after the completed words, whether a
        # known word starts with it); the dict also keeps the Python wrappers alive, so
        # flashlight hands back the same objects.
        self._info: dict[Any, tuple[str, Any, bool]] = {}
        self._scores: dict[Any, float] = {}  # state -> score of the move that made it

    def _word(self, word: str, kenlm_state: Any, known: bool) -> tuple[Any, float]:
        """Complete `word`: (KenLM state after it, its score)."""
        kenlm_state, log10_p = self._lm.score(kenlm_state, word)
        score = self._weight * log10_p + self._beta
        boost = self._hot.get(word, 0.0)
        # A boosted word is spelt as a known one, whatever the LM says; a suppressed one not.
        if known and word not in self._lm and boost <= 0:  # a prefix of known words only
            score += self._unknown(word)
        return kenlm_state, score + boost

    def _unknown(self, spelt: str) -> float:
        """What an unknown word costs beyond p(<unk>): the offset and its letters."""
        return self._unk_score + self._letter_score * len(spelt)

    def _begin(self, root: Any) -> Any:
        """Start an utterance at flashlight's fresh root state `root`."""
        self._info.clear()
        self._scores.clear()
        self._info[root] = ("", self._lm.begin(), True)
        return root

    def score(self, state: Any, label: int) -> tuple[Any, float]:
        if label != self._space:
            child = state.child(label)
            score = self._scores.get(child)
            if score is None:
                partial, kenlm_state, known = self._info[state]
                partial += self._labels[label]
                still_known = known and (
                    self._lm.starts_word(partial) or partial in self._hot_prefixes
                )
                self._info[child] = (partial, kenlm_state, still_known)
                if still_known:
                    score = 0.0
                elif known:  # this letter ends every known word: charge what was spelt
                    score = self._unknown(partial)
                else:  # one more letter of an unknown word
                    score = self._letter_score
                self._scores[child] = score
            return child, score
        partial, kenlm_state, known = self._info[state]
        if not partial:  # a space before the first word or after another space
            return state, 0.0
        child = state.child(label)
        score = self._scores.get(child)
        if score is None:
            kenlm_state, score = self._word(partial, kenlm_state, known)
            self._info[child] = ("", kenlm_state, True)
            self._scores[child] = score
        return child, score

    def finish(self, state: Any) -> tuple[Any, float]:
        partial, kenlm_state, known = self._info[state]
        score = 0.0
        if partial:
            kenlm_state, score = self._word(partial, kenlm_state, known)
        return state, score + self._weight * self._lm.end(kenlm_state)


class _NoLanguageModel:
    """The LM interface `_WordScores` reads, for a search with hot words and no LM: every
    spelling is a known word and scores nothing, so only the hot words' boosts count."""

    def begin(self) -> None:
        return None

    def score(self, state: None, word: str) -> tuple[None, float]:
        return None, 0.0

    def starts_word(self, prefix: str) -> bool:
        return True

    def end(self, state: None) -> float:
        return 0.0

    def __contains__(self, word: str) -> bool:
        return True


@functools.cache
def _word_lm_class() -> type:
    """Define `_WordLM` on first use, so importing this module never imports flashlight."""
    from flashlight.lib.text.decoder import LM, LMState

    class _WordLM(_WordScores, LM):
        """`_WordScores` as the flashlight LM the beam search calls."""

        def start(self, start_with_nothing: bool) -> Any:
            return self._begin(LMState())

    return _WordLM
