"""Chains of hooks where ComfyUI keeps one slot: each link runs its handler in front of the link it replaced and
names its owner (a technique key), so one technique's links can be removed without touching the others'."""
from typing import Any, Callable, Optional


class Chained:
    """One link: ``handler`` in front of ``previous`` (the slot's earlier content, or None), installed by ``owner``.

    Links are immutable; ModelPatcher.clone() deep-copies model_options, and a copy would split one chain in two.
    """

    def __init__(self, handler: Callable, previous: Any, owner: str):
        self.handler, self.previous, self.owner = handler, previous, owner

    def __deepcopy__(self, memo: dict) -> "Chained":
        return self


def without_owner(entry: Any, owner: str) -> Optional[Any]:
    """``entry`` with every link of ``owner`` removed (None when nothing is left); links of others are rebuilt only
    where something below them changed."""
    if not isinstance(entry, Chained):
        return entry
    previous = without_owner(entry.previous, owner)
    if entry.owner == owner:
        return previous
    return entry if previous is entry.previous else type(entry)(entry.handler, previous, entry.owner)


def has_owner(entry: Any, owner: str) -> bool:
    """True when ``owner`` has a link anywhere in the chain ``entry``."""
    while isinstance(entry, Chained):
        if entry.owner == owner:
            return True
        entry = entry.previous
    return False
