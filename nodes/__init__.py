"""ComfyUI glue: one module per technique, each exposing ``NODES``."""
from comfy_api.v0_0_2 import ComfyExtension

from . import adacache, attention_backend, motion_transfer, temporal_prune, token_prune
from .integration import compat

NODE_MODULES = (attention_backend, adacache, token_prune, temporal_prune, motion_transfer)


class FreeAccelExtension(ComfyExtension):
    async def get_node_list(self):
        compat.warn_if_unsupported()
        return [node for module in NODE_MODULES for node in module.NODES]
