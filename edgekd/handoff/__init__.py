"""The firmware handoff bundle: everything an embedded engineer needs, verified on the host.

bundle.build_handoff is the entry point. The pieces: tflite_reader (ops, tensors, interface),
identifiers (C names), c_array (aligned model array, literals), manifest (JSON + C++ header),
op_resolver (MicroMutableOpResolver<N>, TFLM support table), golden (LiteRT vectors), arena +
tflm_measure/tflm_probe (TFLM measurement in a worker, liveness estimate), verify (g++ round trip),
integrator_readme (README.md).
"""
