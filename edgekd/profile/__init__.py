"""Per-op profiles: one schema for every runtime (ORT's profiler, TFLite benchmark_model), views, placement.

Modules: `schema` (OpRow, OpProfile), `ort_trace` (stdlib-only ORT trace summary, copyable into the
device runner), `ort_profile` (profile an ONNX model here), `tflite_benchmark` (parse
`benchmark_model --enable_op_profiling`), `views` (top ops, time by op type, fp32 vs int8),
`placement` (which provider ran what; the accelerator-fallback verdict), `model_explorer` (node-data
overlay for Google's Model Explorer). Heavy packages are imported inside the functions that need them.
"""

from edgekd.profile.schema import SCHEMA, OpProfile, OpRow

__all__ = ["SCHEMA", "OpProfile", "OpRow"]
