"""Chaining of ComfyUI's ``patches_replace["dit"]`` block replacements.

ComfyUI keeps one replacement per block key, so a node that replaces a block must call the replacement that was
there before it (another FreeAccel node's, or another pack's) instead of ComfyUI's block, or that one is lost.
"""


class ChainedBlock:
    """A ``patches_replace["dit"]`` entry: ``handler(args, run_block)`` in front of the entry it replaced.

    ``run_block(args)`` runs the earlier entry, or ComfyUI's own block when there was none. ``owner`` names the
    technique that installed it, so a node can find and drop its own earlier entries.
    """

    def __init__(self, handler, previous, owner):
        self.handler, self.previous, self.owner = handler, previous, owner

    def __call__(self, args, extra):
        previous = self.previous

        def run_block(block_args):
            return previous(block_args, extra) if previous is not None else extra["original_block"](block_args)

        return self.handler(args, run_block)

    def __deepcopy__(self, memo):
        return self  # immutable; ModelPatcher.clone() deep-copies model_options, which must not copy handlers' state


def dit_replacements(model):
    """The ``patches_replace["dit"]`` dict of a ModelPatcher's model_options (created when absent)."""
    options = model.model_options.setdefault("transformer_options", {})
    return options.setdefault("patches_replace", {}).setdefault("dit", {})


def chain_block_replacement(model, kind, index, handler, owner):
    """Install ``handler`` on block ``(kind, index)`` of ``model`` (a cloned ModelPatcher), chained to what was
    there."""
    previous = dit_replacements(model).get((kind, index))
    model.set_model_patch_replace(ChainedBlock(handler, previous, owner), "dit", kind, index)


def drop_block_replacements(model, owner):
    """Remove ``owner``'s entries from ``model``'s chains (a node applied twice replaces its earlier settings)."""
    replacements = dit_replacements(model)
    for key, entry in list(replacements.items()):
        kept = _without_owner(entry, owner)
        if kept is None:
            del replacements[key]
        else:
            replacements[key] = kept


def _without_owner(entry, owner):
    if not isinstance(entry, ChainedBlock):
        return entry
    previous = _without_owner(entry.previous, owner) if entry.previous is not None else None
    if entry.owner == owner:
        return previous
    return entry if previous is entry.previous else ChainedBlock(entry.handler, previous, entry.owner)


def has_block_replacement(model, kind, index, owner):
    """True when ``owner`` has an entry anywhere in the chain of block ``(kind, index)``."""
    entry = dit_replacements(model).get((kind, index))
    while isinstance(entry, ChainedBlock):
        if entry.owner == owner:
            return True
        entry = entry.previous
    return False
