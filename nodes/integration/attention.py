"""Chaining of ComfyUI's per-model attention override, with every handler seeing one layout.

ComfyUI calls ``transformer_options["optimized_attention_override"]`` as ``override(original_func, *args,
**kwargs)`` from its ``wrap_attn`` decorator: q/k/v as [B, L, H*D] or, with ``skip_reshape``, [B, H, L, D]; ``heads``
and the mask positional or by keyword; masks of rank 2 to 4. Several FreeAccel nodes (and other packs) may change
attention on one model, so each handler is installed in front of the override that was there and receives an
``AttentionCall``: q/k/v as [B, H, L, D], the mask as 4-D, and ``next()`` to run the rest of the chain, down to
ComfyUI's own function or the backend FreeAccel_AttentionBackend chose. Handlers return [B, H, L, D].
"""
from typing import Any, Callable, Optional

import torch
from comfy.model_patcher import ModelPatcher

from ...kernels.attention import attention, merge_heads, split_heads
from .chain import Chained, has_owner, without_owner

OVERRIDE_KEY = "optimized_attention_override"
# transformer_options key holding the FreeAccel backend name chosen by FreeAccel_AttentionBackend; the end of every
# FreeAccel handler chain computes attention with it, so the backend applies wherever that node sits in the graph.
BACKEND_KEY = "freeaccel_attention_backend"

# ComfyUI's attention functions take (q, k, v, heads, mask, attn_precision, skip_reshape, skip_output_reshape);
# callers pass heads and the mask positionally or by keyword (LTXV's masked cross-attention passes the mask 5th).
_POSITIONAL_AFTER_HEADS = ("mask", "attn_precision", "skip_reshape", "skip_output_reshape")


def _normalise(args, kwargs):
    """(q, k, v, heads, kwargs) with heads pulled out and later positionals turned into keywords."""
    kwargs = dict(kwargs)
    q, k, v = args[:3]
    rest = list(args[3:])
    heads = rest.pop(0) if rest else kwargs.pop("heads")
    if len(rest) > len(_POSITIONAL_AFTER_HEADS):
        raise TypeError(f"unexpected positional attention arguments: {len(rest)}")
    for name, value in zip(_POSITIONAL_AFTER_HEADS, rest):
        kwargs[name] = value
    return q, k, v, heads, kwargs


