"""Prove the bundle's C++ on the host: it compiles, the array is the .tflite byte for byte, and is aligned.

A check program is compiled with g++ together with model_data.cc (two translation units that both include
every generated header, so a header that defines something twice fails at link time). Golden-vector sizes
are checked against the manifest with static_assert. Run, the program writes `g_model` back out (its
sha256 must equal the .tflite's) and reports the array's address modulo 16. op_resolver.h needs the TFLM
headers to compile, so it is checked structurally instead (op_resolver.check_op_resolver_header).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from edgekd.errors import HandoffError
from edgekd.fileio import sha256_file
from edgekd.handoff.c_array import MODEL_ALIGNMENT
from edgekd.handoff.identifiers import BundleSymbols

CXX_FLAGS = ["-std=c++11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O0"]
_TIMEOUT_S = 300  # compiling a multi-megabyte array literal takes a while
_HEADERS = ("model_data.h", "model_manifest.h", "golden.h")


def find_compiler(name: str = "g++") -> str | None:
    return shutil.which(name)


def compiler_version(compiler: str) -> str:
    try:
        done = subprocess.run([compiler, "-dumpfullversion"], capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return "unknown"
    return done.stdout.strip() or "unknown"


def _check_main(symbols: BundleSymbols, golden_sizes: dict[str, int]) -> str:
    ns = symbols.namespace
    asserts = [
        f'static_assert(sizeof({name}) == {ns}::k{kind}{index}Bytes, "{name} differs from the manifest");'
        for (kind, index, name), size in _golden_items(symbols, golden_sizes)
        if size > 0
    ]
    includes = "".join(f'#include "{header}"\n' for header in _HEADERS)
    return f"""// Host check written by edgekd: g_model round trip, alignment, headers agree.
#include <cstddef>
#include <cstdint>
#include <cstdio>
{includes}
{chr(10).join(asserts)}

unsigned int second_translation_unit();

