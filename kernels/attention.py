"""One attention entry point over several backends: sdpa, xformers, flex, sage and an explicit-softmax "math" reference.

All backends take q, k, v as [B, H, L, D]. Masks are bool (True = may attend) or additive float, broadcastable to
[B, H, Lq, Lk]. A flex-style ``mask_mod(b, h, q_idx, kv_idx) -> bool`` becomes a flex block mask on the flex backend
and is evaluated one query chunk at a time on every other backend, so no full Lq x Lk mask exists at once. mask_mod
is called with broadcastable index tensors there (b [B,1,1,1], h [1,H,1,1], q_idx [1,1,n,1], kv_idx [1,1,1,Lk]), so
it must use tensor ops only, as flex requires anyway. A query row that may attend to no key has no defined result
(backends differ: NaN or zeros).
"""
import functools
import importlib
import importlib.util
import logging
from typing import Callable, Optional, Union

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

BACKENDS = ("sdpa", "xformers", "flex", "sage", "math")
# Most mask elements evaluated from a mask_mod at once (bool elements, so about this many bytes).
MASK_CHUNK_ELEMENTS = 1 << 26
FLEX_BLOCK_SIZE = 128

# device type -> None when flex attention ran correctly there, else why not. Filled once per process by the probe.
_flex_probe = {}
# Keys of fallbacks already logged, so each is reported once per process.
_logged = set()
# (mask_mod, B, H, Lq, Lk, device) and its BlockMask: consecutive calls with the same mask_mod object reuse it, so a
# mask_mod must not read state that changes between calls.
_last_block_mask = [None, None]


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, L, H*D] -> [B, H, L, D]."""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, H, L, D] -> [B, L, H*D]."""
    return x.transpose(1, 2).flatten(2)


def _log_once(key, message, *args):
    if key not in _logged:
        _logged.add(key)
        log.warning(message, *args)


@functools.lru_cache(maxsize=None)
def _import_error(module):
    """None when ``module`` imports, else a short reason."""
    try:
        importlib.import_module(module)
    except Exception as err:  # a broken install (bad CUDA build, ...) is as unusable as a missing one
        return f"{module} does not import ({type(err).__name__}: {err})"
    return None


def _installed():
    names = ["sdpa", "math"]
    for name, module in (("flex", "torch.nn.attention.flex_attention"), ("xformers", "xformers"),
                         ("sage", "sageattention")):
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if found:
            names.append(name)
    return names


def _unusable(name, device_type):
    """None when backend ``name`` can run on ``device_type``, else the reason. Probes flex (once per device type)."""
    if name in ("sdpa", "math"):
        return None
    if name in ("xformers", "sage"):
        if device_type != "cuda" or not torch.cuda.is_available():
            return f"{name} needs a CUDA device (got {device_type})"
        return _import_error("xformers.ops" if name == "xformers" else "sageattention")
    reason = _import_error("torch.nn.attention.flex_attention")
    if reason is not None:
        return reason
    if device_type not in _flex_probe:
        _flex_probe[device_type] = _probe_flex(device_type)
    return _flex_probe[device_type]


def available_backends(device: Union[str, torch.device]) -> dict:
    """name -> None if the backend is usable on ``device``, else the reason (runs the one-off flex probe)."""
    device_type = torch.device(device).type
    return {name: _unusable(name, device_type) for name in BACKENDS}


def resolve_backend(name: str, device: Union[str, torch.device]) -> str:
    """Concrete backend for ``name`` on ``device``: "auto" is xformers on CUDA when it imports, else sdpa.

    An unusable flex falls back to sdpa with one logged warning; any other unusable backend raises ValueError.
    """
    device_type = torch.device(device).type
    if name == "auto":
        return "xformers" if _unusable("xformers", device_type) is None else "sdpa"
    if name not in BACKENDS:
        raise ValueError(f"unknown attention backend {name!r}; choose one of: auto, {', '.join(BACKENDS)}")
    reason = _unusable(name, device_type)
    if reason is None:
        return name
    if name == "flex":
        _log_once(("flex", device_type), "flex attention is unusable on %s (%s); using sdpa instead",
                  device_type, reason)
        return "sdpa"
    raise ValueError(f"attention backend {name!r} cannot run on {device_type}: {reason}. "
                     f"Installed backends: {', '.join(_installed())}")


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, backend: str = "auto",
              mask: Optional[torch.Tensor] = None, mask_mod: Optional[Callable] = None,
              scale: Optional[float] = None) -> torch.Tensor:
    """Attention of q [B, H, Lq, D] over k, v [B, H, Lk, D] -> [B, H, Lq, D] with the chosen backend."""
    name = resolve_backend(backend, q.device)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    if mask is not None:
        mask = mask.reshape((1,) * (4 - mask.dim()) + tuple(mask.shape))
    if name == "flex":
        return _flex(q, k, v, mask, mask_mod, scale)
    if name == "sage" and (mask is not None or mask_mod is not None or q.dtype not in (torch.float16, torch.bfloat16)):
        # sageattn takes no mask and only half precision; such calls go to sdpa rather than silently dropping a mask
        _log_once("sage", "sage attention takes no mask and needs fp16/bf16; masked or fp32 calls use sdpa")
        name = "sdpa"
    kernel = _KERNELS[name]
    if mask_mod is None:
        return kernel(q, k, v, mask, scale)
    return _attention_mask_mod_chunked(kernel, q, k, v, mask, mask_mod, scale)


