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

from ..accel_core.families import require_family
from ..accel_core.local_window import LocalWindowSettings
from ..kernels.local_window import IMPLEMENTATIONS, VideoLayout, covers_everything, local_window_attention
from .integration.attention import install_attention_override
from .integration.compat import report_block_info
from .integration.steps import SigmaWindow, call_sigma
from .integration.families import double_blocks, token_layout
from .integration.token_layout import ModelCall

KEY = "freeaccel_local_window"  # APPLY_MODEL wrapper key, and the transformer_options key of the call's ModelCall


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
    grid, radii = VideoLayout(layout.frames, layout.height, layout.width, offset=layout.prefix), settings.radii
    key_mask = None if call.mask is None else _key_mask(call.mask)
    if covers_everything(grid, radii) or (call.mask is not None and key_mask is None):
        return call.next()
    return local_window_attention(call.q, call.k, call.v, grid, radii, key_mask=key_mask,
                                  implementation=settings.implementation, backend=call.backend)


def apply_local_window(model, settings):
    """A clone of ModelPatcher ``model`` with local-window self-attention (raises for unsupported models or
    settings)."""
    error = settings.error()
    if error is not None:
        raise ValueError(f"LocalWindowAttention: {error}")
    family = require_family("local_window", model.model)
    patched = model.clone()
    report_block_info(patched, family)  # the block range is counted by block_index where the model reports it
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, KEY,
                                 functools.partial(_apply_model, family, settings))
    install_attention_override(patched, functools.partial(_attention, settings))
    return patched


_DEFAULTS = LocalWindowSettings()


class LocalWindowAttentionNode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FreeAccel_LocalWindowAttention",
            display_name="Local Window Attention",
            category="FreeAccel/attention",
            is_experimental=True,  # until measured on real weights
            description="Video DiT self-attention restricted, in a block range and a step range, to a local window "
                        "around each video query: +-frames latent frames and a height x width token window. Text "
                        "tokens of joint attention stay visible. Fewer attention FLOPs; a window covering the whole "
                        "video leaves the model unchanged. Supports WAN, HunyuanVideo, LTX-Video and Mochi.",
            inputs=[
                io.Model.Input("model", tooltip="A video diffusion model (WAN, HunyuanVideo, LTX-Video or Mochi)."),
                io.Int.Input("frames", default=_DEFAULTS.frames, min=0, max=256,
                             tooltip="Each query sees keys at most this many latent frames before and after it."),
                io.Int.Input("height", default=_DEFAULTS.height, min=1, max=1024,
                             tooltip="Window height in tokens (latent rows / patch size), centred on the query; "
                                     "an even size grows to the next odd one (6 -> 7)."),
                io.Int.Input("width", default=_DEFAULTS.width, min=1, max=1024,
                             tooltip="Window width in tokens (latent columns / patch size), centred on the query; "
                                     "an even size grows to the next odd one."),
                io.Int.Input("start_block", default=_DEFAULTS.start_block, min=0, max=1000,
                             tooltip="First transformer block (0-based) that uses the window. HunyuanVideo numbers "
                                     "its single-stream blocks after the double-stream ones."),
                io.Int.Input("end_block", default=_DEFAULTS.end_block, min=-1, max=1000,
                             tooltip="Last transformer block that uses the window; -1 = the last block."),
                io.Float.Input("start_percent", default=_DEFAULTS.start_percent, min=0.0, max=1.0, step=0.01,
                               tooltip="Sampling progress where the window starts. Early steps set the layout: "
                                       "raise this to keep them at full attention."),
                io.Float.Input("end_percent", default=_DEFAULTS.end_percent, min=0.0, max=1.0, step=0.01,
                               tooltip="Sampling progress where the window ends."),
                io.Combo.Input("implementation", options=list(IMPLEMENTATIONS), default=_DEFAULTS.implementation,
                               tooltip="auto = tiled (fast): queries are grouped in grid tiles and every query of a "
                                       "tile sees the same box of keys, its tile grown by the window radius on each "
                                       "side (a superset of each query's own window, slid inside the grid at the "
                                       "borders); each tile is one dense attention call. gathered / flex: exactly "
                                       "each query's own window, slower (gathered: masked tiles on any device; "
                                       "flex: torch flex_attention block masks)."),
            ],
            outputs=[io.Model.Output(tooltip="The model with local-window self-attention.")],
        )

    @classmethod
    def validate_inputs(cls, start_block=_DEFAULTS.start_block, end_block=_DEFAULTS.end_block,
                        start_percent=_DEFAULTS.start_percent, end_percent=_DEFAULTS.end_percent,
                        implementation=_DEFAULTS.implementation):
        # Only the inputs the checks read, so ComfyUI still range-checks the others; an input fed by a link is
        # unknown here and keeps its default (apply_local_window checks again).
        error = LocalWindowSettings(start_block=start_block, end_block=end_block, start_percent=start_percent,
                                    end_percent=end_percent, implementation=implementation).error()
        return True if error is None else error

    @classmethod
    def execute(cls, model, **inputs):
        return io.NodeOutput(apply_local_window(model, LocalWindowSettings(**inputs)))


NODES = [LocalWindowAttentionNode]
