"""Per-node latency as a Google Model Explorer overlay (PyPI `ai-edge-model-explorer`).

Model Explorer loads "node data" JSON onto a graph: `{"results": {key: {"value": number}}, "gradient": [...]}`
for one graph (its `GraphNodeData`), or `{graph_id: <that>}` for a model (`ModelNodeData`). A key is a node
id or one of the node's output tensor names. Keys written here:
- ORT rows: the node name (Model Explorer's ids for ONNX graphs are node names; `onnx_graph_json` below
  writes such a graph for Model Explorer's built-in JSON adapter, since it has no ONNX adapter of its own).
  ORT's NCHWc layout rewrite names a node `<output tensor>_nchwc`; its time goes on that tensor's node (for a
  fused Conv+Relu, the Relu). Other nodes ORT's optimisations create (`ReorderInput`) are not in the file
  and are returned as unmatched; profile with `optimization="none"` to cover exactly the file's nodes.
- TFLite `benchmark_model` rows: the first output tensor name inside `[...]` (`[MobilenetV1/.../Relu6]:0`
  -> `MobilenetV1/.../Relu6`), which Model Explorer's TFLite adapter lists as the node's `tensor_name`.
  Rows of delegate kernels name the partition's outputs, so the latency lands on the partition's last node.

The JSON is written without the package (it is plain JSON); `onnx_graph_json` needs it installed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from edgekd.errors import ConversionError
from edgekd.fileio import atomic_path
from edgekd.profile.schema import OpProfile

#: Fast nodes green, slow nodes red (Model Explorer interpolates between the stops).
GRADIENT = [{"stop": 0, "bgColor": "#d7f4d7"}, {"stop": 0.5, "bgColor": "#fff2b3"}, {"stop": 1, "bgColor": "#f7b0a8"}]
NCHWC_SUFFIX = "_nchwc"
_TFLITE_NAME = re.compile(r"^\[(.*)\]:\d+$")


def node_key(op: str) -> str:
    """The Model Explorer key of a profile row's `op` (see the module docstring)."""
    match = _TFLITE_NAME.match(op)
    return match.group(1).split(", ")[0] if match else op


def latency_node_data(
    profile: OpProfile, *, graph_id: str | None = None, known_keys: set[str] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """(node data dict, unmatched ops). Values are ms per inference; several rows on one key are summed.

    `known_keys`: node ids and output tensor names of the graph; rows whose key is not among them are
    left out and returned as unmatched (None: keep every row).
    """
    results: dict[str, dict[str, float]] = {}
    unmatched: list[str] = []
    for row in profile.rows:
        key = node_key(row.op)
        if known_keys is not None and key not in known_keys and key.endswith(NCHWC_SUFFIX):
            key = key[: -len(NCHWC_SUFFIX)]  # ORT's NCHWc rewrite names a node after its output tensor
        if known_keys is not None and key not in known_keys:
            unmatched.append(row.op)
            continue
        results.setdefault(key, {"value": 0.0})["value"] += row.ms
    where = f" on {profile.target}" if profile.target else ""
    graph = {"name": f"latency ms ({profile.runtime}{where})", "results": results, "gradient": GRADIENT}
    return ({graph_id: graph} if graph_id else graph), unmatched


def write_node_data(profile: OpProfile, out: str | Path, **kwargs: Any) -> list[str]:
    """Write the overlay JSON to `out` (atomically); returns the unmatched ops."""
    data, unmatched = latency_node_data(profile, **kwargs)
    path = Path(out)
    with atomic_path(path, suffix=".json") as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2) + "\n")
    return unmatched


def onnx_keys(onnx_path: str | Path) -> set[str]:
    """Node names and output tensor names of an ONNX graph: the keys an overlay on it can use."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return {node.name for node in model.graph.node} | {out for node in model.graph.node for out in node.output}


def onnx_graph_json(onnx_path: str | Path, graph_id: str = "main") -> dict[str, Any]:
    """The ONNX graph as Model Explorer graph JSON (its built-in JSON adapter loads it); node ids = node names."""
    import onnx

    try:
        from model_explorer import graph_builder as gb
        from model_explorer.utils import convert_adapter_response
    except ImportError:
        raise ConversionError("Model Explorer is not installed", hint="pip install ai-edge-model-explorer") from None
    model = onnx.load(str(onnx_path), load_external_data=False)
    names = [node.name or f"{node.op_type}_{index}" for index, node in enumerate(model.graph.node)]
    producer = {
        out: (name, slot) for name, node in zip(names, model.graph.node) for slot, out in enumerate(node.output)
    }
    nodes = []
    for name, node in zip(names, model.graph.node):
        edges = [
            gb.IncomingEdge(
                sourceNodeId=producer[value][0], sourceNodeOutputId=str(producer[value][1]), targetNodeInputId=str(slot)
            )
            for slot, value in enumerate(node.input)
            if value in producer
        ]
        outputs = [
            gb.MetadataItem(id=str(i), attrs=[gb.KeyValue(key="tensor_name", value=out)])
            for i, out in enumerate(node.output)
        ]
        nodes.append(gb.GraphNode(id=name, label=node.op_type, incomingEdges=edges, outputsMetadata=outputs))
    return convert_adapter_response({"graphs": [gb.Graph(id=graph_id, nodes=nodes)]})
