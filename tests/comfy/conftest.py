"""Tests that run against a real ComfyUI checkout, booted once per session with the pack loaded by ComfyUI's loader.

ComfyUI is found through $COMFYUI_PATH (or the checkout this pack sits in, as custom_nodes/<pack>); without one
every test here is skipped with the reason. Test modules must not import ComfyUI or ``devtools.harness.tiny_models`` at import
time: take the ``comfy_rt`` / ``tiny`` fixtures (``bench`` itself is importable: tests/conftest.py appends the repo
root to sys.path).
"""
import pytest
from comfyui_checkout import comfyui_or_skip

from devtools.harness import comfy_env


@pytest.fixture(scope="session", autouse=True)
def comfy_rt(tmp_path_factory):
    comfy_path = comfyui_or_skip()
    runtime = comfy_env.boot(comfy_path, str(tmp_path_factory.mktemp("comfy_base")))
    import torch
    # The tiny models gain nothing from intra-op threads, and on a shared CPU the OpenMP spin-waits of a second
    # thread can cost ten times the work itself.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield runtime
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny(comfy_rt):
    """The devtools.harness.tiny_models module (imports ComfyUI, hence only after boot)."""
    from devtools.harness import tiny_models
    return tiny_models
