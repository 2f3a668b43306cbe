"""FreeAccel: training-free acceleration nodes for ComfyUI.

ComfyUI loads this package through its custom-node loader and calls ``comfy_entrypoint``. The ComfyUI-facing code in
``nodes/`` is imported lazily here so that ``accel_core`` and ``kernels`` stay importable without ComfyUI. No
``NODE_CLASS_MAPPINGS`` is exported: ComfyUI would then ignore the V3 entry point.
"""


async def comfy_entrypoint():
    from .nodes import FreeAccelExtension

    return FreeAccelExtension()