int main(int argc, char** argv) {{
  if (argc != 2) {{
    std::fprintf(stderr, "usage: %s OUT_FILE\\n", argv[0]);
    return 2;
  }}
  const unsigned long misalignment =
      static_cast<unsigned long>(reinterpret_cast<std::uintptr_t>({symbols.model_array}) % {MODEL_ALIGNMENT}u);
  if ({symbols.model_length} != {ns}::kModelBytes) {{
    std::fprintf(stderr, "length %u differs from the manifest's %u\\n", {symbols.model_length}, {ns}::kModelBytes);
    return 4;
  }}
  std::FILE* out = std::fopen(argv[1], "wb");
  if (out == nullptr) return 5;
  const std::size_t written = std::fwrite({symbols.model_array}, 1, {symbols.model_length}, out);
  if (std::fclose(out) != 0 || written != {symbols.model_length}) return 6;
  std::printf("{{\\"misalignment\\": %lu, \\"length\\": %u, \\"arena\\": %u, \\"second_tu\\": %u}}\\n",
              misalignment, {symbols.model_length}, {ns}::kTensorArenaBytes, second_translation_unit());
  return 0;
}}
"""


def _check_second(symbols: BundleSymbols) -> str:
    includes = "".join(f'#include "{header}"\n' for header in _HEADERS)
    return (
        f"// Second translation unit: every header included twice in one program must still link.\n{includes}\n"
        f"unsigned int second_translation_unit() {{ return {symbols.model_length} > 0u ? 1u : 0u; }}\n"
    )


def _golden_items(symbols: BundleSymbols, golden_sizes: dict[str, int]) -> list[tuple[tuple[str, int, str], int]]:
    items = []
    for key, size in golden_sizes.items():  # keys "input_0", "output_1" (golden.npz names)
        kind, index = key.split("_")
        name = symbols.golden_input(int(index)) if kind == "input" else symbols.golden_output(int(index))
        items.append(((kind.capitalize(), int(index), name), size))
    return items


def verify_sources(
    bundle_dir: Path,
    model_file: Path,
    symbols: BundleSymbols,
    golden_sizes: dict[str, int],
    *,
    compiler: str = "g++",
    required: bool = False,
) -> dict[str, Any]:
    """Compile and run the check program. Returns what was checked; raises HandoffError on any mismatch.

    Without the compiler, returns {"compiled": False, "skipped": why} unless `required`.
    """
    found = find_compiler(compiler)
    if found is None:
        why = f"{compiler} not found on PATH"
        if required:
            raise HandoffError(f"cannot verify the bundle: {why}", hint="install g++ (Debian: apt-get install g++)")
        return {"compiled": False, "skipped": why}
    with tempfile.TemporaryDirectory(prefix="edgekd-handoff-check-") as build_text:
        build = Path(build_text)
        (build / "check_main.cc").write_text(_check_main(symbols, golden_sizes), encoding="utf-8")
        (build / "check_second.cc").write_text(_check_second(symbols), encoding="utf-8")
        program = build / "check"
        argv = [
            found,
            *CXX_FLAGS,
            f"-I{bundle_dir}",
            str(bundle_dir / "model_data.cc"),
            str(build / "check_main.cc"),
            str(build / "check_second.cc"),
            "-o",
            str(program),
        ]
        compiled = _run(argv, "compiling the bundle's sources")
        if compiled.returncode != 0:
            raise HandoffError(
                "the generated C++ does not compile: " + _first_lines(compiled.stderr),
                hint="this is a bug in edgekd's generator; please report it with the model",
            )
        round_trip = build / "g_model.bin"
        ran = _run([str(program), str(round_trip)], "running the check program")
        if ran.returncode != 0:
            raise HandoffError(
                f"the check program failed (exit {ran.returncode}): {_first_lines(ran.stderr)}",
                hint="the generated array or manifest is inconsistent; please report it",
            )
        report = json.loads(ran.stdout)
        expected, actual = sha256_file(model_file), sha256_file(round_trip)
    if actual != expected:
        raise HandoffError(
            f"{symbols.model_array} written back differs from {model_file.name} "
            f"(sha256 {actual[:12]}… ≠ {expected[:12]}…)",
            hint="please report this bug",
        )
    if report["misalignment"] != 0:
        raise HandoffError(
            f"{symbols.model_array} is not {MODEL_ALIGNMENT}-byte aligned "
            f"(address mod {MODEL_ALIGNMENT} = {report['misalignment']})",
            hint="the compiler ignored alignas; please report the compiler and version",
        )
    return {
        "compiled": True,
        "compiler": f"{Path(found).name} {compiler_version(found)}",
        "flags": CXX_FLAGS,
        "translation_units": ["model_data.cc", "check_main.cc", "check_second.cc"],
        "headers_compiled": list(_HEADERS),
        "round_trip_sha256": actual,
        "round_trip_matches": True,
        "aligned": True,
        "alignment": MODEL_ALIGNMENT,
        "length": report["length"],
    }


def _run(argv: list[str], what: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise HandoffError(f"{what} took longer than {_TIMEOUT_S} s", hint="the model may be very large") from None
    except OSError as exc:
        raise HandoffError(f"{what} failed to start: {exc}") from None


def _first_lines(text: str, count: int = 8) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(lines[:count]) + ("\n…" if len(lines) > count else "")


TFLM_FLAGS = ["-std=c++17", "-fsyntax-only", "-DTF_LITE_STATIC_MEMORY"]


def check_against_tflm(bundle_dir: Path, include_dirs: list[Path], *, compiler: str = "g++") -> dict[str, Any]:
    """Compile self_test.cc (and with it op_resolver.h) against a TFLM source tree, syntax only.

    `include_dirs`: the TFLM root plus its third-party include folders (flatbuffers, gemmlowp). Without
    them the resolver header is only checked structurally; with them a misspelt Add…() or a wrong
    template fails here, as it would in the firmware build.
    """
    if not include_dirs:
        return {"compiled": False, "skipped": "no TFLM headers given ([handoff] tflm_include)"}
    missing = [str(d) for d in include_dirs if not Path(d).is_dir()]
    if missing:
        raise HandoffError(
            f"[handoff] tflm_include folder(s) not found: {', '.join(missing)}",
            hint="give the tflite-micro checkout and its flatbuffers and gemmlowp include folders",
        )
    found = find_compiler(compiler)
    if found is None:
        return {"compiled": False, "skipped": f"{compiler} not found on PATH"}
    argv = [found, *TFLM_FLAGS, f"-I{bundle_dir}", *(f"-I{d}" for d in include_dirs), str(bundle_dir / "self_test.cc")]
    done = _run(argv, "compiling self_test.cc against the TFLM headers")
    if done.returncode != 0:
        raise HandoffError(
            "self_test.cc / op_resolver.h do not compile against the given TFLM headers: " + _first_lines(done.stderr),
            hint="the TFLM tree may be older than the model's operators; or report it as a bug",
        )
    return {
        "compiled": True,
        "flags": TFLM_FLAGS,
        "files": ["self_test.cc", "op_resolver.h"],
        "include_dirs": [str(d) for d in include_dirs],
    }
