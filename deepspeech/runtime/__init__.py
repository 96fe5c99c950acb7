"""Running exported models, TensorFlow-free: what the export stage checks and serving runs.

- `graph`: the graphs' input and output names, `ModelMetadata`, `pad_features`;
- `session`: the one place an onnxruntime session is opened (CUDA where it really works);
- `offline.OfflineModel`: whole utterances, in padded batches;
- `streaming.StreamingModel`: chunk by chunk, with carried state.
"""
