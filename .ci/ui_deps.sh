#!/usr/bin/env bash
# What tests/server/test_browser.py needs: Debian's chromium + chromium-driver, selenium, and the web frontend each
# given ComfyUI tree pins.
#
# Usage: bash .ci/ui_deps.sh <python> <ComfyUI tree> [<ComfyUI tree> ...]
#   <python>        the venv's python that runs pytest; selenium is installed into its environment.
#   <ComfyUI tree>  a ComfyUI checkout; the comfyui-frontend-package version its requirements.txt pins (==) is
#                   downloaded (pip download --no-deps) and unpacked, not installed, into
#                   $FREEACCEL_UI_DEPS/comfyui-frontend-package-<version>/ (default FREEACCEL_UI_DEPS:
#                   <python's sys.prefix>/ui-deps), where tests/server/conftest.py finds it and hands its static/
#                   folder to main.py as --front-end-root. One venv thus serves several ComfyUI versions.
# chromium and chromium-driver come from apt-get when /usr/bin/chromium or /usr/bin/chromedriver is missing (needs
# root, as in CI). comfyui-workflow-templates is not needed: the Templates panel lists custom-node templates under
# EXTENSIONS from /api/workflow_templates (frontends 1.32.9 and 1.49.6); without the package its core templates are
# absent and the frontend logs "Error loading core workflow templates" at startup, which the test does not count.
# Exit status non-zero when anything could not be installed.
set -euo pipefail

if [ "$#" -lt 2 ]; then
    echo "usage: bash .ci/ui_deps.sh <python> <ComfyUI tree> [<ComfyUI tree> ...]" >&2
    exit 2
fi
py="$1"
shift

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "ui_deps: chromium / chromium-driver missing and not root: apt-get install -y chromium chromium-driver" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
echo "ui_deps: $(/usr/bin/chromium --version 2>/dev/null)"

"$py" -m pip install --quiet --disable-pip-version-check "selenium>=4.20"

deps="${FREEACCEL_UI_DEPS:-$("$py" -c 'import sys; print(sys.prefix)')/ui-deps}"
mkdir -p "$deps/downloads"
for tree in "$@"; do
    version="$(sed -n 's/^[[:space:]]*comfyui-frontend-package[[:space:]]*==[[:space:]]*\([^[:space:];#]*\).*/\1/p' \
        "$tree/requirements.txt")"
    if [ -z "$version" ]; then
        echo "ui_deps: $tree/requirements.txt pins no comfyui-frontend-package" >&2
        exit 1
    fi
    target="$deps/comfyui-frontend-package-$version"
    if [ ! -f "$target/comfyui_frontend_package/static/index.html" ]; then
        "$py" -m pip download --quiet --disable-pip-version-check --no-deps \
            "comfyui-frontend-package==$version" -d "$deps/downloads"
        "$py" - "$deps/downloads/comfyui_frontend_package-$version-py3-none-any.whl" "$target" <<'PY'
import os, shutil, sys, zipfile
wheel, target = sys.argv[1:]
partial = target + ".partial"
shutil.rmtree(partial, ignore_errors=True)
with zipfile.ZipFile(wheel) as archive:
    archive.extractall(partial)
os.replace(partial, target)
PY
    fi
    echo "ui_deps: ComfyUI $tree -> frontend $version at $target"
done
