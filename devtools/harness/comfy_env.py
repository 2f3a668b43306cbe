"""Boot a real ComfyUI checkout headlessly inside this process, with the pack loaded by ComfyUI's own loader.

ComfyUI is not a package: its top-level modules (``comfy``, ``nodes``, ``execution``, ``folder_paths`` ...) must be
importable from its root, its CLI flags are read once when ``comfy.cli_args`` is first imported, and custom nodes
come from ``<base dir>/custom_nodes``. ``boot`` arranges all of that once per process, links the pack in as
``custom_nodes/freeaccel`` and runs ``nodes.init_extra_nodes`` exactly as ``main.py`` does, so the pack is imported
the way users get it (relative imports, V3 ``comfy_entrypoint`` registration). Shared by tests/comfy, bench/ and
devtools/workflows.
"""
import asyncio
import copy
import importlib
import logging
import os
import shutil
import sys
import uuid
from dataclasses import dataclass

from .compat import executor_cache_args, node_replace_manager

PACK_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH_RUNTIME = os.path.join(PACK_ROOT, "bench", "runtime")  # ComfyUI base directory of tiny and trained runs
PACK_LINK_NAME = "freeaccel"

_boot_key = None  # (comfy_path, base_dir, pack_root) of the first boot in this process
_runtime = None
_boot_error = None
_torchvision_schemas = None  # torch.library.Library that must stay alive when the torchvision fallback is used


class PackLoadError(RuntimeError):
    """ComfyUI's loader could not import or register the pack (the loader itself only logs a warning)."""


def is_comfyui_root(path):
    return bool(path) and all(
        os.path.isfile(os.path.join(path, name)) for name in ("nodes.py", "execution.py", "folder_paths.py",
                                                               os.path.join("comfy", "model_patcher.py")))


def find_comfyui(explicit=None):
    """The ComfyUI root to use: ``explicit`` > $COMFYUI_PATH > the checkout this pack sits in (custom_nodes/<pack>).

    An explicit path or $COMFYUI_PATH that is not a ComfyUI root raises ValueError (a misconfigured run must not
    silently skip); no configured path and no enclosing checkout gives None.
    """
    for origin, path in (("the given path", explicit), ("COMFYUI_PATH", os.environ.get("COMFYUI_PATH"))):
        if path:
            if not is_comfyui_root(path):
                raise ValueError(f"{origin} {path!r} is not a ComfyUI checkout (no nodes.py / comfy/model_patcher.py)")
            return os.path.realpath(path)
    enclosing = os.path.dirname(os.path.dirname(PACK_ROOT))
    return os.path.realpath(enclosing) if is_comfyui_root(enclosing) else None


class HeadlessServer:
    """The part of server.PromptServer that execution.PromptExecutor, its progress handler and node registration
    touch (``PromptServer.instance`` while no real server runs)."""

    def __init__(self):
        self.client_id = None
        self.last_node_id = None
        self.sockets_metadata = {}
        self.messages = []
        self.node_replace_manager = node_replace_manager()

    def send_sync(self, event, data, sid=None):
        self.messages.append((event, data))

    def send_progress_text(self, text, node_id, sid=None):
        self.messages.append(("progress_text", {"text": text, "node": node_id}))

    def queue_updated(self):
        pass


