"""ONNX graph rewrites the TFLite converters apply to their own copy of a model, so the TFLite file runs everywhere.

`hardsigmoid_as_relu6`: onnx2tf turns HardSigmoid into max(0, min(1, alpha x + beta)), which the TFLite converter
fuses into RELU_0_TO_1, an op TensorFlow Lite Micro does not have; written as Clip(6 alpha x + 6 beta, 0, 6) / 6 it
becomes RELU6, which every TFLite runtime has. The two are the same function (hard-sigmoid = relu6(6 (alpha x +
beta)) / 6): MobileNetV3-style students with hard-swish and squeeze-excite then run in the firmware's interpreter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def hardsigmoid_as_relu6(src: Path, dest: Path) -> list[str]:
    """Copy `src` to `dest` with every HardSigmoid(x; alpha, beta) written as Clip(6 alpha x + 6 beta, 0, 6) / 6;
    the names of the nodes rewritten (none: a byte copy).

    onnx2tf turns HardSigmoid into max(0, min(1, alpha x + beta)), which the TFLite converter fuses into
    RELU_0_TO_1, an op TensorFlow Lite Micro does not have; Clip(0, 6) becomes RELU6, which it has. The two
    are the same function (hard-sigmoid = relu6(6 (alpha x + beta)) / 6)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src), load_external_data=False)
    graph = model.graph
    if not any(node.op_type == "HardSigmoid" for node in graph.node):
        dest.write_bytes(src.read_bytes())
        return []
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    rewritten: list[str] = []
    nodes = []
    for index, node in enumerate(graph.node):
        if node.op_type != "HardSigmoid":
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))  # ONNX's defaults
        name = node.name or f"HardSigmoid_{index}"
        p = f"{name}__relu6"

        def const(suffix: str, value: float, prefix: str = p) -> str:
            graph.initializer.append(numpy_helper.from_array(np.asarray(value, np.float32), f"{prefix}.{suffix}"))
            return f"{prefix}.{suffix}"

        nodes.append(
            helper.make_node("Mul", [node.input[0], const("scale", 6 * alpha)], [f"{p}.scaled"], name=f"{p}.mul")
        )
        nodes.append(
            helper.make_node("Add", [f"{p}.scaled", const("shift", 6 * beta)], [f"{p}.shifted"], name=f"{p}.add")
        )
        if opset >= 11:  # Clip's bounds are inputs from opset 11 on, attributes before
            clip = helper.make_node("Clip", [f"{p}.shifted", const("min", 0.0), const("max", 6.0)], [f"{p}.relu6"],
                                    name=f"{p}.clip")  # fmt: skip
        else:
            clip = helper.make_node("Clip", [f"{p}.shifted"], [f"{p}.relu6"], name=f"{p}.clip", min=0.0, max=6.0)
        nodes.append(clip)
        nodes.append(helper.make_node("Mul", [f"{p}.relu6", const("sixth", 1 / 6)], list(node.output), name=f"{p}.div"))
        rewritten.append(name)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, str(dest))
    return rewritten
