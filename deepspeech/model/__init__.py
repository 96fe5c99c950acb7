"""The DeepSpeech network and its export to ONNX (TensorFlow is imported inside, not here)."""
