"""Accuracy-budgeted quantization (issue 14): the ladder PTQ -> sensitivity -> mixed precision, in ORT.

Import `edgekd.quantize.ladder.run_ladder`; heavy packages (onnx, onnxruntime) load inside its functions.
"""
