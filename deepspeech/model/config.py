"""The acoustic model's shape: everything needed to rebuild it for export or evaluation.

Stored with each checkpoint (`deepspeech.training.checkpoint`), so a model is rebuilt exactly
as it was trained, whatever the defaults have become since.
"""

from __future__ import annotations

from dataclasses import dataclass

from deepspeech.audio import N_CEPSTRUM, N_CONTEXT

RNN_KINDS = ("bidirectional", "unidirectional")  # 2017 BiRNN; DeepSpeech 0.6-0.9's streaming LSTM
# The layers with weights, input to output, as the 2017 variables were named. Fine-tuning counts
# them: `--drop-layers N` re-initialises the last N, `--freeze-layers N` keeps the first N fixed.
WEIGHT_LAYERS = ("h1", "h2", "h3", "lstm", "h5", "h6")


@dataclass(frozen=True)
class ModelConfig:
    """The BiRNN's shape (training's `TrainConfig.model()` makes it from the options)."""

    n_classes: int  # alphabet size + 1 for the CTC blank (last)
    numcep: int = N_CEPSTRUM  # MFCC per input frame
    numcontext: int = N_CONTEXT  # frames of context each side, stacked inside the model
    n_hidden: int = 2048
    dropout_rate: float = 0.05
    relu_clip: float = 20.0
    rnn: str = "bidirectional"  # or "unidirectional": forward-only, future context from windows
    # 0: normalise with the training set's mean (2017). N > 0: with the utterance's running
    # mean, the training set's counting as N frames (`FeatureNormalization` says why).
    running_mean_frames: float = 0.0
    running_variance: bool = False  # with a running mean: the running standard deviation too

    @property
    def n_input(self) -> int:
        """Width of the context windows the first dense layer reads."""
        return self.numcep * (2 * self.numcontext + 1)

    def layer_shapes(self) -> dict[str, list[tuple[int, ...]]]:
        """Each of `WEIGHT_LAYERS`' weight shapes, in Keras' order (kernel, [recurrent], bias),
        without building the model: a fine-tuning source is checked before any data is read.
        `tests/test_finetune.py` holds this to the built model's shapes."""
        h, gates = self.n_hidden, 4 * self.n_hidden
        lstm = [(h, gates), (h, gates), (gates,)]
        directions = 2 if self.rnn == "bidirectional" else 1
        return {
            "h1": [(self.n_input, h), (h,)],
            "h2": [(h, h), (h,)],
            "h3": [(h, h), (h,)],
            "lstm": lstm * directions,
            "h5": [(directions * h, h), (h,)],
            "h6": [(h, self.n_classes), (self.n_classes,)],
        }
