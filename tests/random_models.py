"""BiRNNs with random weights, for the tests and the benchmarks that need a model but not a
trained one."""

from __future__ import annotations

import numpy as np


def random_model(config, seed: int):
    """A model with random weights and biases and MFCC-like normalisation statistics.

    Zero biases would hide padding bugs (zeros stay zeros through every layer); the statistics
    make normalisation matter (padding must be zero after it, not before). Keras is imported
    here, not at the top: conftest imports this module, and most tests never load TensorFlow.
    """
    import keras

    from deepspeech.model.birnn import build_birnn

    keras.utils.set_random_seed(seed)
    model = build_birnn(config)
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if "bias" in variable.path:
            variable.assign(rng.normal(0.0, 0.5, variable.shape).astype(np.float32))
    model.normalization.set_statistics(rng.normal(0.0, 5.0, 26), rng.uniform(2.0, 10.0, 26))
    return model