@dataclass(frozen=True)
class ComfyRuntime:
    comfy_path: str
    base_dir: str
    pack_package: str  # the pack's sys.modules name, derived by ComfyUI's loader from its path
    node_ids: tuple  # node ids the pack registered
    device: str

    def pack_module(self, relative_name):
        """The loaded pack's submodule, e.g. ``pack_module("accel_core.adacache")`` (the same objects the nodes use)."""
        return importlib.import_module(f"{self.pack_package}.{relative_name}")

    def node_class(self, node_id):
        import nodes
        try:
            return nodes.NODE_CLASS_MAPPINGS[node_id]
        except KeyError:
            raise KeyError(f"no node {node_id!r} registered; the pack registered {list(self.node_ids)}") from None

    def execute(self, prompt):
        """Validate and run an API-format prompt through the real PromptExecutor with node caching off.

        Returns the history outputs ({node id: ui dict}); raises RuntimeError with the validation errors or the
        failing node's exception.
        """
        import execution
        prompt = copy.deepcopy(prompt)
        prompt_id = str(uuid.uuid4())
        valid, error, outputs, node_errors = asyncio.run(execution.validate_prompt(prompt_id, prompt, None))
        if not valid or node_errors:
            raise RuntimeError(f"prompt failed validation: {error}; node_errors: {node_errors}")
        executor = execution.PromptExecutor(HeadlessServer(), cache_type=execution.CacheType.NONE,
                                            cache_args=executor_cache_args())
        executor.execute(prompt, prompt_id, extra_data={"client_id": "freeaccel-headless"}, execute_outputs=outputs)
        events = dict(executor.status_messages)
        if "execution_error" in events:
            err = events["execution_error"]
            raise RuntimeError(f"node {err['node_id']} ({err['node_type']}) failed: {err['exception_type']}: "
                               f"{err['exception_message']}\n{''.join(err['traceback'])}")
        if not executor.success or "execution_success" not in events:
            raise RuntimeError(f"prompt did not complete: {executor.status_messages}")
        return executor.history_result["outputs"]


def current_runtime():
    """The runtime ``boot`` created in this process."""
    if _runtime is None:
        raise RuntimeError("ComfyUI is not booted in this process: call devtools.harness.comfy_env.boot() first")
    return _runtime


def boot(comfy_path, base_dir, *, pack_root=PACK_ROOT, extra_args=()):
    """Import ComfyUI from ``comfy_path`` with ``base_dir`` as its --base-directory and load the pack from there.

    Once per process: a second call with the same arguments returns the same runtime, different arguments raise
    (ComfyUI's flags, folders and node registry are process-global). ``pack_root`` is linked as
    ``<base_dir>/custom_nodes/freeaccel``; ``extra_args`` are more ComfyUI CLI flags.
    """
    global _boot_key, _runtime, _boot_error
    key = (os.path.realpath(comfy_path), os.path.abspath(base_dir), os.path.realpath(pack_root))
    if _boot_key is not None:
        if key != _boot_key:
            raise RuntimeError(f"ComfyUI is already booted in this process with (comfy_path, base_dir, pack_root) = "
                               f"{_boot_key}; cannot boot again with {key}")
        if _boot_error is not None:
            raise _boot_error
        return _runtime
    if not is_comfyui_root(key[0]):
        raise ValueError(f"{comfy_path!r} is not a ComfyUI checkout")
    if "comfy.cli_args" in sys.modules:
        raise RuntimeError("ComfyUI's comfy.cli_args was imported before boot(); its CLI flags are already fixed")
    _boot_key = key
    try:
        _runtime = _boot(*key, extra_args=tuple(extra_args))
    except BaseException as exc:
        _boot_error = exc
        raise
    return _runtime


