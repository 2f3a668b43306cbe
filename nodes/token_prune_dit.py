"""What TokenPrune's block range needs from ComfyUI's Flux and WAN blocks: where the prunable blocks are, the q/k
of a block's image self-attention recomputed with the block's own modules, and the per-token block arguments that
must follow the kept tokens.

The q/k recomputation re-implements a few lines of ComfyUI's block code with private ``comfy.ldm`` helpers; the
drift tests (tests/comfy/test_token_prune_comfy.py) pin it against the q/k ComfyUI's own block hands to attention.
Those imports are guarded: a ComfyUI that renamed one only makes TokenPrune refuse that family, naming what is
missing, instead of unloading the node.
"""
import dataclasses

import torch
import comfy.model_management

from ..kernels.tokens import gather_tokens

try:  # private ComfyUI helpers of the Flux double block
    from comfy.ldm.flux.layers import apply_mod
    from comfy.ldm.flux.math import apply_rope
    _FLUX_IMPORT_ERROR = None
except ImportError as err:
    _FLUX_IMPORT_ERROR = err

try:  # private ComfyUI helpers of the WAN block
    from comfy.ldm.flux.math import apply_rope1
    from comfy.ldm.wan.model import WanModel, repeat_e
    _WAN_IMPORT_ERROR = None
except ImportError as err:
    _WAN_IMPORT_ERROR = err


def _flux_image_qk(block, args):
    """q, k [B, H, N, D] of a Flux double block's image stream, RoPE applied, computed with the block's modules."""
    img, vec, pe = args["img"], args["vec"], args["pe"]
    mod = block.img_mod(vec)[0] if block.modulation else vec[0][0]
    normed = apply_mod(block.img_norm1(img), 1 + mod.scale, mod.shift)
    qkv = block.img_attn.qkv(normed)
    q, k, v = qkv.view(img.shape[0], img.shape[1], 3, block.num_heads, -1).permute(2, 0, 3, 1, 4)
    q, k = block.img_attn.norm(q, k, v)
    if pe is not None:
        q, k = apply_rope(q, k, pe[:, :, args["txt"].shape[1]:])
    return q, k


def _wan_token_modulation(vec, x):
    """WAN's e0 with one row per token ([B, L, 6, C]) when it varies along the sequence (WAN 2.2 TI2V: one row per
    latent frame), expanded exactly as the block does it; None when it is one row per sample."""
    return repeat_e(vec, x) if vec.shape[1] > 1 else None


def _wan_qk(block, args):
    """q, k [B, H, L, D] of a WAN block's self-attention, RoPE applied, computed with the block's modules."""
    x, freqs = args["img"], args["pe"]
    vec = _wan_token_modulation(args["vec"], x)
    vec = args["vec"] if vec is None else vec
    modulation = comfy.model_management.cast_to(block.modulation, dtype=x.dtype, device=x.device).unsqueeze(0)
    shift, scale = (modulation + vec).unbind(2)[:2]
    normed = torch.addcmul(shift, block.norm1(x), 1 + scale)
    attn = block.self_attn
    b, s = x.shape[:2]
    q = apply_rope1(attn.norm_q(attn.q(normed)).view(b, s, attn.num_heads, attn.head_dim), freqs)
    k = apply_rope1(attn.norm_k(attn.k(normed)).view(b, s, attn.num_heads, attn.head_dim), freqs)
    return q.transpose(1, 2), k.transpose(1, 2)


def _flux_kept_args(args, keep_index):
    """The per-token arguments of a Flux double block restricted to the kept image tokens (text rows untouched)."""
    pe = args["pe"]
    if pe is not None:
        text = args["txt"].shape[1]
        pe = pe.expand(keep_index.shape[0], *pe.shape[1:])
        pe = torch.cat((pe[:, :, :text], gather_tokens(pe[:, 0, text:], keep_index).unsqueeze(1)), dim=2)
    return {"pe": pe}


def _wan_kept_args(args, keep_index):
    """The per-token arguments of a WAN block restricted to the kept tokens: rotary freqs and per-token e0."""
    freqs = args["pe"]
    freqs = gather_tokens(freqs.expand(keep_index.shape[0], *freqs.shape[1:]), keep_index)
    vec = _wan_token_modulation(args["vec"], args["img"])
    return {"pe": freqs, "vec": args["vec"] if vec is None else gather_tokens(vec, keep_index)}


@dataclasses.dataclass(frozen=True)
class DitHost:
    description: str        # what the blocks are called in messages
    default_range: object   # block count -> inclusive default (first, last)
    qk: object              # (block, args) -> q, k of the block's image self-attention
    kept_args: object       # (args, keep_index) -> replaced per-token args for the pruned blocks
    import_error: object    # ImportError of the ComfyUI internals qk / kept_args use, or None


# Defaults (ours): the first block never prunes (its input is the bare patch embedding, whose attention ranks
# tokens poorly) and on WAN the last block runs on every token before the output head. Flux prunes inside its
# double-stream blocks only: the single-stream blocks see text and image concatenated.
DIT_HOSTS = {
    "flux": DitHost("Flux double-stream blocks", lambda n: (min(1, n - 1), n - 1),
                    _flux_image_qk, _flux_kept_args, _FLUX_IMPORT_ERROR),
    "flux2": DitHost("Flux.2 double-stream blocks", lambda n: (min(1, n - 1), n - 1),
                     _flux_image_qk, _flux_kept_args, _FLUX_IMPORT_ERROR),  # Flux's blocks, shared modulation
    "wan": DitHost("WAN blocks", lambda n: (min(1, n - 1), max(min(1, n - 1), n - 2)),
                   _wan_qk, _wan_kept_args, _WAN_IMPORT_ERROR),
}


def dit_host(family, diffusion_model):
    """The DitHost of ``family`` for this diffusion model; raises when the model or this ComfyUI cannot be served."""
    host = DIT_HOSTS[family]
    if host.import_error is not None:
        raise RuntimeError(f"this ComfyUI lacks what TokenPrune uses to rank tokens in {host.description} "
                           f"({host.import_error}); FreeAccel needs an update for this ComfyUI version")
    if family == "wan" and type(diffusion_model) is not WanModel:
        raise ValueError(f"{type(diffusion_model).__name__} is not supported (VACE and other WAN "
                         "variants add per-token hints between blocks); use a WAN 2.1 / 2.2 T2V, I2V or TI2V model")
    return host
