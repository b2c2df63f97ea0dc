"""The firmware bundle built from real TFLite models: files, round trip, manifest, golden vectors, arena."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgekd.artifacts import Artifact, describe_file
from edgekd.config.handoff import HandoffConfig
from edgekd.errors import HandoffError, UsageError
from edgekd.fileio import sha256_file
from edgekd.handoff import arena as arena_mod
from edgekd.handoff.bundle import HandoffResult, build_handoff

REPO = Path(__file__).resolve().parents[2]
from tests.support.tflite_models import build_tflite_models

DIGIT_LABELS = [str(i) for i in range(10)]
PREPROCESSING = {"mean": 0.25, "std": 0.5, "layout": "NCHW"}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_tflite_models(tmp_path_factory.mktemp("tflite_models"))


def bundle(
    model: Path, out: Path, *, labels: list[str] | None = None, calibration: Artifact | None = None, **config: object
) -> HandoffResult:
    return build_handoff(
        describe_file(model),
        out,
        HandoffConfig(**config),
        labels=labels if labels is not None else [],
        preprocessing=PREPROCESSING,
        calibration=calibration,
        bench_summary=[{"target": "local", "artifact": "tflite_int8", "p50_ms": 0.02}],
        versions={"onnx2tf": "test"},
    )


@pytest.fixture(scope="module")
def int8_bundle(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> HandoffResult:
    return bundle(
        models["cnn_int8"], tmp_path_factory.mktemp("run") / "handoff", labels=DIGIT_LABELS, model_name="digits"
    )


def litert(model: Path, inputs: list[np.ndarray]) -> tuple[list[dict], list[np.ndarray]]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model))
    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), inputs, strict=True):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    outputs = interpreter.get_output_details()
    return interpreter.get_input_details() + outputs, [interpreter.get_tensor(d["index"]) for d in outputs]


def c_array_values(text: str, name: str) -> list[str]:
    body = re.search(rf"{re.escape(name)}\[\d*\] = \{{(.*?)\}};", text, re.DOTALL)
    assert body, name
    return [item.strip() for item in body.group(1).replace("\n", " ").split(",") if item.strip()]


def test_int8_bundle_has_every_file_with_matching_checksums(
    int8_bundle: HandoffResult, models: dict[str, Path]
) -> None:
    folder = int8_bundle.path
    expected = {
        "digits.tflite",
        "model_data.cc",
        "model_data.h",
        "model_manifest.json",
        "model_manifest.h",
        "op_resolver.h",
        "golden.h",
        "golden.npz",
        "self_test.cc",
        "README.md",
        "bundle.json",
        "SHA256SUMS",
    }
    assert {p.name for p in folder.iterdir()} == expected
    assert not list(folder.parent.glob(".handoff.*")), "staging folder left behind"
    assert sha256_file(folder / "digits.tflite") == sha256_file(models["cnn_int8"])
    for name, digest in int8_bundle.files.items():
        assert sha256_file(folder / name) == digest, name
    sums = dict(reversed(line.split("  ")) for line in (folder / "SHA256SUMS").read_text().splitlines())
    assert {n: d for n, d in int8_bundle.files.items() if n != "SHA256SUMS"} == sums
    index = json.loads((folder / "bundle.json").read_text())
    assert index["versions"]["tflite_schema"] == 3 and index["versions"]["onnx2tf"] == "test"
    assert index["bench"][0]["target"] == "local"
    with zipfile.ZipFile(int8_bundle.zip_path) as archive:
        assert sorted(archive.namelist()) == sorted(f"handoff/{name}" for name in expected)
        for name in expected:
            assert archive.read(f"handoff/{name}") == (folder / name).read_bytes()
    summary = int8_bundle.summary()
    assert summary["path"] == str(folder) and summary["compiled"] and summary["round_trip_matches"]


def test_model_array_is_the_tflite_byte_for_byte_and_aligned(
    int8_bundle: HandoffResult, models: dict[str, Path]
) -> None:
    source = (int8_bundle.path / "model_data.cc").read_text()
    assert "alignas(16) const unsigned char g_digits[] = {" in source
    assert bytes(int(v, 16) for v in c_array_values(source, "g_digits")) == models["cnn_int8"].read_bytes()
    assert f"const unsigned int g_digits_len = {models['cnn_int8'].stat().st_size};" in source
    header = (int8_bundle.path / "model_data.h").read_text()
    assert "extern const unsigned char g_digits[];" in header and "extern const unsigned int g_digits_len;" in header
    check = int8_bundle.verification
    assert check["compiled"] and check["aligned"] and check["round_trip_matches"]
    assert check["round_trip_sha256"] == sha256_file(models["cnn_int8"])
    assert "-Werror" in check["flags"] and "model_manifest.h" in check["headers_compiled"]


def test_manifest_matches_what_litert_reads_from_the_model(int8_bundle: HandoffResult) -> None:
    manifest = json.loads((int8_bundle.path / "model_manifest.json").read_text())
    assert manifest == json.loads(json.dumps(int8_bundle.manifest))
    details, _ = litert(int8_bundle.path / "digits.tflite", [np.zeros((1, 8, 8, 1), np.int8)])
    entries = manifest["inputs"] + manifest["outputs"]
    for entry, detail in zip(entries, details, strict=True):
        assert entry["shape"] == detail["shape"].tolist() and entry["dtype"] == np.dtype(detail["dtype"]).name
        scale, zero = detail["quantization"]
        assert entry["quantization"]["scale"] == [pytest.approx(scale, rel=1e-7)]
        assert entry["quantization"]["zero_point"] == [zero]
    assert [manifest["inputs"][0]["name"], manifest["outputs"][0]["name"]] == ["image", "probs"]
    assert manifest["inputs"][0]["layout"] == "NHWC" and manifest["labels"] == DIGIT_LABELS
    assert manifest["preprocessing"]["mean"] == 0.25 and manifest["preprocessing"]["std"] == 0.5
    header = (int8_bundle.path / "model_manifest.h").read_text()
    assert f"constexpr int kInput0ZeroPoint = {manifest['inputs'][0]['quantization']['zero_point'][0]};" in header
    assert "constexpr int kInput0Dims[4] = {1, 8, 8, 1};" in header
    assert f"constexpr unsigned int kTensorArenaBytes = {int8_bundle.arena['bytes']}u;" in header
    assert 'kLabels[10] = {"0", "1"' in header


def test_op_resolver_has_exact_count_and_one_add_per_op(int8_bundle: HandoffResult) -> None:
    text = (int8_bundle.path / "op_resolver.h").read_text()
    assert "tflite::MicroMutableOpResolver<5>" in text
    assert re.findall(r"resolver\.(Add\w+)\(\)", text) == [
        "AddConv2D",
        "AddMaxPool2D",
        "AddReshape",
        "AddFullyConnected",
        "AddSoftmax",
    ]
    assert int8_bundle.verification["op_resolver"]["op_count"] == 5
    assert "structural" in int8_bundle.verification["op_resolver"]["check"]


def test_golden_vectors_round_trip_through_litert(int8_bundle: HandoffResult) -> None:
    with np.load(int8_bundle.path / "golden.npz") as golden:
        inputs, expected = [golden["input_0"]], [golden["output_0"]]
    assert inputs[0].dtype == np.int8 and inputs[0].shape == (1, 8, 8, 1)
    _, outputs = litert(int8_bundle.path / "digits.tflite", inputs)
    np.testing.assert_array_equal(outputs[0], expected[0])
    header = (int8_bundle.path / "golden.h").read_text()
    assert [int(v) for v in c_array_values(header, "g_digits_golden_input_0")] == inputs[0].reshape(-1).tolist()
    assert [int(v) for v in c_array_values(header, "g_digits_golden_output_0")] == expected[0].reshape(-1).tolist()
    assert int8_bundle.golden["tflm_max_abs_diff"] <= 1  # TFLM on the host reproduces LiteRT's outputs


def test_arena_is_measured_and_tflm_runs_in_it(int8_bundle: HandoffResult) -> None:
    from edgekd.handoff.tflm_measure import TflmProbe

    plan = int8_bundle.arena
    assert plan["method"] == "measured-tflm" and plan["margin"] == 0.2
    assert plan["bytes"] >= plan["basis_bytes"] * 1.2 and plan["bytes"] % 16 == 0
    with np.load(int8_bundle.path / "golden.npz") as golden:
        sample, expected = golden["input_0"], golden["output_0"]
    with TflmProbe(int8_bundle.path / "digits.tflite", [sample], 1) as probe:
        for size in (plan["basis_bytes"], plan["bytes"]):
            trial, outputs = probe.trial(size, keep_outputs=True)
            assert trial.ok and "Arena allocation total" in trial.report
            assert np.abs(outputs[0].astype(int) - expected.astype(int)).max() <= 1
        too_small, _ = probe.trial(plan["basis_bytes"] // 2)
        assert not too_small.ok and too_small.reason


def test_estimate_is_used_and_labelled_without_tflm(
    models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    measured = bundle(models["cnn_fp32"], tmp_path / "measured" / "handoff", zip=False).arena
    monkeypatch.setattr(arena_mod, "tflm_available", lambda: "tflite-micro is not installed (test)")
    result = bundle(models["cnn_fp32"], tmp_path / "estimated" / "handoff", zip=False)
    assert result.arena["method"] == "estimate" and "not installed" in result.arena["note"]
    assert result.zip_path is None and "tflm_max_abs_diff" not in result.golden
    assert result.arena["head_bytes"] == measured["head_bytes"]  # the liveness planner matches TFLM's head
    assert 0.7 * measured["basis_bytes"] <= result.arena["basis_bytes"] <= 1.5 * measured["basis_bytes"]
    assert '"estimate"' in (result.path / "model_manifest.h").read_text()


def test_float_model_bundle(models: dict[str, Path], tmp_path: Path) -> None:
    result = bundle(models["cnn_fp32"], tmp_path / "handoff", labels=DIGIT_LABELS)
    entry = result.manifest["inputs"][0]
    assert entry["dtype"] == "float32" and entry["quantization"] is None and entry["bytes"] == 256
    assert result.manifest["symbols"]["model_array"] == "g_model"  # the default model_name
    header = (result.path / "golden.h").read_text()
    assert "alignas(16) const float g_model_golden_input_0[64]" in header
    with np.load(result.path / "golden.npz") as golden:
        values = np.array([float(v.rstrip("f")) for v in c_array_values(header, "g_model_golden_output_0")], np.float32)
        np.testing.assert_array_equal(values, golden["output_0"].reshape(-1))  # 9 digits round-trip float32
    assert result.verification["compiled"] and result.arena["method"] == "measured-tflm"


def test_several_inputs_and_outputs(models: dict[str, Path], tmp_path: Path) -> None:
    result = bundle(models["multi_io_int8"], tmp_path / "handoff", model_name="sensor-fusion")
    manifest = result.manifest
    assert {e["name"]: e["shape"] for e in manifest["inputs"]} == {"audio": [1, 6], "meta": [1, 4]}
    assert {e["name"]: e["shape"] for e in manifest["outputs"]} == {"scores": [1, 3], "gate": [1, 6]}
    assert all(e["dtype"] == "int8" and e["quantization"] for e in manifest["inputs"] + manifest["outputs"])
    with np.load(result.path / "golden.npz") as golden:
        assert sorted(golden.files) == ["input_0", "input_1", "output_0", "output_1"]
        _, outputs = litert(result.path / "sensor_fusion.tflite", [golden["input_0"], golden["input_1"]])
        for index, output in enumerate(outputs):
            np.testing.assert_array_equal(output, golden[f"output_{index}"])
    header = (result.path / "model_manifest.h").read_text()
    second = manifest["inputs"][1]["shape"]
    assert "namespace sensor_fusion_manifest" in header and f"kInput1Dims[2] = {{1, {second[1]}}}" in header
    assert "kOutput1Name" in header and "g_sensor_fusion_golden_output_1" in (result.path / "golden.h").read_text()
    assert result.verification["compiled"]


def test_unsupported_op_is_named_and_nothing_is_left(models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(HandoffError, match="GELU") as caught:
        bundle(models["gelu_fp32"], tmp_path / "handoff")
    assert "linux" in (caught.value.hint or "")
    assert not list(tmp_path.iterdir())


def test_unsupported_op_is_allowed_for_linux(models: dict[str, Path], tmp_path: Path) -> None:
    result = bundle(models["gelu_fp32"], tmp_path / "handoff", platform="linux")
    assert result.arena["method"] == "estimate" and "GELU" in result.arena["note"]
    text = (result.path / "op_resolver.h").read_text()
    assert "MicroMutableOpResolver<1>" in text and "Not available in TFLite Micro" in text and "GELU" in text
    assert result.manifest["operators"] == ["MUL", "GELU"]


def test_fp16_model_is_refused_for_micro(models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(HandoffError, match="FLOAT16"):
        bundle(models["cnn_fp16"], tmp_path / "handoff")


def test_failed_rebuild_keeps_the_previous_bundle_and_rebuild_replaces_it(
    models: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "handoff"
    first = bundle(models["cnn_fp32"], out, zip=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(HandoffError):
        bundle(models["gelu_fp32"], out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    second = bundle(models["cnn_int8"], out, zip=False)
    assert second.files["model.tflite"] != first.files["model.tflite"]
    assert sha256_file(out / "model.tflite") == sha256_file(models["cnn_int8"])
    assert [p.name for p in tmp_path.iterdir()] == ["handoff"]


def test_missing_compiler_is_recorded_or_required(models: dict[str, Path], tmp_path: Path) -> None:
    result = bundle(models["cnn_int8"], tmp_path / "a" / "handoff", compiler="edgekd-no-such-cxx", zip=False)
    assert result.verification["compiled"] is False and "not found" in result.verification["skipped"]
    assert "Compilation skipped" in (result.path / "README.md").read_text()
    with pytest.raises(HandoffError, match="edgekd-no-such-cxx"):
        bundle(models["cnn_int8"], tmp_path / "b" / "handoff", compiler="edgekd-no-such-cxx", require_compiler=True)


def test_label_count_must_match_the_output(models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(HandoffError, match="3 labels given but .* 10 classes"):
        bundle(models["cnn_int8"], tmp_path / "handoff", labels=["a", "b", "c"])


def test_calibration_sample_becomes_the_golden_input(models: dict[str, Path], tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (5, 1, 8, 8)).astype(np.float32)  # NCHW, as edgekd's calibration set
    calibration_file = tmp_path / "calibration.npz"
    np.savez(calibration_file, x=x)
    calibration = Artifact(
        path=calibration_file, name="calibration", format="npz", sha256=sha256_file(calibration_file)
    )
    result = bundle(models["cnn_int8"], tmp_path / "handoff", calibration=calibration)
    spec = result.manifest["inputs"][0]["quantization"]
    expected = np.clip(np.rint(x[:1].transpose(0, 2, 3, 1) / spec["scale"][0]) + spec["zero_point"][0], -128, 127)
    with np.load(result.path / "golden.npz") as golden:
        np.testing.assert_array_equal(golden["input_0"], expected.astype(np.int8))
    index = json.loads((result.path / "bundle.json").read_text())
    assert index["calibration"]["sha256"] == sha256_file(calibration_file)
    assert result.golden["input_source"] == "calibration set sample 0"


def test_handoff_command_json_and_typed_error(models: dict[str, Path], tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from edgekd import console
    from edgekd.commands.handoff import handoff_cmd

    app = typer.Typer()
    app.command("handoff")(handoff_cmd)
    app.command("unused")(lambda: None)  # two commands: `handoff` stays a subcommand, as in cli.py
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(DIGIT_LABELS) + "\n")
    args = [
        "handoff",
        str(models["cnn_int8"]),
        "--out",
        str(tmp_path / "cmd" / "handoff"),
        "--model-name",
        "kws",
        "--labels",
        str(labels),
        "--mean",
        "0.5",
        "--std",
        "0.25",
    ]
    console.set_mode(json_output=True)
    try:
        done = CliRunner().invoke(app, args)
        failed = CliRunner().invoke(app, ["handoff", str(models["gelu_fp32"]), "--out", str(tmp_path / "bad")])
        bad_option = CliRunner().invoke(app, ["handoff", str(models["cnn_int8"]), "--platform", "rtos"])
    finally:
        console.set_mode()
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)["handoff"]
    assert summary["symbols"]["model_array"] == "g_kws" and summary["compiled"]
    manifest = json.loads((tmp_path / "cmd" / "handoff" / "model_manifest.json").read_text())
    assert manifest["labels"] == DIGIT_LABELS and manifest["preprocessing"]["std"] == 0.25
    assert isinstance(failed.exception, HandoffError) and "GELU" in failed.exception.message
    assert isinstance(bad_option.exception, UsageError) and "--platform" in bad_option.exception.message


def test_turning_zip_off_removes_a_stale_zip_and_precision_is_inferred(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "handoff"
    first = bundle(models["cnn_int8"], out)
    assert first.zip_path is not None and first.zip_path.exists() and first.manifest["model"]["precision"] == "int8"
    second = bundle(models["cnn_fp32"], out, zip=False)
    assert second.zip_path is None and not (tmp_path / "handoff.zip").exists()
    assert second.manifest["model"]["precision"] == "fp32"


def _tflm_stub(root: Path, *, without: str | None = None) -> Path:
    """A stand-in for the TFLM headers with the API surface the bundle's C++ uses (signatures only)."""
    from edgekd.handoff.op_resolver import TFLM_BUILTINS, TFLM_CUSTOM

    micro = root / "tensorflow" / "lite" / "micro"
    micro.mkdir(parents=True)
    methods = sorted((set(TFLM_BUILTINS.values()) | set(TFLM_CUSTOM.values())) - {without})
    (micro / "micro_mutable_op_resolver.h").write_text(
        "#pragma once\n#include <cstddef>\n#include <cstdint>\n"
        "typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;\nnamespace tflite {\n"
        "template <unsigned int tOpCount> class MicroMutableOpResolver {\n public:\n"
        + "".join(f"  TfLiteStatus {m}() {{ return kTfLiteOk; }}\n" for m in methods)
        + "};\n}  // namespace tflite\n"
    )
    (micro / "micro_interpreter.h").write_text(
        "#pragma once\n#include <cstddef>\n#include <cstdint>\n"
        "typedef union { int32_t* i32; int64_t* i64; float* f; char* raw; uint8_t* uint8; bool* b; int16_t* i16;"
        " int8_t* int8; } TfLitePtrUnion;\n"
        "typedef struct { TfLitePtrUnion data; size_t bytes; } TfLiteTensor;\nnamespace tflite {\n"
        "struct Model {};\ninline const Model* GetModel(const void*) { return nullptr; }\n"
        "class MicroInterpreter {\n public:\n"
        "  template <class R> MicroInterpreter(const Model*, R&, uint8_t*, size_t) {}\n"
        "  TfLiteStatus AllocateTensors() { return kTfLiteOk; }\n  TfLiteStatus Invoke() { return kTfLiteOk; }\n"
        "  TfLiteTensor* input(size_t) { return nullptr; }\n  TfLiteTensor* output(size_t) { return nullptr; }\n"
        "};\n}  // namespace tflite\n"
    )
    return root


