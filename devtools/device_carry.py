"""Fill ``.device_carry/`` (git-ignored) with what ``python -m bench.gpu_check`` needs on the GPU machine beside the
working tree, within the 64 MiB that travel with it:

- ``comfyui/``: the ComfyUI tree to test against (default ``/work/shared/comfyui/0.33.0``) without what a headless
  run never reads: its tests, the API nodes, the blueprints and the large tokenizer / vocabulary files (the tiny
  and real-shape models get random conditioning, so no tokenizer is ever built).
- ``wheels/``: wheels for Python 3.12 (manylinux x86_64, no dependencies resolved: ``WHEELS`` is the closure) of
  what that ComfyUI imports, the bench and pytest need, and the machine lacks. It has torch 2.11 + CUDA 13, triton,
  torchaudio, einops, safetensors and transformers (with what they depend on: numpy, PyYAML, tqdm, packaging,
  filelock, Jinja2, sympy, tokenizers, huggingface_hub, regex); ``bench.gpu_check`` installs only the wheels whose
  distribution is missing there.
- ``shims/``: import-only stand-ins for ``scipy`` and ``av`` (34 MB each as wheels). ComfyUI imports them at module
  level (scipy in ``comfy/samplers.py``, ``comfy/k_diffusion/sampling.py`` and ``comfy/ldm/modules/sdpose.py``; av
  in ``comfy_api/latest/_input_impl/video_types.py``) but the check's samplers (euler, simple scheduler) and models
  never call them; any use of a stand-in raises, naming it. ``bench.gpu_check`` puts them on ``sys.path`` only when
  the real package is absent, and reports which it used.

    python -m devtools.device_carry [--comfyui PATH] [--out .device_carry] [--no-download] [--check]

``--check`` then simulates the GPU machine here: a ``python -S`` subprocess whose path is a folder of links to the
installed distributions the machine would have (its list with their dependencies, and the carried ones), in which
the carried ComfyUI boots with the pack and a tiny WAN samples one step through a FreeAccel node. The size of the
working tree plus the carry is printed and checked against the limit. The simulation imports the packages installed
here (Python 3.11, comfy-kitchen with its CUDA extension), not the carried wheels themselves.
"""
import argparse
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

PACK_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(PACK_ROOT, ".device_carry")
DEFAULT_COMFYUI = "/work/shared/comfyui/0.33.0"
LIMIT_BYTES = 64 * 2 ** 20
PYTHON_VERSION = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")

# distributions the GPU machine has (its packages and what they depend on)
ON_DEVICE = ("torch", "triton", "torchaudio", "einops", "safetensors", "transformers", "numpy", "PyYAML", "tqdm",
             "packaging", "filelock", "Jinja2", "MarkupSafe", "sympy", "mpmath", "networkx", "fsspec",
             "typing_extensions", "setuptools", "tokenizers", "huggingface_hub", "hf-xet", "regex", "httpx",
             "httpcore", "anyio", "sniffio", "h11", "certifi", "idna")
# (requirement, why) carried as wheels; pinned where the version must match torch 2.11 or ComfyUI 0.33.0
WHEELS = (
    ("torchvision==0.26.0", "imported by ComfyUI model modules and the harness (the one built for torch 2.11)"),
    ("pillow", "nodes.py"), ("psutil", "comfy.model_management"), ("torchsde", "comfy.k_diffusion.sampling"),
    ("trampoline", "torchsde"), ("comfy-aimdo", "comfy.memory_management"), ("simpleeval", "comfy_extras"),
    ("blake3", "app.assets"), ("sqlalchemy", "server.py (app.assets)"), ("aiohttp", "server.py"), ("yarl", "aiohttp"), ("multidict", "aiohttp"),
    ("propcache", "aiohttp"), ("frozenlist", "aiohttp"), ("aiosignal", "aiohttp"), ("aiohappyeyeballs", "aiohttp"),
    ("attrs", "aiohttp"), ("pydantic", "comfy_config"), ("pydantic-core", "pydantic"),
    ("pydantic-settings", "comfy_config"), ("python-dotenv", "pydantic-settings"),
    ("typing-inspection", "pydantic"), ("annotated-types", "pydantic"), ("requests", "app.frontend_management"),
    ("urllib3", "requests"), ("charset-normalizer", "requests"), ("pytest", "the CUDA tests"),
    ("pluggy", "pytest"), ("iniconfig", "pytest"),
    ("comfy-kitchen==0.2.31", "comfy.ldm.modules.attention and others (the version ComfyUI 0.33.0 pins)"),
)
# Compiled parts left out of a carried wheel (the 57 MB comfy-kitchen wheel is 47 MB of CUDA and 10 MB of HIP
# extension): comfy_kitchen loads them only if present and otherwise runs its eager / triton backends, so on the GPU
# machine ComfyUI's RoPE and quantisation helpers run there instead of in its CUDA kernels.
STRIPPED = {"comfy-kitchen": ("comfy_kitchen/backends/cuda/_C.", "comfy_kitchen/backends/hip/_C.")}
SHIMS = ("scipy", "av")
# left out of the ComfyUI tree: folders (relative to its root) and files above this size under these folders
EXCLUDED_DIRS = ("tests", "tests-unit", "comfy_api_nodes", "blueprints", ".git")
LARGE_DATA = (("comfy/text_encoders", 200_000), ("comfy/sd1_tokenizer", 200_000))

