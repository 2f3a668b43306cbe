"""The ComfyUI checkout the ComfyUI tests (tests/comfy, tests/server) run against, shared by their conftests."""
import pytest

from devtools.harness import comfy_env

NO_COMFYUI = ("no ComfyUI checkout: set COMFYUI_PATH to a ComfyUI checkout (or install this pack as "
              "<ComfyUI>/custom_nodes/<pack>) to run the ComfyUI tests")


def comfyui_or_skip():
    """The ComfyUI root to test; skips without one, fails when COMFYUI_PATH is wrong (a misconfigured run must not
    silently skip)."""
    try:
        path = comfy_env.find_comfyui()
    except ValueError as exc:
        pytest.fail(str(exc), pytrace=False)
    if path is None:
        pytest.skip(NO_COMFYUI)
    return path
