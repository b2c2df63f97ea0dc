"""Flash and RAM of a TFLite Micro bundle, and [handoff] max_arena_kb / max_flash_kb budgets, on real TFLite models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekd.artifacts import describe_file
from edgekd.config.handoff import HandoffConfig
from edgekd.errors import HandoffError, RecipeError
from edgekd.handoff import tflm_code_size as table
from edgekd.handoff.bundle import HandoffResult, build_handoff
from edgekd.handoff.memory import flash_estimate
from edgekd.recipe import parse_recipe

REPO = Path(__file__).resolve().parents[2]
from tests.support.tflite_models import build_tflite_models

LABELS = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_tflite_models(tmp_path_factory.mktemp("tflite_models"))


def bundle(model: Path, out: Path, **config: object) -> HandoffResult:
    return build_handoff(describe_file(model), out, HandoffConfig(**config), labels=LABELS,
                         preprocessing={"mean": 0.25, "std": 0.5, "layout": "NCHW"}, calibration=None,
                         bench_summary=[], versions={})  # fmt: skip


def test_flash_counts_the_model_exactly_and_each_kernel_file_once() -> None:
    ops = ["CONV_2D", "ADD", "FULLY_CONNECTED", "CONV_2D"]
    flash = flash_estimate(1000, ops)
    files = {name for op in set(ops) for name in table.OP_FILES[op]}
    assert flash["model_bytes"] == 1000 and flash["method"] == "estimate" and "x86-64" in flash["basis"]
    assert flash["kernel_code_bytes"] == sum(table.FILE_TEXT_BYTES[name] for name in files) > 0
    assert flash["total_bytes"] == 1000 + flash["kernel_code_bytes"] + sum(table.CORE_TEXT_BYTES.values())
    assert set(flash["kernel_code_per_op"]) == {"ADD", "CONV_2D", "FULLY_CONNECTED"}
    shared = [op for op, names in table.OP_FILES.items() if names == table.OP_FILES.get("ABS")]
    if len(shared) > 1:  # operators of one source file (elementwise.cc) cost it once
        assert flash_estimate(0, shared[:2])["kernel_code_bytes"] == flash_estimate(0, shared[:1])["kernel_code_bytes"]
    assert flash_estimate(0, ["NOT_AN_OP"])["ops_without_estimate"] == ["NOT_AN_OP"]


def test_bundle_records_flash_and_ram_in_manifest_bundle_and_summary(models: dict[str, Path], tmp_path: Path) -> None:
    result = bundle(models["cnn_int8"], tmp_path / "handoff", zip=False)
    manifest = json.loads((tmp_path / "handoff" / "model_manifest.json").read_text())
    index = json.loads((tmp_path / "handoff" / "bundle.json").read_text())
    memory = manifest["memory"]
    assert index["memory"] == memory == result.summary()["memory"]
    model_bytes = (tmp_path / "handoff" / manifest["model"]["file"]).stat().st_size
    assert memory["flash"]["model_bytes"] == model_bytes
    assert set(memory["flash"]["kernel_code_per_op"]) | set(memory["flash"]["ops_without_estimate"]) == set(
        manifest["operators"]
    )
    io = sum(t["bytes"] for t in manifest["inputs"] + manifest["outputs"])
    assert memory["ram"] == {**memory["ram"], "arena_bytes": manifest["arena"]["bytes"], "io_bytes": io,
                             "total_bytes": manifest["arena"]["bytes"] + io}  # fmt: skip
    assert (
        "Flash:" in (tmp_path / "handoff" / "README.md").read_text()
        and "**estimates**" in (tmp_path / "handoff" / "README.md").read_text()
    )


def test_budgets_fail_with_the_overrun_named_and_write_nothing(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "handoff"
    with pytest.raises(
        HandoffError,
        match=r"tensor arena [\d.]+ KiB \(measured-tflm, with arena_margin\) exceeds max_arena_kb = 0.5 by",
    ) as info:
        bundle(models["cnn_int8"], out, max_arena_kb=0.5)
    assert "flash" not in info.value.message
    with pytest.raises(HandoffError, match=r"flash estimate [\d.]+ KiB \(model [\d.]+ KiB \+ kernel code [\d.]+ KiB \+ TFLM "
                       r"core [\d.]+ KiB, code estimated\) exceeds max_flash_kb = 1 by"):  # fmt: skip
        bundle(models["cnn_int8"], out, max_flash_kb=1)
    assert not out.exists() and not out.with_suffix(".zip").exists()
    fits = bundle(models["cnn_int8"], out, max_arena_kb=10_000, max_flash_kb=10_000, zip=False)
    assert fits.manifest["memory"]["flash"]["total_bytes"] < 10_000 * 1024


def test_budgets_apply_to_micro_only() -> None:
    with pytest.raises(RecipeError, match="max_arena_kb / max_flash_kb apply to platform = 'micro'"):
        parse_recipe({"handoff": {"platform": "linux", "max_flash_kb": 512}})


def test_ethos_u_bundle_has_the_vela_model_and_its_labelled_estimates(models: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("ethosu.vela", reason="Ethos-U needs ethos-u-vela")
    out = tmp_path / "handoff"
    result = bundle(models["cnn_int8"], out, platform="ethos-u55-128", zip=False)
    vela = result.manifest["ethos_u"]
    assert vela["label"].startswith("Vela estimates") and vela["accelerator"] == "ethos-u55-128"
    compiled = out / vela["file"]
    assert compiled.is_file() and compiled.read_bytes()[4:8] == b"TFL3" and compiled.stat().st_size > 0
    assert (
        vela["npu_operators"] + vela["cpu_operators"] > 0
        and vela["cycles_total"] > 0
        and vela["inferences_per_second"] > 0
    )
    assert vela["sram_bytes"] > 0 and vela["macs"] > 0
    assert json.loads((out / "bundle.json").read_text())["ethos_u"] == vela == result.summary()["ethos_u"]
    assert vela["file"] in result.files and "estimates, not measured on hardware" in (out / "README.md").read_text()
    assert result.manifest["memory"]["ram"]["arena_method"] == "measured-tflm"  # the Cortex-M path is still measured


def test_a_float_model_for_ethos_u_is_one_handoff_error(models: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("ethosu.vela", reason="Ethos-U needs ethos-u-vela")
    with pytest.raises(
        HandoffError, match=r"Vela placed none of cnn_fp32\.tflite's \d+ operators on the ethos-u55-128 NPU"
    ):
        bundle(models["cnn_fp32"], tmp_path / "handoff", platform="ethos-u55-128", zip=False)
    assert not (tmp_path / "handoff").exists()