def as_4d_mask(mask: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """A ComfyUI attention mask as [B|1, H|1, Lq|1, Lk] (rank 2 and 3 broadcast over batch and heads as ComfyUI
    does), or None."""
    if mask is None or mask.ndim == 4:
        return mask
    if mask.ndim == 2:
        return mask[None, None]
    if mask.ndim == 3:
        return mask[:, None]
    raise ValueError(f"attention mask must have 2 to 4 dims, got shape {tuple(mask.shape)}")


class AttentionCall:
    """One attention call as a handler sees it: ``q``, ``k``, ``v`` [B, H, L, D], ``mask`` (4-D or None),
    ``heads``, ``options`` (the call's transformer_options) and ``next``."""

    def __init__(self, run_next, q, k, v, heads, kwargs):
        self._run_next, self._raw = run_next, (q, k, v, kwargs)
        self.heads = heads
        self.bhld = kwargs.get("skip_reshape", False)
        self.q, self.k, self.v = (t if self.bhld else split_heads(t, heads) for t in (q, k, v))
        self.mask = as_4d_mask(kwargs.get("mask"))
        self.options = kwargs.get("transformer_options") or {}

    @property
    def query_length(self) -> int:
        return self.q.shape[2]

    @property
    def key_length(self) -> int:
        return self.k.shape[2]

    @property
    def backend(self) -> str:
        """The FreeAccel backend name to compute with ("auto" when FreeAccel_AttentionBackend is not in the chain)."""
        return self.options.get(BACKEND_KEY) or "auto"

    def next(self, q: Optional[torch.Tensor] = None, k: Optional[torch.Tensor] = None,
             v: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """[B, H, L, D] output of the rest of the chain: on this call's own inputs when called without tensors (the
        original arguments go down unchanged, so a handler that only looks is bit-transparent), else on the given
        [B, H, L', D] tensors (a subset of heads, say) with ``mask`` (4-D or None)."""
        raw_q, raw_k, raw_v, kwargs = self._raw
        if q is None:
            return self._run_next(raw_q, raw_k, raw_v, self.heads, **dict(kwargs, skip_output_reshape=True))
        kwargs = dict(kwargs, mask=mask, skip_reshape=True, skip_output_reshape=True)
        return self._run_next(q, k, v, q.shape[1], **kwargs)


def _run_backend(original_func, q, k, v, heads, **kwargs):
    """End of every chain: ComfyUI's own attention, or the FreeAccel backend chosen for this model."""
    backend = (kwargs.get("transformer_options") or {}).get(BACKEND_KEY)
    if backend is None:
        return original_func(q, k, v, heads, **kwargs)
    call = AttentionCall(None, q, k, v, heads, kwargs)
    out = attention(call.q, call.k, call.v, backend=backend, mask=call.mask)
    return out if kwargs.get("skip_output_reshape", False) else merge_heads(out)


class ChainedOverride(Chained):
    """An ``optimized_attention_override``: ``handler(call: AttentionCall) -> [B, H, L, D]`` in front of the
    override it replaced (None: ComfyUI's own attention or the chosen backend)."""

    def __call__(self, original_func: Callable, *args: Any, **kwargs: Any) -> torch.Tensor:
        q, k, v, heads, kwargs = _normalise(args, kwargs)
        previous = self.previous

        def run_next(q, k, v, heads, **kw):
            if previous is not None:
                return previous(original_func, q, k, v, heads, **kw)
            return _run_backend(original_func, q, k, v, heads, **kw)

        out = self.handler(AttentionCall(run_next, q, k, v, heads, kwargs))
        return out if kwargs.get("skip_output_reshape", False) else merge_heads(out)


def chain_attention_override(transformer_options: dict, handler: Callable, owner: str) -> dict:
    """Put ``handler(call: AttentionCall) -> [B, H, L, D]`` in front of the override in the ``transformer_options``
    dict (changed in place: pass a model's options, or a copy made for some calls only)."""
    transformer_options[OVERRIDE_KEY] = ChainedOverride(handler, transformer_options.get(OVERRIDE_KEY), owner)
    return transformer_options


def drop_attention_handlers(transformer_options: dict, owner: str) -> None:
    """Remove ``owner``'s handlers from the override chain in ``transformer_options``."""
    kept = without_owner(transformer_options.get(OVERRIDE_KEY), owner)
    if kept is None:
        transformer_options.pop(OVERRIDE_KEY, None)
    else:
        transformer_options[OVERRIDE_KEY] = kept


def has_attention_handler(transformer_options: dict, owner: str) -> bool:
    return has_owner(transformer_options.get(OVERRIDE_KEY), owner)


def pass_through(call: AttentionCall) -> torch.Tensor:
    """A handler that only hands the call on (ends a chain in the chosen backend where nothing else overrides)."""
    return call.next()


def install_attention_override(model: ModelPatcher, handler: Callable, owner: Optional[str] = None) -> ModelPatcher:
    """Put ``handler(call: AttentionCall) -> [B, H, L, D]`` in front of the override already installed on ``model``
    (a cloned ModelPatcher); ``owner`` tags it for removal (None: a handler nobody removes). Returns ``model``."""
    chain_attention_override(model.model_options.setdefault("transformer_options", {}), handler, owner)
    return model


def set_attention_backend(model: ModelPatcher, backend: Optional[str],
                          owner: Optional[str] = BACKEND_KEY) -> ModelPatcher:
    """Make every FreeAccel attention chain on ``model`` end in ``backend`` (None: ComfyUI's own attention); where
    nothing overrides attention yet, a pass-through handler of ``owner`` makes the chain. Returns ``model``."""
    options = model.model_options.setdefault("transformer_options", {})
    if backend is None:
        options.pop(BACKEND_KEY, None)
        return model
    options[BACKEND_KEY] = backend
    if OVERRIDE_KEY not in options:
        install_attention_override(model, pass_through, owner)
    return model
