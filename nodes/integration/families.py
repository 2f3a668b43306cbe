"""The per-family adapter table: how each supported model family is laid out for the hooks that reach into it.

- ``stacks``: the diffusion model's transformer block lists in call order, each with the ``patches_replace["dit"]``
  kind its blocks are replaced under;
- ``text_first``: single-stream blocks see text and image tokens concatenated: Flux / Chroma put the text first,
  HunyuanVideo the image first;
- ``token_layout``: for video models, where the tokens of one model call sit (integration.token_layout);
- ``stream`` / ``streams``: the dit args key of the token stream and what it holds (one tensor, LTX-2's (video,
  audio) pair, MiniMax H3's packed rows);
- ``forward``: for models whose blocks have no ``patches_replace["dit"]`` hook (or a broken one: Kandinsky 5), how
  each block is called, so a technique can object-patch the block's ``forward`` on the clone instead.

Which technique supports which family is a different question, answered by accel_core/families.py.
"""
import dataclasses
from typing import Any, Optional

import torch

from . import token_layout as layouts


@dataclasses.dataclass(frozen=True)
class ForwardCall:
    """How a block without a dit hook is called, for object patches of its ``forward``: the token stream is keyword
    ``stream[0]`` or positional argument ``stream[1]``; the block returns that stream, or (``passthrough`` given) a
    tuple whose first entry is it, and a block left out returns the tuple of its ``passthrough`` keyword inputs."""
    stream: tuple
    passthrough: Optional[tuple] = None


@dataclasses.dataclass(frozen=True)
class FamilyAdapter:
    stacks: tuple = ()
    text_first: bool = True
    token_layout: object = None  # fn(BaseModel, x, c_crossattn, conds) -> (TokenLayout, cross-attention key lengths)
    stream: str = "img"  # the dit args key of the token stream
    # what the stream holds: "tensor" [B, L, D] (or [B, T, H, W, D]); "pair" (video [B, Lv, Dv], audio [B, La, Da]);
    # "packed" one [L, D] sequence without batch axis whose rows' modality ``args["mod_segments"]`` gives
    streams: str = "tensor"
    forward: dict = dataclasses.field(default_factory=dict)  # stack attribute -> ForwardCall (object-patch route)


_DOUBLE, _SINGLE = "double_block", "single_block"
_WAN = FamilyAdapter((("blocks", _DOUBLE),), token_layout=layouts.wan)
_WAN_EXTRA_TOKENS = dataclasses.replace(_WAN, token_layout=layouts.wan_with_extra_tokens)
_FLUX = FamilyAdapter((("double_blocks", _DOUBLE), ("single_blocks", _SINGLE)))
_HUNYUAN = FamilyAdapter((("double_blocks", _DOUBLE), ("single_blocks", _SINGLE)), text_first=False)
_MMDIT = FamilyAdapter((("transformer_blocks", _DOUBLE),))
_FIRST_ARGUMENT = ForwardCall(("x", 0))

