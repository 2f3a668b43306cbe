"""ComfyUI glue: one module per technique, each exposing ``NODES``."""
from comfy_api.v0_0_2 import ComfyExtension

from . import adacache, attention_backend, temporal_prune, token_prune, motion_transfer

NODE_MODULES = (adacache, attention_backend, token_prune, temporal_prune, motion_transfer,)


class FreeAccelExtension(ComfyExtension):
    async def get_node_list(self):
        return [node for module in NODE_MODULES for node in module.NODES]
