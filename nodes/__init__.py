"""ComfyUI glue: one module per technique, each exposing ``NODES``.

Each module is imported on its own: one that fails (say, a ComfyUI update renamed something it uses) is logged and
skipped, and the other nodes still load.
"""
import importlib
import logging

from comfy_api.v0_0_2 import ComfyExtension

from .integration import compat

log = logging.getLogger(__name__)

NODE_MODULES = ("attention_backend", "adacache", "token_prune", "temporal_prune", "local_window", "motion_guider")


def load_nodes(module_names=NODE_MODULES):
    """The node classes of every module that imports; failures are logged with their traceback."""
    found = []
    for name in module_names:
        try:
            module = importlib.import_module(f".{name}", __name__)
        except Exception:
            log.exception("FreeAccel: the nodes of %s could not be loaded and are left out", name)
            continue
        found += module.NODES
    return found


class FreeAccelExtension(ComfyExtension):
    async def get_node_list(self):
        compat.warn_if_unsupported()
        return load_nodes()