ADAPTERS = {
    "wan": _WAN,
    "hunyuan_video": dataclasses.replace(_HUNYUAN, token_layout=layouts.hunyuan_video),
    "ltxv": FamilyAdapter((("transformer_blocks", _DOUBLE),), token_layout=layouts.ltxv),
    "mochi": FamilyAdapter((("blocks", _DOUBLE),), token_layout=layouts.mochi),
    "flux": _FLUX,
    "qwen_image": _MMDIT,
    "svd": FamilyAdapter(token_layout=layouts.svd),
    "flux2": _FLUX,
    "z_image": FamilyAdapter((("layers", _DOUBLE),), forward={"layers": _FIRST_ARGUMENT}),  # over [text, image]
    "hunyuan_image21": _HUNYUAN,
    "kandinsky5_image": FamilyAdapter((("visual_transformer_blocks", _DOUBLE),),
                                      forward={"visual_transformer_blocks": _FIRST_ARGUMENT}),
    "krea2": FamilyAdapter((("blocks", _DOUBLE),), forward={"blocks": _FIRST_ARGUMENT}),  # over [text, image]
    # single-stream blocks see [image, text] and return it; the model crops the text back off after each
    "hidream": FamilyAdapter((("double_stream_blocks", _DOUBLE), ("single_stream_blocks", _SINGLE)), text_first=False,
                             forward={"double_stream_blocks": ForwardCall(("image_tokens", 0),
                                                                          ("image_tokens", "text_tokens")),
                                      "single_stream_blocks": ForwardCall(("image_tokens", 0))}),
    "hidream_o1": FamilyAdapter((("language_model.layers", _DOUBLE),), stream="x"),  # over [text, t, image]
    "chroma_radiance": _FLUX,
    "lens": _MMDIT,
    "joyimage": FamilyAdapter((("double_blocks", _DOUBLE),)),
    "mage_flow": _MMDIT,
    "sd35": FamilyAdapter((("joint_blocks", _DOUBLE),)),
    "hunyuan_video15": dataclasses.replace(_HUNYUAN, token_layout=layouts.hunyuan_video),
    "cogvideox": FamilyAdapter((("blocks", _DOUBLE),), token_layout=layouts.cogvideox, forward={"blocks": ForwardCall(
        ("hidden_states", 0), ("hidden_states", "encoder_hidden_states"))}),
    "ltxav": FamilyAdapter((("transformer_blocks", _DOUBLE),), streams="pair", token_layout=layouts.ltxav),
    "minimax_h3": FamilyAdapter((("blocks", _DOUBLE),), streams="packed", token_layout=layouts.minimax_h3),
    "kandinsky5": FamilyAdapter((("visual_transformer_blocks", _DOUBLE),), token_layout=layouts.kandinsky5,
                                forward={"visual_transformer_blocks": _FIRST_ARGUMENT}),
    "cosmos_predict2": FamilyAdapter((("blocks", _DOUBLE),), forward={"blocks": _FIRST_ARGUMENT}),  # [B, T, H, W, D]
    "wan22_animate": _WAN_EXTRA_TOKENS,
    "wan22_s2v": _WAN_EXTRA_TOKENS,
    "wan21_humo": _WAN_EXTRA_TOKENS,
    "wan22_camera": _WAN,
    # its frame-by-frame mode calls the blocks and attention without transformer_options: no token layout, so no
    # attention technique is offered (AdaCache says in the log when no block ran through its hooks)
    "wan21_causal_ar": FamilyAdapter((("blocks", _DOUBLE),)),
    "wan22_wandancer": _WAN,
}


def stack_blocks(family: str, diffusion_model: torch.nn.Module) -> list:
    """[(stack attribute, dit block kind, index)] of every transformer block, in call order."""
    keys = []
    for attribute, kind in ADAPTERS[family].stacks:
        keys += [(attribute, kind, i) for i in range(len(_stack(diffusion_model, attribute)))]
    return keys


def _stack(diffusion_model, attribute):
    try:
        return diffusion_model.get_submodule(attribute)
    except AttributeError:
        return ()


def double_blocks(family: str, diffusion_model: torch.nn.Module) -> torch.nn.ModuleList:
    """The module list whose blocks are replaced as ("double_block", i) (WAN's single stack is keyed "double")."""
    attribute = next(attribute for attribute, kind in ADAPTERS[family].stacks if kind == _DOUBLE)
    return diffusion_model.get_submodule(attribute)


def token_layout(family: str, model: Any, x: torch.Tensor, c_crossattn: Optional[torch.Tensor],
                 conds: dict) -> tuple:
    """(TokenLayout of this APPLY_MODEL call, key lengths of the model's cross-attentions); None for the layout
    when a cross-attention would have exactly the joint self-attention's length (it could not be told apart)."""
    layout, cross_lengths = ADAPTERS[family].token_layout(model, x, c_crossattn, conds)
    if layout.prefix + layout.video_tokens + layout.text in cross_lengths:
        return None, cross_lengths
    return layout, cross_lengths
