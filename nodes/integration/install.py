"""The one install layer every FreeAccel technique goes through.

A technique declares its key, its node's display name, its settings class and ``install(installer, settings,
family)``. ``apply`` validates the settings, resolves the model family, checks the node order, clones the model,
removes everything the same key installed before (wrappers, callbacks, dit entries, attention handlers, object
patches, its transformer_options entry, its run record) and installs on the clone. So a node applied twice equals
the node applied once with the second settings, and every message starts with the node's display name.
"""
import dataclasses
from typing import Any, Callable, Optional

from comfy.model_patcher import ModelPatcher

from ...accel_core.families import ATTENTION, DIT_BLOCKS, OBJECT_PATCHES, OPTION, require_family
from . import compat
from .attention import chain_attention_override, drop_attention_handlers, has_attention_handler
from .blocks import chain_block_replacement, drop_block_replacements, owns_block_replacement
from .run_state import install_run_hook, record_key

_OWNER = "freeaccel_owner"        # set on every object patch a technique installs
_PREVIOUS = "freeaccel_previous"  # the object patch it replaced on the same path (None: the model's own object)


@dataclasses.dataclass(frozen=True)
class Technique:
    key: str             # owner of everything the technique installs
    name: str            # the node's display name: the prefix of every message
    settings: type       # its frozen settings dataclass (accel_core), with ``error()``
    install: Callable[["Installer", Any, Optional[str]], None]
    support: Optional[str] = None  # its id in accel_core.families.SUPPORT; None: every model


# (earlier, later): ``earlier`` must be applied before ``later``, with the reason
ORDER_RULES = (
    ("freeaccel_adacache", "freeaccel_token_prune",
     "AdaCache measures one block's residual, which must see every token"),
)


class ForwardPatch:
    """A module's ``forward`` replaced by ``handler(previous, *args, **kwargs)`` (see ``Installer.forward_patch``)."""

    def __init__(self, handler: Callable, previous: Callable):
        self.handler, self.previous = handler, previous

    def __call__(self, *args, **kwargs):
        return self.handler(self.previous, *args, **kwargs)


class Installer:
    """What ``install`` puts on the clone, each piece tagged with the technique's key."""

    def __init__(self, patcher: ModelPatcher, key: str):
        self.patcher, self.key = patcher, key

    @property
    def options(self) -> dict:
        return self.patcher.model_options.setdefault("transformer_options", {})

    def wrapper(self, kind: str, wrapper: Callable) -> None:
        self.patcher.add_wrapper_with_key(kind, self.key, wrapper)

    def block(self, kind: str, index: int, handler: Callable) -> None:
        chain_block_replacement(self.patcher, kind, index, handler, self.key)

    def attention(self, handler: Callable) -> None:
        chain_attention_override(self.options, handler, self.key)

    def object_patch(self, path: str, obj: Any) -> None:
        object.__setattr__(obj, _OWNER, self.key)  # modules too: never registered as a child
        object.__setattr__(obj, _PREVIOUS, self.patcher.object_patches.get(path))
        self.patcher.add_object_patch(path, obj)

    def forward_patch(self, module_path: str, handler: Callable) -> None:
        """Object patch of the ``forward`` of the module at ``module_path`` (e.g. "diffusion_model.blocks.3"):
        ``handler(run_forward, *args, **kwargs)``, where ``run_forward`` is the forward that was there (an earlier
        object patch of this path, or the module's own). The module tree, and so state-dict, LoRA and lowvram keys,
        stays as it was."""
        path = f"{module_path}.forward"
        previous = self.patcher.object_patches.get(path)
        if previous is None:
            module = self.patcher.get_model_object(module_path)
            previous = type(module).forward.__get__(module)
        self.object_patch(path, ForwardPatch(handler, previous))

    def run_state(self, start: Callable[[Any, Any], Any]) -> None:
        """Per-run state from ``start(model_sampling, sample_sigmas)`` and the run record (``run_state``)."""
        install_run_hook(self.patcher, self.key, start)


def installed_hooks(patcher: ModelPatcher, key: str) -> frozenset:
    """The hooks technique ``key`` has on ``patcher``, named as in ``accel_core.families.SUPPORT``."""
    options = patcher.model_options.get("transformer_options", {})
    found = {kind for kind, wrappers in patcher.wrappers.items() if wrappers.get(key)}
    found |= {kind for kind, callbacks in patcher.callbacks.items() if callbacks.get(key)}
    for hook, present in ((DIT_BLOCKS, owns_block_replacement(patcher, key)),
                          (ATTENTION, has_attention_handler(options, key)), (OPTION, key in options),
                          (OBJECT_PATCHES, any(getattr(obj, _OWNER, None) == key
                                               for obj in patcher.object_patches.values()))):
        if present:
            found.add(hook)
    return frozenset(found)


def owns(patcher: ModelPatcher, key: str) -> bool:
    """True when technique ``key`` has anything installed on ``patcher``."""
    return bool(installed_hooks(patcher, key))


def remove(patcher: ModelPatcher, key: str) -> None:
    """Remove from ``patcher`` (a clone) everything technique ``key`` installed."""
    for kind in list(patcher.wrappers):
        patcher.remove_wrappers_with_key(kind, key)
    for kind in list(patcher.callbacks):
        patcher.remove_callbacks_with_key(kind, key)
    drop_block_replacements(patcher, key)
    options = patcher.model_options.setdefault("transformer_options", {})
    drop_attention_handlers(options, key)
    options.pop(key, None)
    for path, obj in list(patcher.object_patches.items()):
        if getattr(obj, _OWNER, None) == key:
            previous = getattr(obj, _PREVIOUS)
            if previous is None:
                del patcher.object_patches[path]
            else:
                patcher.object_patches[path] = previous
    patcher.remove_attachments(record_key(key))


def order_error(technique: Technique, patcher: ModelPatcher) -> Optional[str]:
    """The message when ``technique`` would come after one it must precede, or None."""
    for earlier, later, reason in ORDER_RULES:
        if technique.key == earlier and owns(patcher, later):
            other = _TECHNIQUES[later].name
            return f"must come before {other} ({reason}): connect loader -> {technique.name} -> {other}"
    return None


_TECHNIQUES = {}  # key -> Technique, declared once per node module by ``technique`` (names for the order rules)


def technique(key: str, name: str, settings: type, install: Callable, support: Optional[str] = None) -> Technique:
    """Declare a technique (once per node module)."""
    declared = Technique(key, name, settings, install, support)
    _TECHNIQUES[key] = declared
    return declared


def apply(technique: Technique, model: ModelPatcher, settings: Any) -> ModelPatcher:
    """A clone of ModelPatcher ``model`` with ``technique`` installed with ``settings`` in place of any earlier
    install of it. Raises ValueError for invalid settings, an unsupported model or a node order that cannot work,
    and passes on the ValueError / RuntimeError of an install that cannot serve the model, every message prefixed
    with the node's name (install functions raise theirs without it)."""
    error = settings.error()
    if error is not None:
        raise ValueError(f"{technique.name}: {error}")
    family = None if technique.support is None else require_family(technique.support, model.model, technique.name,
                                                                    compat.VERSION)
    error = order_error(technique, model)
    if error is not None:
        raise ValueError(f"{technique.name}: {error}")
    patched = model.clone()
    remove(patched, technique.key)
    try:
        technique.install(Installer(patched, technique.key), settings, family)
    except (ValueError, RuntimeError) as err:  # what the model cannot serve: said once, in the node's style
        raise type(err)(f"{technique.name}: {err}") from err
    return patched
