"""Chaining of ComfyUI's per-model attention override (``transformer_options["optimized_attention_override"]``).

ComfyUI calls the override as ``override(original_func, *args, **kwargs)`` from its ``wrap_attn`` decorator, with
``heads`` sometimes positional and sometimes a keyword. Several FreeAccel nodes (and other packs) may want to modify
attention on the same model, so each handler receives a ``next_attention`` that runs whatever was installed before
it, down to ComfyUI's own function.
"""

from ..kernels.attention import attention, merge_heads, split_heads

OVERRIDE_KEY = "optimized_attention_override"
# transformer_options key holding the FreeAccel backend name chosen by FreeAccel_AttentionBackend; the end of every
# FreeAccel handler chain computes attention with it, so the backend applies wherever that node sits in the graph.
BACKEND_KEY = "freeaccel_attention_backend"


# ComfyUI's attention functions take (q, k, v, heads, mask, attn_precision, skip_reshape, skip_output_reshape);
# callers pass heads and the mask positionally or by keyword (LTXV's masked cross-attention passes the mask 5th).
_POSITIONAL_AFTER_HEADS = ("mask", "attn_precision", "skip_reshape", "skip_output_reshape")


def _normalise(args, kwargs):
    """Return (q, k, v, heads, kwargs) with heads pulled out and later positionals turned into keywords."""
    kwargs = dict(kwargs)
    q, k, v = args[:3]
    rest = list(args[3:])
    heads = rest.pop(0) if rest else kwargs.pop("heads")
    if len(rest) > len(_POSITIONAL_AFTER_HEADS):
        raise TypeError(f"unexpected positional attention arguments: {len(rest)}")
    for name, value in zip(_POSITIONAL_AFTER_HEADS, rest):
        kwargs[name] = value
    return q, k, v, heads, kwargs


def comfy_layout_attention(q, k, v, heads, *, backend, mask=None, skip_reshape=False, skip_output_reshape=False,
                           **_ignored):
    """Run ``kernels.attention`` on tensors in either ComfyUI layout and return ComfyUI's expected layout.

    ``skip_reshape`` means q/k/v arrive as [B, H, L, D], otherwise as [B, L, H*D]; ``skip_output_reshape`` asks for
    [B, H, L, D] back instead of [B, L, H*D]. Masks of rank 2 or 3 are broadcast over batch and heads as ComfyUI does.
    """
    if not skip_reshape:
        q, k, v = (split_heads(t, heads) for t in (q, k, v))
    if mask is not None:
        if mask.ndim == 2:
            mask = mask.unsqueeze(0)
        if mask.ndim == 3:
            mask = mask.unsqueeze(1)
    out = attention(q, k, v, backend=backend, mask=mask)
    return out if skip_output_reshape else merge_heads(out)


def _run_backend(original_func, q, k, v, heads, **kwargs):
    backend = (kwargs.get("transformer_options") or {}).get(BACKEND_KEY)
    if backend is None:
        return original_func(q, k, v, heads, **kwargs)
    return comfy_layout_attention(q, k, v, heads, backend=backend, **kwargs)


def install_attention_override(model, handler):
    """Put ``handler`` in front of the override already installed on ``model`` (a cloned ModelPatcher).

    ``handler(next_attention, q, k, v, heads, **kwargs)``; ``next_attention(q, k, v, heads, **kwargs)``.
    """
    options = model.model_options.setdefault("transformer_options", {})
    previous = options.get(OVERRIDE_KEY)

    def override(original_func, *args, **kwargs):
        q, k, v, heads, kwargs = _normalise(args, kwargs)

        def next_attention(q, k, v, heads, **kw):
            if previous is not None:
                return previous(original_func, q, k, v, heads, **kw)
            return _run_backend(original_func, q, k, v, heads, **kw)

        return handler(next_attention, q, k, v, heads, **kwargs)

    options[OVERRIDE_KEY] = override
    return model


def set_attention_backend(model, backend):
    """Make every FreeAccel attention chain on ``model`` end in ``backend`` (None: ComfyUI's own attention)."""
    options = model.model_options.setdefault("transformer_options", {})
    if backend is None:
        options.pop(BACKEND_KEY, None)
        return model
    options[BACKEND_KEY] = backend
    if OVERRIDE_KEY not in options:
        install_attention_override(model, lambda next_attention, *args, **kwargs: next_attention(*args, **kwargs))
    return model
