"""FreeAccel_LocalWindowAttention: ComfyUI glue for local-window self-attention on video DiTs (the window attention
is ``kernels.local_window``, the settings and block decisions ``accel_core.local_window``).

Hooks: in the step range an APPLY_MODEL wrapper reads the call's token layout (``integration.token_layout``: a
reference-latent prefix, the video grid, text) and passes it on as a ModelCall in a copy of the call's
transformer_options; an attention handler (``integration.attention``, chained with other FreeAccel nodes) runs the
joint self-attention of every block in the block range on the window of the video grid.
"""
import functools

from comfy_api.v0_0_2 import io
import comfy.patcher_extension

from ..accel_core.local_window import LocalWindowSettings
from ..accel_core.settings import from_inputs
from ..kernels.local_window import VideoLayout, covers_everything, local_window_attention
from .integration.compat import report_block_info
from .integration.install import apply, technique
from .integration.schema import settings_inputs, settings_validator
from .integration.steps import SigmaWindow, call_sigma
from .integration.families import double_blocks, token_layout
from .integration.token_layout import ModelCall

KEY = "freeaccel_local_window"  # owner of everything installed, and the transformer_options key of the ModelCall
NAME = "Local Window Attention"  # the node's display name, the prefix of its messages


def _apply_model(family, settings, executor, x, t, c_concat, c_crossattn, control, transformer_options, **conds):
    """APPLY_MODEL wrapper: in the step range, the call's ModelCall goes down in a copy of its transformer_options
    (the caller's dict is left as it was)."""
    base_model = executor.class_obj
    if SigmaWindow(base_model.model_sampling, settings.start_percent, settings.end_percent).contains(call_sigma(t)):
        layout, _ = token_layout(family, base_model, x, c_crossattn, conds)
        call = ModelCall(layout, len(double_blocks(family, base_model.diffusion_model)))
        transformer_options = dict(transformer_options, **{KEY: call})
    return executor(x, t, c_concat, c_crossattn, control, transformer_options, **conds)


def _key_mask(mask):
    """A 4-D attention mask that only masks keys (text padding, e.g. HunyuanVideo's) as [B|1, Lk]; None for a mask
    that differs per query or head (the window cannot honour it)."""
    return mask[:, 0, 0] if mask.shape[1] == 1 and mask.shape[2] == 1 else None


def _attention(settings, call):
    """Attention handler: the window on a joint self-attention over a full video grid in the block range, else the
    rest of the chain."""
    model_call = call.options.get(KEY)  # None outside the step range
    layout = model_call.layout if model_call is not None else None
    if layout is None or call.query_length != call.key_length or not layout.matches(call.query_length):
        return call.next()
    block = model_call.block_number(model_call.site(call.options))  # counted even when this call stays dense
    if not layout.full_grid or not settings.covers_block(block):
        return call.next()
    offset = layout.prefix_for(call.query_length)
    grid, radii = VideoLayout(layout.frames, layout.height, layout.width, offset=offset), settings.radii
    key_mask = None if call.mask is None else _key_mask(call.mask)
    if covers_everything(grid, radii) or (call.mask is not None and key_mask is None):
        return call.next()
    return local_window_attention(call.q, call.k, call.v, grid, radii, key_mask=key_mask,
                                  implementation=settings.implementation, backend=call.backend)


def _install(installer, settings, family):
    report_block_info(installer.patcher, family)  # the block range is counted by block_index where it is reported
    installer.wrapper(comfy.patcher_extension.WrappersMP.APPLY_MODEL, functools.partial(_apply_model, family, settings))
    installer.attention(functools.partial(_attention, settings))


TECHNIQUE = technique(KEY, NAME, LocalWindowSettings, _install, support="local_window")


def apply_local_window(model, settings: LocalWindowSettings):
    """A clone of ModelPatcher ``model`` with local-window self-attention in place of any earlier one (raises for
    unsupported models or settings)."""
    return apply(TECHNIQUE, model, settings)


class LocalWindowAttentionNode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FreeAccel_LocalWindowAttention",
            display_name=NAME,
            category="FreeAccel/attention",
            is_experimental=True,  # until measured on real weights
            description="Video DiT self-attention restricted, in a block range and a step range, to a local window "
                        "around each video query: +-frames latent frames and a height x width token window. Text "
                        "tokens of joint attention stay visible. Fewer attention FLOPs; a window covering the whole "
                        "video leaves the model unchanged. Supports the video DiTs (WAN 2.1/2.2 and its variants, "
                        "HunyuanVideo (1.5), LTX-Video, LTX-2, MiniMax H3, CogVideoX, Kandinsky 5, Mochi).",
            inputs=[
                io.Model.Input("model", tooltip="A video DiT: WAN 2.1/2.2 (and Animate, S2V, HuMo, Fun Camera, "
                                                "WanDancer), HunyuanVideo (1.5), LTX-Video, LTX-2, MiniMax H3, "
                                                "CogVideoX, Kandinsky 5 or Mochi."),
                *settings_inputs(LocalWindowSettings),
            ],
            outputs=[io.Model.Output(tooltip="The model with local-window self-attention.")],
        )

    validate_inputs = settings_validator(LocalWindowSettings, NAME)

    @classmethod
    def execute(cls, model, **inputs):
        return io.NodeOutput(apply_local_window(model, from_inputs(LocalWindowSettings, inputs)))


NODES = [LocalWindowAttentionNode]
