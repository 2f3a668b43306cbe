"""The per-family adapter table: how each supported model family is laid out for the hooks that reach into it.

- ``stacks``: the diffusion model's transformer block lists in call order, each with the ``patches_replace["dit"]``
  kind its blocks are replaced under;
- ``text_first``: single-stream blocks see text and image tokens concatenated: Flux / Chroma put the text first,
  HunyuanVideo the image first;
- ``token_layout``: for video models, where the tokens of one model call sit (integration.token_layout).

Which technique supports which family is a different question, answered by accel_core/families.py.
"""
import dataclasses
from typing import Any, Optional

import torch

from . import token_layout as layouts


@dataclasses.dataclass(frozen=True)
class FamilyAdapter:
    stacks: tuple = ()
    text_first: bool = True
    token_layout: object = None  # fn(BaseModel, x, c_crossattn, conds) -> (TokenLayout, cross-attention key lengths)


_DOUBLE, _SINGLE = "double_block", "single_block"

ADAPTERS = {
    "wan": FamilyAdapter((("blocks", _DOUBLE),), token_layout=layouts.wan),
    "hunyuan_video": FamilyAdapter((("double_blocks", _DOUBLE), ("single_blocks", _SINGLE)), text_first=False,
                                   token_layout=layouts.hunyuan_video),
    "ltxv": FamilyAdapter((("transformer_blocks", _DOUBLE),), token_layout=layouts.ltxv),
    "mochi": FamilyAdapter((("blocks", _DOUBLE),), token_layout=layouts.mochi),
    "flux": FamilyAdapter((("double_blocks", _DOUBLE), ("single_blocks", _SINGLE))),
    "qwen_image": FamilyAdapter((("transformer_blocks", _DOUBLE),)),
    "svd": FamilyAdapter(token_layout=layouts.svd),
}


def block_keys(family: str, diffusion_model: torch.nn.Module) -> list:
    """[(dit block kind, index)] of every transformer block, in call order."""
    keys = []
    for attribute, kind in ADAPTERS[family].stacks:
        keys += [(kind, i) for i in range(len(getattr(diffusion_model, attribute, ())))]
    return keys


def double_blocks(family: str, diffusion_model: torch.nn.Module) -> torch.nn.ModuleList:
    """The module list whose blocks are replaced as ("double_block", i) (WAN's single stack is keyed "double")."""
    attribute = next(attribute for attribute, kind in ADAPTERS[family].stacks if kind == _DOUBLE)
    return getattr(diffusion_model, attribute)


def token_layout(family: str, model: Any, x: torch.Tensor, c_crossattn: Optional[torch.Tensor],
                 conds: dict) -> tuple:
    """(TokenLayout of this APPLY_MODEL call, key lengths of the model's cross-attentions); None for the layout
    when a cross-attention would have exactly the joint self-attention's length (it could not be told apart)."""
    layout, cross_lengths = ADAPTERS[family].token_layout(model, x, c_crossattn, conds)
    if layout.prefix + layout.video_tokens + layout.text in cross_lengths:
        return None, cross_lengths
    return layout, cross_lengths
