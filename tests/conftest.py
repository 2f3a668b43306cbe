"""Make the pack importable as the package ``freeaccel`` without importing ComfyUI.

The pack's root ``__init__.py`` only defines ``comfy_entrypoint`` (which imports ``nodes/`` lazily), so registering
the repo root as a package lets unit tests reach ``freeaccel.accel_core`` and ``freeaccel.kernels`` through the same
relative imports ComfyUI uses. The repo root also goes at the END of sys.path so the bench harness imports as
``bench.*`` and ``devtools.*`` (at the end, because ComfyUI's root must win for ``nodes``: the pack has a ``nodes/`` package too).
"""
import importlib.util
import pathlib
import sys

PACK_ROOT = pathlib.Path(__file__).resolve().parent.parent

if str(PACK_ROOT) not in sys.path:
    sys.path.append(str(PACK_ROOT))

if "freeaccel" not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        "freeaccel", PACK_ROOT / "__init__.py", submodule_search_locations=[str(PACK_ROOT)])
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["freeaccel"] = _module
    _spec.loader.exec_module(_module)
