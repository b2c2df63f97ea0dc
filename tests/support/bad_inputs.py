"""Bad inputs a user can hand to `edgekd`, written into one folder: recipes, data sets, model files, inventories.

Each is small (no training, no conversion) so the CLI matrix stays fast. `write_bad_inputs(folder)` returns
nothing; the file names are the vocabulary of tests/reliability/test_cli_matrix.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DIGITS = (ROOT / "examples" / "digits.toml").read_text(encoding="utf-8")
PWNED = "pwned-by-pickle"  # the file the hostile .pt tries to create when unpickled

TINY_RECIPE = """
[run]
name = "tiny"
[data]
source = "npz"
path = "{data}"
[teacher]
model = {{ arch = "mlp", width = 8, depth = 1 }}
train = {{ epochs = 1 }}
[student]
model = {{ arch = "mlp", width = 4, depth = 1 }}
[distill]
train = {{ epochs = 1 }}
"""

# recipe name -> (text replaced in examples/digits.toml, replacement)
RECIPE_EDITS = {
    "unknown_key": ("seed = 0", "seed = 0\nsed = 1"),
    "wrong_type": ("epochs = 30", 'epochs = "many"'),
    "negative_epochs": ("epochs = 30", "epochs = -3"),
    "unknown_converter": ('converter = "onnx2tf"', 'converter = "onnx2tff"'),
    "unknown_target": ('targets = ["local"]', 'targets = ["locl"]'),
    "unknown_runtime": ("threads = 1", 'threads = 1\ntflite_runtime = "litrt"'),
    "unknown_loss": ('kind = "dist"', 'kind = "dsit"'),
    "unknown_arch": ('arch = "cnn", width = 8', 'arch = "cnnn", width = 8'),
    "missing_data": ('source = "digits"', 'source = "npz"\npath = "no-such-data.npz"'),
    "handoff_artifact_typo": ('artifact = "tflite_int8"', 'artifact = "tflite_in8"'),
    "also_litert_torch": ('precisions = ["fp32", "int8"]', 'precisions = ["fp32", "int8"]\nalso_litert_torch = true'),
}


class _Hostile:
    """Unpickling this runs a shell command: what a `.pt` from an untrusted source may hold."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {PWNED}",))


def write_recipes(folder: Path) -> None:
    (folder / "syntax.toml").write_text('[run\nname = "x"\n', encoding="utf-8")
    (folder / "not_utf8.toml").write_bytes(b'[run]\nname = "\xff\xfe"\n')
    for name, (old, new) in RECIPE_EDITS.items():
        assert old in DIGITS, f"examples/digits.toml no longer has {old!r}"  # a broken fixture, not user input
        (folder / f"{name}.toml").write_text(DIGITS.replace(old, new, 1), encoding="utf-8")


def write_data_sets(folder: Path) -> None:
    """One npz per data mistake, each with a recipe `data_<name>.toml` pointing at it."""
    rng = np.random.default_rng(0)
    x = rng.random((40, 1, 4, 4), dtype=np.float32)
    y = np.arange(40) % 4
    nan_x, inf_x = x.copy(), x.copy()
    nan_x[3, 0, 1, 1] = np.nan
    inf_x[5, 0, 2, 2] = np.inf
    sets: dict[str, dict[str, np.ndarray]] = {
        "empty": {"x": np.zeros((0, 1, 4, 4), np.float32), "y": np.zeros(0, np.int64)},
        "nan": {"x": nan_x, "y": y},
        "inf": {"x": inf_x, "y": y},
        "negative_labels": {"x": x, "y": y - 1},
        "class_count": {"x": x, "y": y, "label_names": np.array(["a", "b", "c"])},  # labels reach 3
        "wrong_shape": {"x": x.reshape(40, 1, 1, 4, 4), "y": y},
        "length_mismatch": {"x": x, "y": y[:30]},
        "float_labels": {"x": x, "y": y + 0.5},
        "no_labels": {"x": x},
    }
    for name, arrays in sets.items():
        np.savez(folder / f"{name}.npz", **arrays)  # type: ignore[arg-type]
        (folder / f"data_{name}.toml").write_text(TINY_RECIPE.format(data=f"{name}.npz"), encoding="utf-8")
    np.savez(folder / "object.npz", x=np.array([{"a": 1}] * 4, dtype=object), y=np.arange(4))
    (folder / "data_object.toml").write_text(TINY_RECIPE.format(data="object.npz"), encoding="utf-8")
    np.savez(folder / "calibration.npz", x=x)


def write_models(folder: Path) -> None:
    """Corrupt, truncated and hostile model files, with sidecars where edgekd would need one."""
    import onnx
    import torch
    from onnx import TensorProto, helper

    from edgekd.artifacts import create_artifact

    noise = np.random.default_rng(1).bytes(256)
    for suffix in ("onnx", "tflite", "pt"):
        (folder / f"corrupt.{suffix}").write_bytes(noise)

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )  # fmt: skip
    good = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()
    (folder / "truncated.onnx").write_bytes(good[: len(good) // 2])
    odd = helper.make_graph(
        [helper.make_node("NoSuchOperator", ["x"], ["y"])], "odd",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )  # fmt: skip
    onnx.save(helper.make_model(odd, opset_imports=[helper.make_opsetid("", 18)]), folder / "unsupported_op.onnx")
    # a FlatBuffer root offset and the TFL3 identifier, then nothing: the first bytes of a real .tflite
    (folder / "truncated.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 20)

    config = {"model": {"arch": "mlp", "width": 4, "depth": 1}, "input_shape": [1, 4, 4], "num_classes": 4}
    torch.save({"weight": _Hostile()}, folder / "hostile.pt")
    state = {"layer.weight": torch.zeros(4, 16)}
    torch.save(state, folder / "whole.pt")
    whole = (folder / "whole.pt").read_bytes()
    (folder / "truncated.pt").write_bytes(whole[: len(whole) // 2])
    for name in ("hostile", "truncated", "corrupt"):
        create_artifact(folder / f"{name}.pt", name=name, format="torch", precision="fp32", config=config)
    (folder / "whole.pt").unlink()


def write_inventories(folder: Path) -> None:
    (folder / "targets.toml").write_text(
        '[targets.pi5]\nkind = "ssh"\nhost = "127.0.0.1"\nuser = "pi"\n', encoding="utf-8"
    )
    (folder / "bad_kind.toml").write_text('[targets.pi5]\nkind = "sshh"\nhost = "pi5.local"\n', encoding="utf-8")
    (folder / "bad_syntax.toml").write_text("[targets.pi5\n", encoding="utf-8")
    (folder / "not_a_run").mkdir()


def write_bad_inputs(folder: Path) -> None:
    write_recipes(folder)
    write_data_sets(folder)
    write_models(folder)
    write_inventories(folder)
