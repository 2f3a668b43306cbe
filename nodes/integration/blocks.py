"""Chaining of ComfyUI's ``patches_replace["dit"]`` block replacements.

ComfyUI keeps one replacement per block key, so a node that replaces a block must call the replacement that was
there before it (another FreeAccel node's, or another pack's) instead of ComfyUI's block, or that one is lost.
"""
from typing import Callable

from comfy.model_patcher import ModelPatcher

from .chain import Chained, has_owner, without_owner


class ChainedBlock(Chained):
    """A ``patches_replace["dit"]`` entry: ``handler(args, run_block)`` in front of the entry it replaced.

    ``run_block(args)`` runs the earlier entry, or ComfyUI's own block when there was none.
    """

    def __call__(self, args: dict, extra: dict) -> dict:
        previous = self.previous

        def run_block(block_args):
            return previous(block_args, extra) if previous is not None else extra["original_block"](block_args)

        return self.handler(args, run_block)


def dit_replacements(model: ModelPatcher) -> dict:
    """The ``patches_replace["dit"]`` dict of a ModelPatcher's model_options (created when absent)."""
    options = model.model_options.setdefault("transformer_options", {})
    return options.setdefault("patches_replace", {}).setdefault("dit", {})


def chain_block_replacement(model: ModelPatcher, kind: str, index: int, handler: Callable, owner: str) -> None:
    """Install ``handler`` on block ``(kind, index)`` of ``model`` (a cloned ModelPatcher), chained to what was
    there."""
    previous = dit_replacements(model).get((kind, index))
    model.set_model_patch_replace(ChainedBlock(handler, previous, owner), "dit", kind, index)


def drop_block_replacements(model: ModelPatcher, owner: str) -> None:
    """Remove ``owner``'s entries from ``model``'s chains."""
    replacements = dit_replacements(model)
    for key, entry in list(replacements.items()):
        kept = without_owner(entry, owner)
        if kept is None:
            del replacements[key]
        else:
            replacements[key] = kept


def has_block_replacement(model: ModelPatcher, kind: str, index: int, owner: str) -> bool:
    """True when ``owner`` has an entry anywhere in the chain of block ``(kind, index)``."""
    return has_owner(dit_replacements(model).get((kind, index)), owner)


def owns_block_replacement(model: ModelPatcher, owner: str) -> bool:
    """True when ``owner`` has an entry on any block of ``model``."""
    return any(has_owner(entry, owner) for entry in dit_replacements(model).values())