SHIM_SOURCE = '''"""Import-only stand-in for the {name} package, written by devtools/device_carry.py for the GPU check:
ComfyUI imports {name} at module level on paths the check never runs. Importing works; using anything raises."""
import importlib.abc
import importlib.machinery
import sys
import types

MESSAGE = "{name} is not installed on this machine (import-only stand-in from devtools/device_carry.py): {{}}"


class _Missing(type):
    def __getattr__(cls, attribute):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return _missing(f"{{cls.__qualname__}}.{{attribute}}")

    def __call__(cls, *args, **kwargs):
        raise RuntimeError(MESSAGE.format(cls.__qualname__))


def _missing(name):
    return _Missing(name.rsplit(".", 1)[-1], (), {{"__qualname__": name}})


class _Module(types.ModuleType):
    def __getattr__(self, attribute):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return _missing(f"{{self.__name__}}.{{attribute}}")


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith("{name}."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _Module(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


__path__ = []
sys.meta_path.append(_Finder())


def __getattr__(attribute):
    if attribute.startswith("__"):
        raise AttributeError(attribute)
    return _missing("{name}." + attribute)
'''

# run by --check with ``python -S`` and only the machine's view on PYTHONPATH (argv: the carry folder)
CHECK_SCRIPT = r"""
import json, os, sys, tempfile
carry = sys.argv[1]
sys.path += [os.getcwd(), os.path.join(carry, "shims")]  # the stand-ins last, as bench.gpu_check puts them
from devtools.harness import comfy_env
runtime = comfy_env.boot(os.path.join(carry, "comfyui"), tempfile.mkdtemp())
from devtools.harness import tiny_models
from bench.real_shapes import apply_node
case = tiny_models.build("wan21")
model = apply_node("FreeAccel_LocalWindowAttention", case.patcher, frames=0, height=3, width=3)
out = tiny_models.sample(case, model=model, steps=1, cfg=1.0)
import comfyui_version
shimmed = sorted(name for name in ("scipy", "av") if sys.modules[name].__file__.startswith(carry))
print(json.dumps({"comfyui": comfyui_version.__version__, "nodes": len(runtime.node_ids), "shimmed": shimmed,
                  "output": list(out.shape), "finite": bool(out.isfinite().all())}))
"""


def _normalised(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def _ignore_for(root):
    def ignore(directory, names):
        relative = os.path.relpath(directory, root)
        skipped = {name for name in names if name in ("__pycache__",) or name.endswith(".pyc")}
        if relative == ".":
            skipped |= {name for name in names if name in EXCLUDED_DIRS}
        for folder, limit in LARGE_DATA:
            if relative == folder or relative.startswith(folder + os.sep):
                skipped |= {name for name in names if os.path.isfile(os.path.join(directory, name))
                            and not name.endswith(".py") and os.path.getsize(os.path.join(directory, name)) > limit}
        return skipped
    return ignore


def copy_comfyui(source, target):
    if os.path.exists(target):
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=_ignore_for(source), symlinks=True)


def download_wheels(target):
    """pip download of WHEELS for Python 3.12 into ``target`` (binary wheels only, no dependency resolution)."""
    os.makedirs(target, exist_ok=True)
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                    "--only-binary=:all:", "--python-version", PYTHON_VERSION, *platforms, "-d", target,
                    *[requirement for requirement, _ in WHEELS]], check=True)


def wheel_project(filename):
    """'comfy_kitchen-0.2.31-cp312-....whl' -> 'comfy-kitchen' (the distribution name, normalised)."""
    return _normalised(filename.split("-")[0])


def strip_wheels(folder):
    """Rewrite the wheels named in STRIPPED without their compiled extensions (and those files' RECORD lines)."""
    for name in sorted(os.listdir(folder)):
        prefixes = STRIPPED.get(wheel_project(name))
        if not prefixes:
            continue
        path = os.path.join(folder, name)
        with zipfile.ZipFile(path) as source:
            entries = [(info, source.read(info)) for info in source.infolist()
                       if not info.filename.startswith(prefixes)]
        if len(entries) == len(zipfile.ZipFile(path).infolist()):
            continue  # stripped already
        with zipfile.ZipFile(path + ".tmp", "w", zipfile.ZIP_DEFLATED) as target:
            for info, data in entries:
                if info.filename.endswith(".dist-info/RECORD"):
                    data = "".join(line for line in data.decode().splitlines(keepends=True)
                                   if not line.startswith(prefixes)).encode()
                target.writestr(info, data)
        os.replace(path + ".tmp", path)


