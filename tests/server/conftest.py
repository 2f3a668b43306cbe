"""ComfyUI's real server (its own main.py) started once per test session, shared by the server and browser tests.

ComfyUI is found as for tests/comfy ($COMFYUI_PATH, or the checkout this pack sits in); without one every test here is
skipped with the reason. The server gets the pack in its custom_nodes (a symlink, as a user's clone would be) plus the
test-only nodes of tests/data/custom_nodes, and the web frontend that ComfyUI tree pins, unpacked by .ci/ui_deps.sh
into ``<ui deps>/comfyui-frontend-package-<version>`` (``<ui deps>`` is $FREEACCEL_UI_DEPS, default
``<python prefix>/ui-deps``). Without that frontend the server tests run against an empty web root and the browser
tests skip with the reason (fail, with CI=true).
"""
import os
import re
import sys

import pytest
from comfyui_checkout import comfyui_or_skip

from devtools.harness.server import ComfyServer

from server_client import REPO_ROOT

TEST_NODES = os.path.join(REPO_ROOT, "tests", "data", "custom_nodes", "freeaccel_test_nodes")


def ui_deps_dir():
    return os.environ.get("FREEACCEL_UI_DEPS") or os.path.join(sys.prefix, "ui-deps")


def pinned_version(comfy_path, package):
    """The version ``package`` is pinned to (==) in the ComfyUI tree's requirements.txt, or None."""
    with open(os.path.join(comfy_path, "requirements.txt"), encoding="utf-8") as requirements:
        for line in requirements:
            match = re.match(rf"\s*{re.escape(package)}\s*==\s*([^\s;#]+)", line)
            if match:
                return match.group(1)
    return None


def frontend_static(comfy_path):
    """(the pinned frontend's static folder or None, why it is missing)."""
    version = pinned_version(comfy_path, "comfyui-frontend-package")
    if version is None:
        return None, f"{comfy_path}/requirements.txt pins no comfyui-frontend-package"
    static = os.path.join(ui_deps_dir(), f"comfyui-frontend-package-{version}", "comfyui_frontend_package", "static")
    if not os.path.isfile(os.path.join(static, "index.html")):
        return None, (f"the web frontend ComfyUI pins (comfyui-frontend-package {version}) is not unpacked at {static}; "
                      f"run: bash .ci/ui_deps.sh {sys.executable} {comfy_path}")
    return static, None


@pytest.fixture(scope="session")
def comfy_path():
    return comfyui_or_skip()


@pytest.fixture(scope="session")
def frontend(comfy_path):
    """(static folder or None, reason)."""
    return frontend_static(comfy_path)


@pytest.fixture(scope="session")
def server(comfy_path, frontend, tmp_path_factory):
    static, _ = frontend
    if static is None:  # main.py refuses to start without a web root; the HTTP API does not need the frontend
        static = str(tmp_path_factory.mktemp("empty_web_root"))
        with open(os.path.join(static, "index.html"), "w", encoding="utf-8") as index:
            index.write("<!doctype html><title>no frontend</title>\n")
    comfy_server = ComfyServer(comfy_path, str(tmp_path_factory.mktemp("comfy_server")), front_end_root=static,
                               extra_custom_nodes=[TEST_NODES])
    comfy_server.start()
    comfy_server.startup_log = comfy_server.log_text()
    print(f"\nComfyUI server {comfy_path} at {comfy_server.url}, pid {comfy_server.process.pid}, "
          f"log {comfy_server.log_path}")
    try:
        yield comfy_server
    finally:
        comfy_server.stop()
    assert comfy_server.process.poll() is not None, f"server pid {comfy_server.process.pid} still runs after stop()"
