"""Every float the generators write is a valid C++ literal that reads back bit for bit (issue 21 item 10).

`0f`, `1f`, `5f` were written for whole numbers (invalid C++), so `--mean 0 --std 1` or a CSV with a constant
column failed at handoff. Property-tested with hypothesis over finite float32 values (integers, negative
zero, the largest and the subnormal ones included): the generated text compiles with
`g++ -std=c++11 -Wall -Wextra -Werror -pedantic` and the compiled values equal the inputs bit for bit.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from edgekd.artifacts import QuantParams, TensorSpec
from edgekd.errors import HandoffError
from edgekd.handoff.c_array import c_float, value_lines
from edgekd.handoff.golden import GoldenVectors, render_golden_header
from edgekd.handoff.identifiers import bundle_symbols
from edgekd.handoff.input_prep import preprocessing_problem, preprocessing_section
from edgekd.handoff.manifest import render_manifest_header, tensor_entry
from edgekd.preprocessing import Preprocessing

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
FLAGS = ["-std=c++11", "-Wall", "-Wextra", "-Werror", "-pedantic"]
EDGES = [0.0, -0.0, 1.0, -1.0, 5.0, 16.0, 255.0, 16777216.0, 1e10, 3.4028234663852886e38, -3.4028234663852886e38,
         1.1754943508222875e-38, 1.401298464324817e-45, -1.401298464324817e-45, 0.1, 1 / 3]  # fmt: skip
float32s = st.floats(width=32, allow_nan=False, allow_infinity=False)
whole = st.integers(-(2**24), 2**24).map(float)


def compile_and_dump(tmp_path: Path, header: str, arrays: list[str]) -> bytes:
    """Compile `header` plus a main writing the bytes of each named object to stdout; return them."""
    (tmp_path / "values.h").write_text(header, encoding="utf-8")
    dumps = "\n".join(f"  std::fwrite(&{name}, sizeof({name}), 1, stdout);" for name in arrays)
    (tmp_path / "main.cc").write_text(
        f'#include <cstdio>\n#include "values.h"\nint main() {{\n{dumps}\n  return 0;\n}}\n', encoding="utf-8"
    )
    build = subprocess.run(["g++", *FLAGS, "-o", str(tmp_path / "main"), str(tmp_path / "main.cc")],
                           check=False, capture_output=True, text=True)  # fmt: skip
    assert build.returncode == 0, build.stderr
    return subprocess.run([str(tmp_path / "main")], capture_output=True, check=True, timeout=30).stdout


def bits(values: list[float]) -> bytes:
    return np.asarray(values, np.float32).tobytes()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(float32s, whole, st.sampled_from(EDGES)), min_size=1, max_size=40))
@example(EDGES)
@example([0.0, 1.0, 5.0])
def test_c_float_and_value_lines_compile_and_read_back_bit_for_bit(tmp_path_factory: Any, values: list[float]) -> None:
    tmp_path = tmp_path_factory.mktemp("literals")
    literals = [c_float(v) for v in values]
    assert all(("." in text or "e" in text) and text.endswith("f") for text in literals)
    header = (
        f"const float a[{len(values)}] = {{{', '.join(literals)}}};\n"
        f"const float b[{len(values)}] = {{\n{value_lines(np.asarray(values, np.float32))}\n}};\n"
    )
    assert compile_and_dump(tmp_path, header, ["a", "b"]) == bits(values) * 2


def test_non_finite_values_are_refused_not_written_as_zero() -> None:
    for value in (float("nan"), float("inf"), 1e39):
        with pytest.raises(HandoffError, match="cannot be written as a C float constant"):
            c_float(value)


def manifest_for(prep: Preprocessing, channels: int, quant_scale: float) -> dict[str, Any]:
    spec = TensorSpec("x", (1, 2, channels), "int8", quant=QuantParams(scale=(quant_scale,), zero_point=(-3,)))
    inputs = [tensor_entry(0, spec, "x", None)]
    out = tensor_entry(0, TensorSpec("y", (1, 2), "float32"), "y", None)
    return {
        "model": {"name": "m", "file": "m.tflite", "bytes": 1, "sha256": "0" * 64, "tflite_schema_version": 3},
        "arena": {"method": "estimate", "basis_bytes": 16, "margin": 0.0, "bytes": 16},
        "inputs": inputs,
        "outputs": [out],
        "preprocessing": preprocessing_section(prep.to_dict(), inputs),
        "labels": [],
    }


@settings(max_examples=30, deadline=None)
@given(
    means=st.lists(st.one_of(float32s, whole, st.sampled_from(EDGES)), min_size=1, max_size=4),
    stds=st.lists(st.one_of(float32s, whole, st.sampled_from(EDGES)), min_size=1, max_size=1),
    scale=st.one_of(st.sampled_from([1.0, 1 / 16, 1 / 255, 1 / 65535]), st.floats(2.0**-100, 2.0**100, width=32)),
    quant_scale=st.floats(2.0**-100, 2.0**100, width=32),
)
@example(means=[0.0], stds=[1.0], scale=1.0, quant_scale=1.0)  # the `--mean 0 --std 1` that failed
@example(means=[-0.0, 5.0, 3.4028234663852886e38], stds=[1.0], scale=1 / 255, quant_scale=0.5)
def test_manifest_header_compiles_and_reads_back_bit_for_bit(
    tmp_path_factory: Any, means: list[float], stds: list[float], scale: float, quant_scale: float
) -> None:
    channels = len(means)
    prep = Preprocessing(scale=scale, mean=tuple(means), std=tuple(stds))
    if preprocessing_problem(prep, channels) is not None:  # zero/overflowing std: refused, tested elsewhere
        return
    manifest = manifest_for(prep, channels, quant_scale)
    header = render_manifest_header(manifest, bundle_symbols("m"), edgekd_version="test")
    names = ["m_manifest::kRawScale", "m_manifest::kMean", "m_manifest::kStd", "m_manifest::kInputMul",
             "m_manifest::kInputAdd", "m_manifest::kInput0Scale"]  # fmt: skip
    per = manifest["preprocessing"]["per_channel"]
    multiply, add = prep.affine(channels)
    expected = bits([scale]) + bits(per["mean"]) + bits(per["std"]) + multiply.tobytes() + add.tobytes()
    expected += bits([quant_scale])
    assert per["mean"] == [float(np.float32(m)) for m in means]
    assert compile_and_dump(tmp_path_factory.mktemp("manifest"), header, names) == expected


def test_golden_tolerance_literal_is_valid_for_whole_numbers(tmp_path: Path) -> None:
    golden = GoldenVectors(inputs=[np.zeros(2, np.float32)], outputs=[np.zeros(2, np.float32)], input_source="t")
    header = render_golden_header(golden, bundle_symbols("m"), source="m.tflite", edgekd_version="t", tolerances=[1.0])
    assert "g_m_golden_output_0_tolerance = 1.0f;" in header
    assert compile_and_dump(tmp_path, header, ["g_m_golden_output_0_tolerance"]) == bits([1.0])