def test_self_test_compiles_against_tflm_headers_when_given(models: dict[str, Path], tmp_path: Path) -> None:
    plain = bundle(models["multi_io_int8"], tmp_path / "plain" / "handoff", zip=False)
    assert plain.verification["tflm_headers"]["compiled"] is False
    text = (plain.path / "self_test.cc").read_text()
    assert "int model_self_test()" in text and "interpreter.input(1)" in text and "interpreter.output(1)" in text
    stub = _tflm_stub(tmp_path / "tflm")
    checked = bundle(models["multi_io_int8"], tmp_path / "checked" / "handoff", zip=False, tflm_include=[stub])
    assert checked.verification["tflm_headers"]["compiled"] is True
    assert "compiled against the TFLM headers" in (checked.path / "README.md").read_text()
    from edgekd.handoff.op_resolver import TFLM_BUILTINS

    method = TFLM_BUILTINS[checked.manifest["operators"][0]]  # a TFLM tree lacking one of the model's ops
    broken = _tflm_stub(tmp_path / "tflm-without-op", without=method)
    with pytest.raises(HandoffError, match=method):
        bundle(models["multi_io_int8"], tmp_path / "broken" / "handoff", zip=False, tflm_include=[broken])


@pytest.mark.skipif(not os.environ.get("EDGEKD_TFLM_INCLUDE"), reason="set EDGEKD_TFLM_INCLUDE to a TFLM tree")
def test_self_test_compiles_and_passes_on_a_real_tflm(models: dict[str, Path], tmp_path: Path) -> None:
    """EDGEKD_TFLM_INCLUDE: the TFLM root, flatbuffers, gemmlowp, ruy include folders (os.pathsep-separated).
    EDGEKD_TFLM_LIB (optional): a static TFLM library built with -fno-exceptions -fno-rtti
    -DTF_LITE_STATIC_MEMORY; then the self-test is linked, run, and must report 0 mismatches."""
    folders = [Path(p) for p in os.environ["EDGEKD_TFLM_INCLUDE"].split(os.pathsep) if p]
    library = os.environ.get("EDGEKD_TFLM_LIB")
    for name in ("cnn_int8", "cnn_fp32", "multi_io_int8"):
        result = bundle(models[name], tmp_path / name / "handoff", zip=False, tflm_include=folders, model_name=name)
        assert result.verification["tflm_headers"]["compiled"] is True
        if not library:
            continue
        main = tmp_path / name / "main.cc"
        main.write_text(f"int {name}_self_test();\nint main() {{ return {name}_self_test(); }}\n")
        program = tmp_path / name / "self_test"
        flags = ["-std=c++17", "-fno-exceptions", "-fno-rtti", "-DTF_LITE_STATIC_MEMORY", f"-I{result.path}"]
        build = subprocess.run(
            ["g++", *flags, *(f"-I{d}" for d in folders), str(main), str(result.path / "self_test.cc"),
             str(result.path / "model_data.cc"), library, "-o", str(program)],
            capture_output=True, text=True,
        check=False,)  # fmt: skip
        assert build.returncode == 0, build.stderr[-2000:]
        assert subprocess.run([str(program)], timeout=60, check=False).returncode == 0  # 0 outputs outside tolerance


