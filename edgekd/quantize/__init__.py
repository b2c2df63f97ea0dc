"""Accuracy-budgeted quantization (issue 14): the ladder PTQ -> sensitivity -> mixed precision (ORT) -> QAT
with the teacher (torchao pt2e), with int8 rows for ORT, LiteRT and TFLM.

Import `edgekd.quantize.ladder.run_ladder`; heavy packages (onnx, onnxruntime, torch) load inside its functions.
"""