def _boot(comfy_path, base_dir, pack_root, extra_args):
    import torch

    _ensure_torchvision()
    while comfy_path in sys.path:
        sys.path.remove(comfy_path)
    sys.path.insert(0, comfy_path)  # before the cwd and the repo root: our nodes/ package must not shadow nodes.py

    argv = ["comfyui", "--base-directory", base_dir, "--disable-api-nodes"]
    if not torch.cuda.is_available():
        argv.append("--cpu")
    argv += list(extra_args)
    import comfy.options
    comfy.options.enable_args_parsing()  # otherwise comfy.cli_args parses [] and every flag is ignored
    saved_argv, sys.argv = sys.argv, argv
    try:
        import comfy.cli_args  # noqa: F401  (parses sys.argv now)
    finally:
        sys.argv = saved_argv

    link = _link_pack(base_dir, pack_root)
    _copy_shipped_inputs(comfy_path, base_dir)
    # nodes.py puts <root>/comfy first on sys.path, after which `import utils` would find comfy/utils.py rather than
    # ComfyUI's utils/ package; main.py imports utils.extra_config first for that reason, and so do we.
    import utils.extra_config  # noqa: F401
    import comfy.model_management
    import comfy.utils
    import nodes
    comfy.utils.PROGRESS_BAR_ENABLED = False

    import server
    if getattr(server.PromptServer, "instance", None) is None:  # main.py creates the real one before loading nodes
        server.PromptServer.instance = HeadlessServer()
    loader_warnings = _LoaderWarnings(link)
    logging.getLogger().addHandler(loader_warnings)
    try:
        asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
    finally:
        logging.getLogger().removeHandler(loader_warnings)

    folder = os.path.basename(link)
    relative_module = f"custom_nodes.{folder}"
    node_ids = tuple(sorted(node_id for node_id, cls in nodes.NODE_CLASS_MAPPINGS.items()
                            if getattr(cls, "RELATIVE_PYTHON_MODULE", None) == relative_module))
    package = link.replace(".", "_x_")  # the sys.modules name nodes.load_custom_node gives a package directory
    if folder not in nodes.LOADED_MODULE_DIRS or not node_ids or package not in sys.modules:
        details = "\n".join(loader_warnings.messages) or "(the loader logged nothing about it)"
        raise PackLoadError(f"ComfyUI did not load the pack from {link} -> {pack_root}:\n{details}")
    return ComfyRuntime(comfy_path=comfy_path, base_dir=base_dir, pack_package=package, node_ids=node_ids,
                        device=str(comfy.model_management.get_torch_device()))


def _ensure_torchvision():
    """comfy.model_base imports torchvision. A torchvision built for another torch fails while registering the
    fake kernels of its C++ ops; declaring those op schemas first lets its pure-python parts import."""
    try:
        import torchvision  # noqa: F401
        return
    except Exception:
        pass
    import torch
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    global _torchvision_schemas
    _torchvision_schemas = torch.library.Library("torchvision", "DEF")
    _torchvision_schemas.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _torchvision_schemas.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    import torchvision  # noqa: F401,F811


def _copy_shipped_inputs(comfy_path, base_dir):
    """A separate base directory starts with the input files a ComfyUI checkout ships (e.g. input/example.png, which
    the default LoadImage widget names), as a user's install has them."""
    source, target = os.path.join(comfy_path, "input"), os.path.join(base_dir, "input")
    if os.path.realpath(source) == os.path.realpath(target) or not os.path.isdir(source):
        return
    os.makedirs(target, exist_ok=True)
    for name in os.listdir(source):
        path = os.path.join(source, name)
        if os.path.isfile(path) and not os.path.exists(os.path.join(target, name)):
            shutil.copyfile(path, os.path.join(target, name))


def _link_pack(base_dir, pack_root):
    custom_nodes = os.path.join(base_dir, "custom_nodes")
    os.makedirs(custom_nodes, exist_ok=True)
    if os.path.realpath(os.path.dirname(pack_root)) == os.path.realpath(custom_nodes):
        return pack_root  # already installed there (a user's ComfyUI): ComfyUI loads it under its own folder name
    link = os.path.join(custom_nodes, PACK_LINK_NAME)
    if os.path.islink(link) and os.path.realpath(link) == pack_root:
        return link
    if os.path.lexists(link):
        raise RuntimeError(f"{link} exists and is not a link to {pack_root}")
    os.symlink(pack_root, link, target_is_directory=True)
    return link


class _LoaderWarnings(logging.Handler):
    """Collects the warnings ComfyUI's loader logs about one custom-node path."""

    def __init__(self, module_path):
        super().__init__(logging.WARNING)
        self.module_path = module_path
        self.messages = []

    def emit(self, record):
        message = record.getMessage()
        if self.module_path in message:  # also true for import tracebacks: their frames are files under the path
            self.messages.append(message)
