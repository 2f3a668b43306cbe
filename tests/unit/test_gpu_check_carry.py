"""The GPU check's carry (devtools/device_carry.py) and report (bench/gpu_check.py), without ComfyUI or a GPU."""
import importlib
import math
import os
import sys
import zipfile

import pytest

from bench import gpu_check
from devtools import device_carry


def test_wheel_project_names_the_distribution():
    assert device_carry.wheel_project("comfy_kitchen-0.2.31-cp312-abi3-manylinux_2_28_x86_64.whl") == "comfy-kitchen"
    assert device_carry.wheel_project("pydantic_core-2.50.5-cp312-cp312-manylinux2014_x86_64.whl") == "pydantic-core"
    assert device_carry.wheel_project("PyYAML-6.0-cp312-cp312-manylinux2014_x86_64.whl") == "pyyaml"


def test_shim_imports_and_raises_on_use(tmp_path, monkeypatch):
    name = "freeaccel_shim_probe"
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text(device_carry.SHIM_SOURCE.format(name=name))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        shim = importlib.import_module(name)
        from freeaccel_shim_probe.ndimage import gaussian_filter  # noqa: F401  (a submodule and a name in it)
        stats = importlib.import_module(f"{name}.stats")
        annotation = shim.container.InputContainer  # attribute chains resolve, as module-level annotations need

        class Derived(stats.rv_continuous):  # subclassing works; instantiating does not
            pass
        for call in (lambda: gaussian_filter([1.0]), Derived, annotation):
            with pytest.raises(RuntimeError, match=rf"{name} is not installed .*stand-in"):
                call()
    finally:
        for module in [m for m in sys.modules if m.split(".")[0] == name]:
            del sys.modules[module]


def test_strip_wheels_drops_the_extensions_and_their_record_lines(tmp_path):
    wheel = tmp_path / "comfy_kitchen-0.2.31-cp312-abi3-manylinux_2_28_x86_64.whl"
    record = ("comfy_kitchen/__init__.py,sha256=a,1\ncomfy_kitchen/backends/cuda/_C.abi3.so,sha256=b,2\n"
              "comfy_kitchen/backends/hip/_C.abi3.so,sha256=c,3\ncomfy_kitchen-0.2.31.dist-info/RECORD,,\n")
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("comfy_kitchen/__init__.py", "x = 1\n")
        archive.writestr("comfy_kitchen/backends/cuda/_C.abi3.so", b"\0" * 100)
        archive.writestr("comfy_kitchen/backends/hip/_C.abi3.so", b"\0" * 100)
        archive.writestr("comfy_kitchen-0.2.31.dist-info/RECORD", record)
    other = tmp_path / "pillow-13.0.0-cp312-cp312-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("PIL/_imaging.so", b"\0")
    device_carry.strip_wheels(str(tmp_path))
    with zipfile.ZipFile(wheel) as archive:
        assert archive.namelist() == ["comfy_kitchen/__init__.py", "comfy_kitchen-0.2.31.dist-info/RECORD"]
        assert archive.read("comfy_kitchen-0.2.31.dist-info/RECORD").decode() == (
            "comfy_kitchen/__init__.py,sha256=a,1\ncomfy_kitchen-0.2.31.dist-info/RECORD,,\n")
    with zipfile.ZipFile(other) as archive:
        assert archive.namelist() == ["PIL/_imaging.so"]  # not named in STRIPPED: untouched


def test_comfyui_copy_leaves_out_tests_api_nodes_and_large_tokenizer_data(tmp_path):
    source, target = tmp_path / "comfyui", tmp_path / "carry"
    files = {"nodes.py": 10, "tests/test_x.py": 10, "comfy_api_nodes/api.py": 10, "comfy/sd.py": 10,
             "comfy/text_encoders/t5.py": 300_000, "comfy/text_encoders/t5_tokenizer/tokenizer.json": 300_000,
             "comfy/text_encoders/t5_tokenizer/small.json": 100, "comfy/sd1_tokenizer/vocab.json": 300_000}
    for path, size in files.items():
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        (source / path).write_bytes(b"#" * size)
    device_carry.copy_comfyui(str(source), str(target))
    copied = sorted(os.path.relpath(os.path.join(folder, name), target) for folder, _, names in os.walk(target)
                    for name in names)
    assert copied == ["comfy/sd.py", "comfy/text_encoders/t5.py", "comfy/text_encoders/t5_tokenizer/small.json",
                      "nodes.py"]