def write_shims(target):
    for name in SHIMS:
        os.makedirs(os.path.join(target, name), exist_ok=True)
        with open(os.path.join(target, name, "__init__.py"), "w") as file:
            file.write(SHIM_SOURCE.format(name=name))


def tree_bytes(path):
    return sum(os.path.getsize(os.path.join(folder, name)) for folder, _, names in os.walk(path) for name in names
               if not os.path.islink(os.path.join(folder, name)))


def working_tree_bytes(root=PACK_ROOT):
    """Bytes of what the device tool copies of the working tree: tracked files and untracked, not ignored ones."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            capture_output=True, check=True).stdout.split(b"\0")
    paths = [os.path.join(root, os.fsdecode(name)) for name in listed
             if name and not os.fsdecode(name).startswith(".device_carry/")]  # the carry is counted on its own
    return sum(os.path.getsize(path) for path in paths if os.path.isfile(path) and not os.path.islink(path))


def _device_distributions(carried):
    """The distributions the GPU machine would have: ON_DEVICE with their dependencies as installed here (pip
    installed them with theirs), and the carried wheels (installed there without dependencies)."""
    allowed, todo = {_normalised(name) for name in carried}, list(ON_DEVICE)
    while todo:
        name = _normalised(todo.pop())
        if name in allowed:
            continue
        allowed.add(name)
        try:
            requirements = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo += [re.split(r"[ ;<>=!~\[(]", requirement, maxsplit=1)[0] for requirement in requirements
                 if "extra ==" not in requirement]
    return allowed


def _device_view(folder, allowed):
    """Links in ``folder`` to the top-level files of the installed distributions in ``allowed`` (their packages,
    modules, libraries and metadata): an environment holding only what the GPU machine would."""
    for dist in importlib.metadata.distributions():
        if _normalised(dist.metadata["Name"]) not in allowed:
            continue
        for top in {file.parts[0] for file in dist.files or [] if not file.parts[0].startswith("..")}:
            source, link = str(dist.locate_file(top)), os.path.join(folder, top)
            if os.path.exists(source) and not os.path.lexists(link):
                os.symlink(source, link)


def check(out):
    """Boot the carried ComfyUI in a ``python -S`` subprocess whose path holds only the machine's distributions
    (from this environment) and the carry; returns what it reports."""
    carried = [wheel_project(name) for name in os.listdir(os.path.join(out, "wheels"))]
    with tempfile.TemporaryDirectory() as view:
        _device_view(view, _device_distributions(carried))
        done = subprocess.run([sys.executable, "-S", "-c", CHECK_SCRIPT, os.path.abspath(out)], cwd=PACK_ROOT,
                              capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=view))
    if done.returncode != 0:
        raise SystemExit(f"the simulated GPU machine could not run the check:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m devtools.device_carry", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui", default=DEFAULT_COMFYUI, help=f"ComfyUI tree to carry (default "
                                                                   f"{DEFAULT_COMFYUI})")
    parser.add_argument("--out", default=DEFAULT_OUT, help="carry folder (default .device_carry, git-ignored)")
    parser.add_argument("--no-download", action="store_true", help="keep the wheels already in <out>/wheels")
    parser.add_argument("--check", action="store_true", help="simulate the GPU machine and boot the carry")
    args = parser.parse_args(argv)
    copy_comfyui(args.comfyui, os.path.join(args.out, "comfyui"))
    if not args.no_download:
        download_wheels(os.path.join(args.out, "wheels"))
    strip_wheels(os.path.join(args.out, "wheels"))
    write_shims(os.path.join(args.out, "shims"))
    sizes = {name: tree_bytes(os.path.join(args.out, name)) for name in ("comfyui", "wheels", "shims")}
    sizes["working tree"] = working_tree_bytes()
    total = sum(sizes.values())
    with open(os.path.join(args.out, "manifest.json"), "w") as file:
        json.dump({"comfyui_source": args.comfyui, "bytes": sizes, "total_bytes": total,
                   "wheels": sorted(os.listdir(os.path.join(args.out, "wheels"))), "shims": list(SHIMS),
                   "stripped": {name: list(prefixes) for name, prefixes in STRIPPED.items()}},
                  file, indent=2)
    print(", ".join(f"{name} {size / 2 ** 20:.1f} MiB" for name, size in sizes.items())
          + f"; total {total / 2 ** 20:.1f} MiB of {LIMIT_BYTES / 2 ** 20:.0f}")
    if total > LIMIT_BYTES:
        raise SystemExit("the working tree and the carry exceed what travels to the GPU machine")
    if args.check:
        print("simulated GPU machine:", check(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
