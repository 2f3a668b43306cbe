"""The differences between supported ComfyUI versions that the harness meets (tests, bench); the pack's own
differences live in ``nodes/integration/compat.py``.

- ``PromptExecutor``'s ``cache_args``: ComfyUI 0.33 reads ``cache_args["ram_inactive"]`` as well as ``"ram"``; older
  versions ignore the extra key.
- Node registration: from ComfyUI 0.33 on, ``comfy_entrypoint`` of some core nodes registers node replacements on
  ``PromptServer.instance.node_replace_manager``; older versions have no such manager.
- How the sampler decides whether cond and uncond fit in one model call: up to 0.8 ``comfy.samplers`` asks
  ``model_management.get_free_memory``, from 0.33 on it asks the ModelPatcher, which asks the same function (plus
  the dynamic-VRAM pool, off on a CPU). Patching ``comfy.model_management.get_free_memory`` reaches both.
"""

UNCACHED_EXECUTOR_ARGS = {"lru": 0, "ram": 0, "ram_inactive": 0}


def executor_cache_args():
    """``cache_args`` for an ``execution.PromptExecutor`` that keeps no outputs between prompts."""
    return dict(UNCACHED_EXECUTOR_ARGS)


def run_cond_and_uncond_separately(monkeypatch):
    """Make the sampler see no free memory, so cond and uncond go through the model one call at a time."""
    import comfy.model_management

    def no_free_memory(dev=None, torch_free_too=False):
        return (0, 0) if torch_free_too else 0

    monkeypatch.setattr(comfy.model_management, "get_free_memory", no_free_memory)


def node_replace_manager():
    """A fresh ``NodeReplaceManager`` where this ComfyUI has one (0.33 and newer), else None."""
    try:
        from app.node_replace_manager import NodeReplaceManager
    except ImportError:
        return None
    return NodeReplaceManager()
