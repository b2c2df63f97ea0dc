"""The registry meta-test: its checker (tests/support/registry_coverage.py, run by tests/conftest.py at the end
of every whole-suite session) and the claim that a new converter is one module + one registry line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from edgekd import registry
from edgekd.artifacts import create_artifact
from edgekd.converter_protocol import Converter, ConverterEntry
from edgekd.errors import ConversionError
from edgekd.stages.conversion import packages_of
from tests.support.registry_coverage import registry_entries, uncovered, unknown, whole_suite

REPO = Path(__file__).resolve().parents[2]
TOY = ConverterEntry("tests.support.toy_converter:ToyConverter", inputs=("onnx",), outputs=("toy",),
                     precisions=("fp32",), packages=("numpy",))  # fmt: skip


@pytest.fixture
def user_onnx(tmp_path: Path):
    """A file from elsewhere, described as an ONNX artifact (the toy never parses it)."""
    path = tmp_path / "theirs" / "model.onnx"
    path.parent.mkdir()
    path.write_bytes(b"\x08\x07not-really-onnx")
    return create_artifact(path, name="onnx_fp32", format="onnx", precision="fp32", producer="someone else")


def test_toy_converter_is_one_module_and_one_registry_line(monkeypatch, user_onnx, tmp_path):
    monkeypatch.setitem(registry.CONVERTERS, "toy", TOY)  # the one registry line

    toy = registry.converter("toy")
    assert isinstance(toy, Converter) and registry.converter_unavailable("toy") is None
    assert registry.converters_between("onnx", "toy") == ["toy"]  # stages find it by format
    assert packages_of(["toy"]) == ("numpy",)  # and key their cache on what it declares

    # dispatch fills the toy's own options from a recipe-like mapping (keys it does not declare are others')
    [copy] = registry.run_converter("toy", user_onnx, {"precision": "fp32", "int8_io": "int8"}, tmp_path / "out")
    assert copy.format == "toy" and copy.name == "toy_fp32" and copy.path.read_bytes() == user_onnx.path.read_bytes()
    assert copy.path.parent == tmp_path / "out" and user_onnx.path.exists()

    # the input format is checked once, by dispatch, from the registry line
    torch_file = create_artifact(user_onnx.path, name="student_torch", format="torch", producer="someone else")
    with pytest.raises(ConversionError, match=r"toy converts onnx artifacts, got torch \(model.onnx\)"):
        registry.run_converter("toy", torch_file, {}, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()

    # and the meta-test requires a test for it
    entries = registry_entries()
    assert entries["converter:toy"] is False
    assert uncovered(entries, passed=set(entries) - {"converter:toy"}, skipped=()) == [
        "registry entry converter:toy has no test: mark a test that exercises it @pytest.mark.covers('converter:toy')"
    ]
    assert uncovered(entries, passed=set(entries), skipped=()) == []


def test_every_registry_entry_imports_and_converters_keep_the_protocol():
    for name in registry.CONVERTERS:
        converter = registry.converter(name)
        assert isinstance(converter, Converter), name
        assert converter.name == name
        for field_name, info in converter.Options.model_fields.items():
            assert info.description, f"{name}: option {field_name} has no description"
        reason = converter.available()
        assert reason is None or "pip install" in reason
    for table, kind in ((registry.TARGET_KINDS, "target kind"), (registry.ENERGY_METERS, "energy meter")):
        for name in table:
            assert isinstance(registry.load(table, name, kind), type), name


def test_skipped_only_counts_as_missing_unless_an_extra_with_its_own_ci_job():
    entries = {"converter:a": False, "converter:b": True, "meter:c": False}
    lines = uncovered(entries, passed=(), skipped={"converter:a", "converter:b"})
    assert lines == [
        (
            "registry entry converter:a has only skipped tests: mark a test that exercises it "
            "@pytest.mark.covers('converter:a')"
        ),
        "registry entry meter:c has no test: mark a test that exercises it @pytest.mark.covers('meter:c')",
    ]
    assert unknown(entries, ["meter:c", "meter:typo"]) == ["@pytest.mark.covers('meter:typo') names no registry entry"]


def test_only_a_whole_suite_run_is_judged():
    def config(**option):
        values = {"keyword": "", "markexpr": "", "deselect": None, "lf": False, "collectonly": False, **option}
        return SimpleNamespace(option=SimpleNamespace(**values), args_source=pytest.Config.ArgsSource.TESTPATHS)

    assert whole_suite(config())
    assert not whole_suite(config(keyword="onnx")) and not whole_suite(config(markexpr="not slow"))
    files = config()
    files.args_source = pytest.Config.ArgsSource.ARGS  # `pytest tests/converters/test_x.py`
    assert not whole_suite(files)


INNER_CONFTEST = """
from edgekd import registry
from edgekd.converter_protocol import ConverterEntry
from tests.support.registry_coverage import MARKER, RegistryCoverage

registry.CONVERTERS["toy"] = ConverterEntry("tests.support.toy_converter:ToyConverter", inputs=("onnx",),
                                            outputs=("toy",), precisions=("fp32",), packages=())


def pytest_addoption(parser):
    parser.addoption("--require-covered", action="append", default=[])


def pytest_configure(config):
    config.addinivalue_line("markers", MARKER)
    config.pluginmanager.register(RegistryCoverage(required=config.getoption("--require-covered")), "coverage")
"""

INNER_TESTS = """
import pytest
from edgekd import registry


@pytest.mark.covers(*[f"converter:{n}" for n in registry.CONVERTERS if n != "toy"])
@pytest.mark.covers(*[f"target:{n}" for n in registry.TARGET_KINDS], *[f"meter:{n}" for n in registry.ENERGY_METERS])
def test_covers_every_entry_but_the_toy():
    pass


@pytest.mark.covers("target:ssh")
def test_ssh_skips():
    pytest.skip("no sshd here")
"""


def _inner_session(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text(
        f"[pytest]\ntestpaths = t\npythonpath = {REPO}\naddopts = -p no:cacheprovider\n"
    )
    (tmp_path / "t").mkdir(exist_ok=True)
    (tmp_path / "conftest.py").write_text(INNER_CONFTEST)
    (tmp_path / "t" / "test_inner.py").write_text(INNER_TESTS)
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip


def test_a_whole_session_fails_naming_each_uncovered_entry(tmp_path):
    """The real hook in a real pytest session: all tests pass, yet the session fails on the toy (no test)."""
    done = _inner_session(tmp_path)
    lines = [line for line in done.stdout.splitlines() if line.startswith("REGISTRY META-TEST")]
    assert done.returncode == 1, done.stdout + done.stderr
    assert lines == [
        (
            "REGISTRY META-TEST: registry entry converter:toy has no test: mark a test that exercises it "
            "@pytest.mark.covers('converter:toy')"
        ),
    ]
    assert "1 passed, 1 skipped" in done.stdout  # ssh's skip does not matter: another test passed for it

    subset = _inner_session(tmp_path, "-k", "skips")  # a subset is not judged...
    assert subset.returncode == 0 and "REGISTRY META-TEST" not in subset.stdout, subset.stdout
    required = _inner_session(tmp_path, "-k", "skips", "--require-covered", "target:ssh")  # ...unless asked
    assert required.returncode == 1 and "registry entry target:ssh has only skipped tests" in required.stdout
