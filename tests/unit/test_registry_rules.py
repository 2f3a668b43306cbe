"""The Comfy Registry scanner's rules, checked on every Python file the published archive contains.

Folders that .comfyignore keeps out of the archive (tests, bench, devtools, CI) may start processes: the real-server
tests launch ComfyUI's own main.py, as a user does."""
import os
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACK_DIRS = ("accel_core", "kernels", "nodes")
# Built from pieces so this file does not match its own patterns.
FORBIDDEN = [re.compile(p) for p in (r"\b" + "ev" + r"al\(", r"\b" + "ex" + r"ec\(", "sub" + "process",
                                     r"os\." + "sys" + "tem", r"\bpip\s+install\b.*\bimport\b")]
PRINT = re.compile(r"^\s*" + "pr" + r"int\(", re.MULTILINE)


def _ignored_prefixes():
    return tuple(entry.rstrip("/") + "/" for entry in (ROOT / ".comfyignore").read_text().split() if entry.endswith("/"))


def _python_files():
    skip = {".git", ".venv", ".venv-ci", ".device_carry", "runtime", "out", "__pycache__"}
    unpublished = _ignored_prefixes()
    found = []
    for folder, subfolders, names in os.walk(ROOT):
        subfolders[:] = [name for name in subfolders if name not in skip]  # pruned: the CI venv holds torch
        found += [pathlib.Path(folder, name) for name in names if name.endswith(".py")]
    return sorted(path for path in found if not str(path.relative_to(ROOT)).startswith(unpublished))


@pytest.mark.parametrize("path", _python_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_forbidden_calls(path):
    text = path.read_text()
    for pattern in FORBIDDEN:
        assert not pattern.search(text), f"{path}: matches {pattern.pattern}"


def test_pack_code_logs_instead_of_printing():
    files = [ROOT / "__init__.py"] + [p for d in PACK_DIRS for p in (ROOT / d).rglob("*.py")]
    offenders = [str(p.relative_to(ROOT)) for p in files if PRINT.search(p.read_text())]
    assert not offenders


def test_comfyignore_keeps_tests_tools_and_ci_out_of_the_archive():
    ignored = (ROOT / ".comfyignore").read_text().split()
    for entry in ("tests/", "bench/", "devtools/", ".ci/"):
        assert entry in ignored


def test_no_node_class_mappings_export():
    # exporting NODE_CLASS_MAPPINGS makes ComfyUI ignore comfy_entrypoint (V3 registration)
    import freeaccel
    assert not hasattr(freeaccel, "NODE_CLASS_MAPPINGS")
    assert callable(freeaccel.comfy_entrypoint)


def test_requirements_do_not_pin_torch():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        name = re.split(r"[<>=!~\[ ;]", line.strip(), maxsplit=1)[0].lower()
        assert name not in {"torch", "torchvision", "torchaudio", "xformers"}, line
