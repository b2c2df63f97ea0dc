"""The handoff's source generators without TensorFlow: identifiers, C literals (compiled with g++), the
op-resolver table and its structural check, and the liveness planner."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgekd.errors import HandoffError
from edgekd.handoff.arena import estimate_head
from edgekd.handoff.c_array import c_comment, c_string, value_lines
from edgekd.handoff.identifiers import C_KEYWORDS, bundle_symbols, c_identifier
from edgekd.handoff.op_resolver import (
    TFLM_BUILTINS,
    check_op_resolver_header,
    render_op_resolver_header,
    require_tflm_support,
    resolver_entries,
)
from edgekd.handoff.tflite_reader import OperatorCode, OperatorUse, SubgraphInfo, TensorInfo, TfliteModel

needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
IDENT = re.compile(r"^[a-z][a-z0-9_]*$")


def compile_and_run(tmp_path: Path, source: str) -> bytes:
    (tmp_path / "main.cc").write_text(source, encoding="utf-8")
    build = subprocess.run(
        [
            "g++",
            "-std=c++11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-o",
            str(tmp_path / "main"),
            str(tmp_path / "main.cc"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    return subprocess.run([str(tmp_path / "main")], capture_output=True, check=True).stdout


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("model", "model"),
        ("digits", "digits"),
        ("My Model-v2", "my_model_v2"),
        ("3d-net", "m_3d_net"),
        ("résumé", "resume"),
        ("int", "int_"),
        ("__x__", "x"),
        ("MobileNetV2", "mobile_net_v2"),
        ("a..b", "a_b"),
    ],
)
def test_identifier_sanitising(name: str, expected: str) -> None:
    assert c_identifier(name) == expected


def test_symbols_follow_the_model_name() -> None:
    default = bundle_symbols("model")
    assert (default.model_array, default.model_length) == ("g_model", "g_model_len")
    kws = bundle_symbols("KWS tiny")
    assert (kws.model_array, kws.namespace, kws.resolver_type) == (
        "g_kws_tiny",
        "kws_tiny_manifest",
        "KwsTinyOpResolver",
    )
    for bad in ("", "!!!", "→←"):
        with pytest.raises(HandoffError, match="model_name"):
            bundle_symbols(bad)


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_any_text_gives_a_valid_reserved_word_free_identifier(text: str) -> None:
    ident = c_identifier(text)
    assert IDENT.match(ident) and "__" not in ident and ident not in C_KEYWORDS


@needs_gxx
def test_generated_identifiers_and_strings_compile_and_print_back(tmp_path: Path) -> None:
    rng = random.Random(7)
    alphabet = 'aZ09 _-.é"\\?\n\tΩ€'
    names = sorted({c_identifier("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))) for _ in range(200)})
    texts = [
        'say "hi"',
        "back\\slash",
        "??=trigraph",
        "tab\tnew\nline",
        "\x7f\x01",
        "€uro Ω",
        "\x017 octal then digit",
        "\\x41b",
    ]
    source = [
        "#include <cstdio>",
        "#include <cstring>",
        *(f"int g_{n} = {i};" for i, n in enumerate(names)),
        "int main() {",
        *(f"  std::fputs({c_string(t)}, stdout); std::fputc(0, stdout);" for t in texts),
        "  return 0;",
        "}",
    ]
    printed = compile_and_run(tmp_path, "\n".join(source) + "\n")
    assert printed.split(b"\0")[:-1] == [t.encode("utf-8") for t in texts]


@needs_gxx
def test_numeric_literals_round_trip_through_the_compiler(tmp_path: Path) -> None:
    arrays = {
        "float": np.array([0.1, -0.0, 1e-45, 3.4028235e38, np.inf, -np.inf, 1 / 3, 7.0], np.float32),
        "int32_t": np.array([-(2**31), 2**31 - 1, 0, -5], np.int32),
        "int8_t": np.array([-128, 127, 0, -1], np.int8),
        "uint8_t": np.array([0, 255, 17], np.uint8),
        "int64_t": np.array([-(2**63), 2**63 - 1], np.int64),
    }
    source = ["#include <cmath>", "#include <cstdint>", "#include <cstdio>"]
    for index, (ctype, values) in enumerate(arrays.items()):
        source.append(f"const {ctype} a{index}[{values.size}] = {{\n{value_lines(values)}\n}};")
    source += [
        "int main() {",
        *(f"  std::fwrite(a{i}, sizeof(a{i}), 1, stdout);" for i in range(len(arrays))),
        "  return 0;",
        "}",
    ]
    printed = compile_and_run(tmp_path, "\n".join(source) + "\n")
    assert printed == b"".join(values.tobytes() for values in arrays.values())


def test_op_table_and_unsupported_ops_are_named() -> None:
    codes = [
        OperatorCode("CONV_2D", 3),
        OperatorCode("GELU", 1),
        OperatorCode("CUSTOM", 1, "SignalWindow"),
        OperatorCode("CUSTOM", 1, "MyOwnOp"),
    ]
    entries = resolver_entries(codes)
    assert [e.method for e in entries] == ["AddConv2D", None, "AddWindow", None]
    with pytest.raises(HandoffError) as caught:
        require_tflm_support(entries, {"INT8", "FLOAT16"}, model="m.tflite")
    assert "GELU" in caught.value.message and "CUSTOM:MyOwnOp" in caught.value.message
    assert "FLOAT16" in caught.value.message and "platform" in (caught.value.hint or "")
    require_tflm_support(entries[:1], {"INT8"}, model="m.tflite")  # supported: no error
    assert len(set(TFLM_BUILTINS.values())) == len(TFLM_BUILTINS)


def test_structural_check_catches_a_tampered_resolver() -> None:
    symbols = bundle_symbols("net")
    entries = resolver_entries([OperatorCode("CONV_2D", 1), OperatorCode("RELU", 1), OperatorCode("SOFTMAX", 1)])
    text = render_op_resolver_header(entries, symbols, source="net.tflite", edgekd_version="test")
    assert check_op_resolver_header(text, entries, symbols)["op_count"] == 3
    tampered = {
        "count": text.replace("MicroMutableOpResolver<3>", "MicroMutableOpResolver<2>"),
        "duplicate": text.replace("resolver.AddRelu()", "resolver.AddConv2D()"),
        "missing include": text.replace("#include", "// include"),
        "unknown method": text.replace("AddSoftmax", "AddSoftMax"),
    }
    for broken in tampered.values():
        with pytest.raises(HandoffError, match="structural"):
            check_op_resolver_header(broken, entries, symbols)


def _tensor(index: int, nbytes: int, *, constant: bool = False) -> TensorInfo:
    return TensorInfo(
        index=index, name=f"t{index}", shape=(nbytes,), type_name="INT8", constant=constant, variable=False, quant=None
    )


def test_liveness_planner_reuses_memory_of_dead_tensors() -> None:
    # t0 (100 B) -> op0 -> t1 (200 B) -> op1 -> t2 (50 B); t3 is a 4 kB weight (in flash, not the arena).
    tensors = (_tensor(0, 100), _tensor(1, 200), _tensor(2, 50), _tensor(3, 4096, constant=True))
    ops = (OperatorUse(0, (0, 3), (1,)), OperatorUse(0, (1,), (2,)))
    model = TfliteModel(
        schema_version=3,
        operator_codes=(OperatorCode("FULLY_CONNECTED", 1),),
        subgraphs=(SubgraphInfo(tensors, ops, (0,), (2,)),),
        inputs=(),
        outputs=(),
        input_tensor_names=(),
        output_tensor_names=(),
        metadata={},
    )
    # Aligned to 16: t1 208 at 0; t0 112 live with t1 -> at 208; t2 64 reuses t0's place (t0 dead by then).
    assert estimate_head(model) == 208 + 112


def test_names_from_the_model_cannot_inject_code_through_comments() -> None:
    assert c_comment("evil\n#define X 1") == "evil #define X 1" and c_comment("ends\\") == "ends/"
    assert "??/" not in c_comment("trigraph??/")
    symbols = bundle_symbols("net")
    entries = resolver_entries([OperatorCode("CONV_2D", 1), OperatorCode("CUSTOM", 1, "x\nint injected = 1;\\")])
    text = render_op_resolver_header(entries, symbols, source="net.tflite", edgekd_version="test")
    assert all(line.startswith("//") for line in text.splitlines() if "injected" in line)
    assert not any(line.rstrip().endswith("\\") for line in text.splitlines())
