"""The export stage, after training: checkpoint -> checked ONNX file (fp32 or int8) -> registry.

`export_model` (in `pipeline`) is the whole stage; `convert`, `parity`, `quantize` and
`register` are its steps. It imports TensorFlow: serving reads what it writes through
`deepspeech.runtime`, never through this package.
"""