def test_prepare_imports_lists_missing_wheels_without_installing(tmp_path):
    (tmp_path / "wheels").mkdir()
    for name in ("pytest-9.2.0-py3-none-any.whl", "freeaccel_not_a_package-1.0-py3-none-any.whl"):
        (tmp_path / "wheels" / name).write_bytes(b"")
    report = gpu_check.prepare_imports(str(tmp_path), install=False)
    assert report["wheels"] == 2
    assert report["missing"] == ["freeaccel_not_a_package-1.0-py3-none-any.whl"]  # pytest is installed here
    assert report["installed"] == [] and report["shims"] == []


def _record():
    environment = {"device": "NVIDIA H200", "torch": "2.11.0", "cuda": "13.0", "python": "3.12.3"}
    row = {"group": "wan21 21x30x52 bf16 sdpa", "dtype": "bfloat16", "backend": "sdpa", "variant": "TokenPrune 0.5",
           "steps": 1, "seconds_per_call": 0.5, "speedup": 1.6, "peak_mb": 3000.0, "peak_vs_unpatched": 0.9,
           "error": None}
    failed = dict(row, variant="LocalWindow", seconds_per_call=math.nan, speedup=math.nan, peak_mb=math.nan,
                  peak_vs_unpatched=math.nan, error="RuntimeError: No available kernel")
    small = {"case": "wan21 TokenPrune 0.5", "steps": 3, "relative_max_error": 1e-6, "unpatched_error": 2e-7,
             "syncs": 7, "unpatched_syncs": 4}
    plan = [{"name": "wan21 21x30x52 bf16 sdpa", "shape": [1, 16, 21, 60, 104], "estimate_s": 40.0,
             "status": "done", "seconds": 35.0},
            {"name": "flux 1024x1024 fp16 sage", "shape": [1, 16, 128, 128], "estimate_s": 1.0,
             "status": "not run: estimate 1 s past the 300 s budget"}]
    return {"dry_run": False, "seconds": 400.0, "setup": {"environment": environment, "comfyui_version": "0.33.0"},
            "cuda_tests": {"command": "-m pytest -m cuda", "summary": "8 passed"}, "exactness": [small],
            "rows": [row, failed], "plan": plan, "estimate_s": 41.0}


def test_report_writes_json_and_markdown(tmp_path):
    markdown = open(gpu_check.write_report(_record(), str(tmp_path))).read()
    assert markdown.startswith("GPU check: NVIDIA H200, torch 2.11.0 (CUDA 13.0), Python 3.12.3, ComfyUI 0.33.0; "
                               "6.7 min in all.")
    assert "CUDA tests (`-m pytest -m cuda`): 8 passed" in markdown
    assert "| wan21 TokenPrune 0.5 | 3 | 1.00e-06 | 2.00e-07 | 7 | 4 |" in markdown
    assert "| wan21 21x30x52 | bfloat16 | sdpa | TokenPrune 0.5 | 1 | 0.500 | 1.60x | 3000 | 0.90x |  |" in markdown
    assert "| LocalWindow | 1 | n/a | n/a | n/a | n/a | RuntimeError: No available kernel |" in markdown
    assert "| flux 1024x1024 fp16 sage | 1x16x128x128 | 1.0 | n/a | not run: estimate 1 s past the 300 s budget |" \
        in markdown
    import json
    saved = json.load(open(tmp_path / gpu_check.JSON_NAME))
    assert saved["rows"][1]["speedup"] is None  # NaN is not JSON


def test_prepare_imports_installs_missing_wheels_and_puts_them_on_the_path(tmp_path, monkeypatch):
    name = "freeaccel_carry_probe"
    dist_info = f"{name}-1.0.dist-info"
    wheel = tmp_path / "wheels" / f"{name}-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{name}/__init__.py", "VALUE = 42\n")
        archive.writestr(f"{dist_info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        archive.writestr(f"{dist_info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                               "Tag: py3-none-any\n")
        archive.writestr(f"{dist_info}/RECORD", f"{name}/__init__.py,,\n{dist_info}/METADATA,,\n"
                                                f"{dist_info}/WHEEL,,\n{dist_info}/RECORD,,\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", "")
    report = gpu_check.prepare_imports(str(tmp_path))
    assert report["installed"] == [wheel.name] and "install_error" not in report
    assert str(tmp_path / "site") in sys.path and os.environ["PYTHONPATH"] == str(tmp_path / "site")
    try:
        assert importlib.import_module(name).VALUE == 42
    finally:
        sys.modules.pop(name, None)
