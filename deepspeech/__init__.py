"""DeepSpeech: MFCC + context windows -> BiRNN -> CTC, on TensorFlow 2, tracked in MLflow."""

__version__ = "0.1.0"
