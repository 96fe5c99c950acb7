"""The export stage, after training: checkpoint -> checked ONNX file (fp32 or int8).

`export_model` (in `pipeline`) is the whole stage; `convert`, `parity` and `quantize` are its
steps, and `register` names the registry version the file will become (registering is
`deepspeech.registry`'s). It imports TensorFlow: serving reads what it writes through
`deepspeech.runtime`, never through this package.
"""
