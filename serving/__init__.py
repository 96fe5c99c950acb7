"""onnxruntime HTTP server for exported DeepSpeech models; never imports TensorFlow."""