def _additive(mask, dtype):
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, float("-inf"))
    return mask.to(dtype)


def _math(q, k, v, mask, scale):
    """Reference: explicit fp32 softmax(q k^T * scale + mask) v."""
    scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask.float()
    return torch.matmul(scores.softmax(dim=-1), v.float()).to(q.dtype)


def _sdpa(q, k, v, mask, scale):
    if mask is not None and mask.dtype != torch.bool:
        mask = mask.to(q.dtype)  # sdpa wants a float mask in the query's dtype
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


def _xformers(q, k, v, mask, scale):
    import xformers.ops

    bias = None
    if mask is not None:
        (batch, heads, q_len, _), k_len = q.shape, k.shape[2]
        bias = _additive(mask, q.dtype)
        # xformers needs the bias rows 8-element aligned: allocate padded storage and view the valid part
        aligned = torch.empty(*bias.shape[:2], q_len, -(-k_len // 8) * 8, dtype=q.dtype, device=q.device)
        aligned = aligned[..., :k_len]
        aligned.copy_(bias.expand(*bias.shape[:2], q_len, k_len))
        bias = aligned.expand(batch, heads, q_len, k_len)
    out = xformers.ops.memory_efficient_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_bias=bias, scale=scale)
    return out.transpose(1, 2)


def _sage(q, k, v, mask, scale):
    from sageattention import sageattn

    return sageattn(q, k, v, tensor_layout="HND", is_causal=False, sm_scale=scale)


_KERNELS = {"sdpa": _sdpa, "math": _math, "xformers": _xformers, "sage": _sage}


def _eval_mask_mod(mask_mod, batch, heads, start, stop, k_len, device):
    """mask_mod for query rows [start, stop) as a bool tensor broadcastable to [B, H, stop - start, Lk]."""
    b = torch.arange(batch, device=device).view(-1, 1, 1, 1)
    h = torch.arange(heads, device=device).view(1, -1, 1, 1)
    q_idx = torch.arange(start, stop, device=device).view(1, 1, -1, 1)
    kv_idx = torch.arange(k_len, device=device).view(1, 1, 1, -1)
    allowed = torch.as_tensor(mask_mod(b, h, q_idx, kv_idx), device=device).to(torch.bool)
    return allowed.expand(torch.broadcast_shapes(allowed.shape, (1, 1, stop - start, k_len)))


def _rows_per_chunk(mask_mod, batch, heads, k_len, device, multiple=1):
    """Query rows per chunk so one chunk's mask holds at most MASK_CHUNK_ELEMENTS (a multiple of ``multiple``)."""
    one_row = _eval_mask_mod(mask_mod, batch, heads, 0, 1, k_len, device)
    rows = MASK_CHUNK_ELEMENTS // (one_row.shape[0] * one_row.shape[1] * k_len)
    return max(multiple, rows // multiple * multiple)


def _attention_mask_mod_chunked(kernel, q, k, v, mask, mask_mod, scale):
    (batch, heads, q_len, _), k_len = q.shape, k.shape[2]
    rows = _rows_per_chunk(mask_mod, batch, heads, k_len, q.device)
    outs = []
    for start in range(0, q_len, rows):
        stop = min(start + rows, q_len)
        chunk_mask = _eval_mask_mod(mask_mod, batch, heads, start, stop, k_len, q.device)
        if mask is not None:
            rows_of_mask = mask if mask.shape[-2] == 1 else mask[..., start:stop, :]
            chunk_mask = (chunk_mask & rows_of_mask if mask.dtype == torch.bool
                          else torch.where(chunk_mask, rows_of_mask, float("-inf")))
        outs.append(kernel(q[:, :, start:stop], k, v, chunk_mask, scale))
    return torch.cat(outs, dim=2)


def _ordered_blocks(dense):
    """Dense [B, H, nq, nk] block flags -> (count per row, block indices listed first) as flex's BlockMask wants."""
    counts = dense.sum(dim=-1, dtype=torch.int32)
    indices = torch.argsort(dense.to(torch.int32), dim=-1, descending=True, stable=True).to(torch.int32)
    return counts, indices


def _build_block_mask(mask_mod, batch, heads, q_len, k_len, device):
    """flex BlockMask for mask_mod, evaluated a chunk of query blocks at a time (create_block_mask's dense
    evaluation would materialise the whole B x H x Lq x Lk mask)."""
    from torch.nn.attention.flex_attention import BlockMask

    size = FLEX_BLOCK_SIZE
    k_pad = -(-k_len // size) * size - k_len
    rows = _rows_per_chunk(mask_mod, batch, heads, k_len, device, multiple=size)
    partial, full = [], []
    for start in range(0, q_len, rows):
        stop = min(start + rows, q_len)
        allowed = _eval_mask_mod(mask_mod, batch, heads, start, stop, k_len, device)
        # padding counts as masked, so a ragged edge block is partial and flex applies mask_mod there
        allowed = F.pad(allowed, (0, k_pad, 0, -(-(stop - start) // size) * size - (stop - start)))
        blocks = allowed.unflatten(3, (-1, size)).unflatten(2, (-1, size))  # [B, H, nq, size, nk, size]
        any_allowed, all_allowed = blocks.any(dim=5).any(dim=3), blocks.all(dim=5).all(dim=3)
        partial.append(any_allowed & ~all_allowed)
        full.append(all_allowed)
    lead = (max(p.shape[0] for p in partial), max(p.shape[1] for p in partial))
    partial = torch.cat([p.expand(*lead, -1, -1) for p in partial], dim=2)
    full = torch.cat([f.expand(*lead, -1, -1) for f in full], dim=2)
    return BlockMask.from_kv_blocks(*_ordered_blocks(partial), *_ordered_blocks(full), BLOCK_SIZE=size,
                                    mask_mod=mask_mod, seq_lengths=(q_len, k_len))


def _block_mask(mask_mod, batch, heads, q_len, k_len, device):
    key = (mask_mod, batch, heads, q_len, k_len, torch.device(device))
    if _last_block_mask[0] != key:
        _last_block_mask[:] = [key, _build_block_mask(mask_mod, batch, heads, q_len, k_len, device)]
    return _last_block_mask[1]


@functools.lru_cache(maxsize=None)
def _compiled_flex(device_type):
    from torch.nn.attention.flex_attention import flex_attention

    # Uncompiled flex materialises the full score matrix; compiled it runs block-sparse kernels. On CPU, static
    # shapes: inductor's dynamic-shape CPU flex kernel fails to compile when score_mod/mask_mod index a captured
    # tensor (seen in torch 2.13 and 2.14); each new CPU shape then compiles anew, up to dynamo's recompile limit.
    return torch.compile(flex_attention, dynamic=False if device_type == "cpu" else None)


def _flex(q, k, v, mask, mask_mod, scale):
    (batch, heads, q_len, _), k_len = q.shape, k.shape[2]
    score_mod = None
    if mask is not None and mask.dtype == torch.bool:
        dense = mask.expand(batch, heads, q_len, k_len)

        def mask_and_mod(b, h, q_idx, kv_idx):
            allowed = dense[b, h, q_idx, kv_idx]
            return allowed if mask_mod is None else allowed & mask_mod(b, h, q_idx, kv_idx)
        block_mask = _build_block_mask(mask_and_mod, batch, heads, q_len, k_len, q.device)
    else:
        if mask is not None:
            bias = mask.float().expand(batch, heads, q_len, k_len)

            def score_mod(score, b, h, q_idx, kv_idx):
                return score + bias[b, h, q_idx, kv_idx]
        block_mask = None if mask_mod is None else _block_mask(mask_mod, batch, heads, q_len, k_len, q.device)
    return _compiled_flex(q.device.type)(q, k, v, score_mod=score_mod, block_mask=block_mask, scale=scale)


def _causal(b, h, q_idx, kv_idx):
    return q_idx >= kv_idx


def _probe_flex(device_type):
    """None when compiled flex attention with a block mask matches the reference on ``device_type``, else why not."""
    try:
        q, k, v = torch.randn(3, 1, 2, 64, 16, generator=torch.Generator().manual_seed(0)).to(device_type)
        out = _flex(q, k, v, None, _causal, 0.25)
        ref = _math(q, k, v, torch.ones(64, 64, dtype=torch.bool, device=device_type).tril(), 0.25)
        error = (out.float() - ref).abs().max().item()
    except Exception as err:  # any failure (no compiler, no kernel for this device, ...) means unusable
        return f"flex probe failed: {type(err).__name__}: {err}"
    return None if error < 1e-4 else f"flex probe mismatch: max error {error:.2e}"