def test_a_killed_build_leaves_the_previous_bundle_and_its_leftovers_are_cleaned(
    models: dict[str, Path], tmp_path: Path
) -> None:
    import signal
    import time

    out = tmp_path / "handoff"
    bundle(models["cnn_fp32"], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    zip_before = (tmp_path / "handoff.zip").read_bytes()
    marker = tmp_path / "verifying"
    script = f"""
import time
from pathlib import Path
import edgekd.handoff.bundle as bundle_mod
from edgekd.artifacts import describe_file
from edgekd.config.handoff import HandoffConfig

def stuck(*args, **kwargs):  # the build is half-way: staging written, nothing published
    Path({str(marker)!r}).write_text("now")
    time.sleep(120)

bundle_mod.verify_sources = stuck
bundle_mod.build_handoff(describe_file(Path({str(models["cnn_int8"])!r})), Path({str(out)!r}), HandoffConfig(),
                         labels=[], preprocessing={{}}, calibration=None, bench_summary=[], versions={{}})
"""
    child = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    try:
        for _ in range(600):
            if marker.exists() or child.poll() is not None:
                break
            time.sleep(0.1)
        assert marker.exists(), "the build never reached verification"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert (tmp_path / "handoff.zip").read_bytes() == zip_before
    assert [p.name for p in tmp_path.glob(".handoff.tmp-*")] == [f".handoff.tmp-{child.pid}"]
    bundle(models["cnn_int8"], out)  # the next run removes the dead run's staging folder
    assert not list(tmp_path.glob(".handoff.*"))
    assert sha256_file(out / "model.tflite") == sha256_file(models["cnn_int8"])


def test_a_crashing_tflm_trial_is_reported_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    import signal

    from edgekd.handoff import tflm_probe

    def segfault(*args: object) -> bool:  # what TFLM does at some too-small arena sizes
        os.kill(os.getpid(), signal.SIGSEGV)
        return True

    monkeypatch.setattr(tflm_probe, "_trial", segfault)
    answer = tflm_probe._run_one(b"", [], 1024, None, 0)  # forks: only the child dies
    assert answer == {"ok": False, "crashed": "SIGSEGV", "report": answer["report"]}


def test_a_hung_tflm_trial_is_killed(models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from edgekd.handoff import tflm_measure

    monkeypatch.setattr(tflm_measure, "_TRIAL_TIMEOUT_S", 0.0)
    probe = tflm_measure.TflmProbe(models["cnn_int8"], [np.zeros((1, 8, 8, 1), np.int8)], 1)
    with pytest.raises(tflm_measure.TflmFailure, match="took over"):
        probe.trial(1 << 20)
    assert probe._process.poll() is not None
    probe.close()
