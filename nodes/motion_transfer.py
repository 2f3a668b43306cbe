"""Motion nodes: FreeAccel_LocalWindowAttention (MODEL -> MODEL) and FreeAccel_MotionTransferGuider (-> GUIDER).

LocalWindowAttention restricts the self-attention of a video DiT, in a block range and a step range, to a local
window around each video query (kernels.local_window). An APPLY_MODEL wrapper stashes the latent's token grid in the
per-call transformer_options; the attention override (chained with other FreeAccel nodes) reads it.

MotionTransferGuider is a CFGGuider that, at the first ``guided_steps`` steps, optimises the latent so that its
attention motion flow matches the reference video's (accel_core.motion_transfer), then lets the chosen sampler step
from the optimised latent.
"""
import contextlib
import logging
import math

import torch
from comfy_api.v0_0_2 import io
import comfy.model_patcher
import comfy.patcher_extension
import comfy.samplers
import comfy.utils

from ..accel_core import motion_transfer as mt
from ..accel_core.families import require_family
from ..kernels.attention import merge_heads, split_heads
from ..kernels.local_window import (
    IMPLEMENTATIONS, VideoLayout, covers_everything, local_window_attention, window_radii)
from .attention_override import BACKEND_KEY, OVERRIDE_KEY, install_attention_override
from .integration.compat import report_block_info

log = logging.getLogger(__name__)

WINDOW_STATE_KEY = "freeaccel_local_window"
WRAPPER_KEY = "freeaccel_local_window"
REFERENCE_COND = "freeaccel_motion_reference"
FASTVMT_AMF_BLOCK = 14  # FastVMT reads Q/K of block index 14 on both Wan2.1 1.3B (30 blocks) and 14B (40 blocks)


# ---------------------------------------------------------------------------------------------------------------
# LocalWindowAttention


def _token_grid(diffusion_model, latent_shape):
    """(frames, height, width) of the video tokens of a [B, C, T, H, W] latent (patches rounded up, as models pad)."""
    patch = getattr(diffusion_model, "patch_size", 1)
    patch = tuple(patch) if isinstance(patch, (tuple, list)) else (1, patch, patch)
    patch = (1,) * (3 - len(patch)) + patch
    return tuple(math.ceil(size / p) for size, p in zip(latent_shape[2:], patch))


class _ForwardState:
    """Per model call: the token grid and which blocks' self-attention has been seen."""

    def __init__(self, grid, double_blocks):
        self.grid, self.double_blocks = grid, double_blocks
        self.last_block, self.calls = None, -1

    def self_attention_block(self, options, q_len, k_len):
        """Global block number when this attention call is a block's self-attention, else None.

        Models that report ``block_index`` (WAN, HunyuanVideo) call self-attention first in each block; the others
        (LTXV, Mochi) are counted by their self-attention calls (equal query and key lengths).
        """
        if q_len != k_len:
            return None
        if "block_index" in options:
            key = (options.get("block_type"), options["block_index"])
            if key == self.last_block:
                return None
            self.last_block = key
            return options["block_index"] + (self.double_blocks if key[0] == "single" else 0)
        self.calls += 1
        return self.calls

    def layout(self, seq_len):
        """Where the video grid sits in a self-attention sequence of ``seq_len`` tokens (None: not recognised)."""
        frames, height, width = self.grid
        plane = height * width
        if seq_len == frames * plane:
            return VideoLayout(frames, height, width)
        if seq_len > frames * plane and seq_len % plane == 0:  # WAN reference / concatenated frames: more frames
            return VideoLayout(seq_len // plane, height, width)
        if seq_len > frames * plane:  # joint attention: video first, then text (HunyuanVideo, Mochi)
            return VideoLayout(frames, height, width)
        return None


def _grid_wrapper(start_percent, end_percent):
    """APPLY_MODEL wrapper: in the step range, put a fresh _ForwardState into this call's transformer_options."""

    def wrapper(executor, x, t, *args, **kwargs):
        base_model = executor.class_obj
        options = args[3] if len(args) > 3 else kwargs.get("transformer_options")
        sampling = base_model.model_sampling
        sigma = float(t.max())
        active = sampling.percent_to_sigma(end_percent) <= sigma <= sampling.percent_to_sigma(start_percent)
        if not active or options is None:
            return executor(x, t, *args, **kwargs)
        diffusion_model = base_model.diffusion_model
        options[WINDOW_STATE_KEY] = _ForwardState(_token_grid(diffusion_model, x.shape),
                                                  len(getattr(diffusion_model, "double_blocks", ())))
        try:
            return executor(x, t, *args, **kwargs)
        finally:
            options.pop(WINDOW_STATE_KEY, None)

    return wrapper


def _per_key_mask(mask):
    """A ComfyUI attention mask that only masks keys (text padding, e.g. HunyuanVideo's [1, 1, L]) as [B, L];
    None for no mask or a mask that differs per query."""
    if mask is None or mask.ndim < 2 or mask.shape[-2] != 1 or (mask.ndim == 4 and mask.shape[1] != 1):
        return None
    return mask.reshape(mask.shape[0] if mask.ndim > 2 else 1, mask.shape[-1])


def _window_handler(radii, start_block, end_block, implementation):
    def handler(next_attention, q, k, v, heads, **kwargs):
        options = kwargs.get("transformer_options") or {}
        state = options.get(WINDOW_STATE_KEY)
        if state is None:  # outside the step range
            return next_attention(q, k, v, heads, **kwargs)
        bhld = kwargs.get("skip_reshape", False)
        q_len, k_len = (q.shape[2], k.shape[2]) if bhld else (q.shape[1], k.shape[1])
        block = state.self_attention_block(options, q_len, k_len)  # counted even when this call is left alone
        layout = state.layout(q_len) if block is not None else None
        mask = kwargs.get("mask")
        key_mask = _per_key_mask(mask)
        if (block is None or block < start_block or (end_block >= 0 and block > end_block) or layout is None
                or covers_everything(layout, radii) or (mask is not None and key_mask is None)):
            return next_attention(q, k, v, heads, **kwargs)
        if not bhld:
            q, k, v = (split_heads(t, heads) for t in (q, k, v))
        out = local_window_attention(q, k, v, layout, radii, key_mask=key_mask, implementation=implementation,
                                     backend=options.get(BACKEND_KEY) or "auto")
        return out if kwargs.get("skip_output_reshape", False) else merge_heads(out)

    return handler


class LocalWindowAttentionNode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FreeAccel_LocalWindowAttention",
            display_name="Local Window Attention",
            category="FreeAccel/motion",
            description="Video DiT self-attention restricted, in a block range and a step range, to a local window "
                        "around each video query: +-frames latent frames and a height x width token window. Text "
                        "tokens of joint attention stay visible. Fewer attention FLOPs; a window covering the whole "
                        "video leaves the model unchanged. Supports WAN, HunyuanVideo, LTX-Video and Mochi.",
            inputs=[
                io.Model.Input("model", tooltip="A video diffusion model (WAN, HunyuanVideo, LTX-Video or Mochi)."),
                io.Int.Input("frames", default=3, min=0, max=256,
                             tooltip="Each query sees keys at most this many latent frames before and after it."),
                io.Int.Input("height", default=15, min=1, max=1024,
                             tooltip="Window height in tokens (latent rows / patch size), centred on the query; "
                                     "even sizes round down to the next odd one."),
                io.Int.Input("width", default=27, min=1, max=1024,
                             tooltip="Window width in tokens (latent columns / patch size), centred on the query."),
                io.Int.Input("start_block", default=0, min=0, max=1000,
                             tooltip="First transformer block (0-based) that uses the window. HunyuanVideo numbers "
                                     "its single-stream blocks after the double-stream ones."),
                io.Int.Input("end_block", default=-1, min=-1, max=1000,
                             tooltip="Last transformer block that uses the window; -1 = the last block."),
                io.Float.Input("start_percent", default=0.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Sampling progress where the window starts. Early steps set the layout: "
                                       "raise this to keep them at full attention."),
                io.Float.Input("end_percent", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Sampling progress where the window ends."),
                io.Combo.Input("implementation", options=list(IMPLEMENTATIONS), default="auto",
                               tooltip="auto: flex-attention block masks on CUDA when flex works there, else "
                                       "gathered tiles. gathered: queries in grid tiles attend to the gathered keys "
                                       "of their window region (any device). flex: torch flex_attention."),
            ],
            outputs=[io.Model.Output(tooltip="The model with local-window self-attention.")],
        )

    @classmethod
    def validate_inputs(cls, start_block, end_block, start_percent, end_percent, **_):
        if start_percent > end_percent:
            return f"start_percent ({start_percent}) must not exceed end_percent ({end_percent})"
        if end_block != -1 and end_block < start_block:
            return f"end_block ({end_block}) must be -1 (last block) or at least start_block ({start_block})"
        return True

    @classmethod
    def execute(cls, model, frames, height, width, start_block, end_block, start_percent, end_percent,
                implementation):
        family = require_family("local_window", model.model)
        patched = model.clone()
        report_block_info(patched, family)  # the block range is counted by block_index where the model reports it
        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, WRAPPER_KEY,
                                     _grid_wrapper(start_percent, end_percent))
        install_attention_override(patched, _window_handler(window_radii(frames, height, width), start_block,
                                                            end_block, implementation))
        return io.NodeOutput(patched)


# ---------------------------------------------------------------------------------------------------------------
# MotionTransferGuider


class _QKCaptured(Exception):
    """Raised from inside the AMF block's self-attention: carries its q and k and cuts the rest of the forward."""

    def __init__(self, q, k, heads, bhld):
        super().__init__("q/k captured")
        self.q, self.k, self.heads, self.bhld = q, k, heads, bhld


def _raise_captured(original_func, q, k, *args, **kwargs):
    heads = args[1] if len(args) > 1 else kwargs["heads"]
    raise _QKCaptured(q, k, heads, kwargs.get("skip_reshape", False))


def _capture_block(previous):
    """dit block replacement for the AMF block: run the block (through any earlier replacement) with an attention
    override that raises at the block's first attention call, its self-attention, with the q/k the attention sees
    (after WAN's q/k RMSNorm and RoPE, which is also what FastVMT reads). Nothing of WAN's block math is copied."""

    def replacement(args, extra):
        options = dict(args["transformer_options"])
        options[OVERRIDE_KEY] = _raise_captured
        args = dict(args, transformer_options=options)
        return previous(args, extra) if previous is not None else extra["original_block"](args)

    return replacement


@contextlib.contextmanager
def _differentiable_weights(module):
    """Let autograd save the weights of ``module``.

    Models loaded inside ComfyUI's inference mode hold inference tensors, which autograd refuses to save for backward.
    ComfyUI's cast ops copy a weight (bias) per call when a layer has a weight (bias) function, so an identity function
    makes every layer run on fresh, saveable copies (only for the duration of the guidance forward).
    """
    patched = []
    for layer in module.modules():
        for name in ("weight", "bias"):  # layer_norm saves its bias for backward too
            tensor, functions = getattr(layer, name, None), f"{name}_function"
            if hasattr(layer, functions) and isinstance(tensor, torch.Tensor) and tensor.is_inference():
                patched.append((layer, functions, layer.__dict__.get(functions)))
                setattr(layer, functions, list(getattr(layer, functions)) + [_same])
    try:
        yield
    finally:
        for layer, functions, own in patched:
            if own is None:
                delattr(layer, functions)
            else:
                setattr(layer, functions, own)


def _same(weight):
    return weight


_rope_backward_ready = []  # [True] once comfy_kitchen's RoPE op is known to backpropagate


def _rope_backward(ctx, grad):
    # RoPE rotates each (even, odd) pair by a 2x2 matrix: the input gradient is the transposed rotation of grad
    return torch.ops.comfy_kitchen.apply_rope1(grad.contiguous(), ctx.freqs.transpose(-1, -2)), None


def _rope_setup_context(ctx, inputs, output):
    ctx.freqs = inputs[1]


def ensure_rope_backward():
    """Give comfy_kitchen's fused RoPE (which WAN uses when comfy_kitchen is installed) the backward it lacks.

    The op is forward-only ("no autograd formula was registered"), so no gradient could reach the latent through
    WAN's self-attention. Registering the formula changes no forward result. Done once, and only if a probe shows
    the op cannot backpropagate (a later comfy_kitchen with its own formula is left alone).
    """
    if _rope_backward_ready:
        return
    try:
        op = torch.ops.comfy_kitchen.apply_rope1
    except (AttributeError, RuntimeError):  # comfy_kitchen absent: ComfyUI's pure-torch RoPE is differentiable
        _rope_backward_ready.append(True)
        return
    with torch.inference_mode(False), torch.enable_grad():
        x = torch.ones(1, 1, 1, 2, requires_grad=True)
        try:
            op(x, torch.eye(2).reshape(1, 1, 1, 1, 2, 2)).sum().backward()
        except RuntimeError:
            torch.library.register_autograd("comfy_kitchen::apply_rope1", _rope_backward,
                                            setup_context=_rope_setup_context)
    _rope_backward_ready.append(True)


def check_reference(reference, latent_shape=None):
    """Raise a ValueError saying what to fix when the reference latent cannot guide a latent of ``latent_shape``
    (None: check only that it is a video latent)."""
    if reference.ndim != 5:
        raise ValueError(f"the reference must be a video latent [batch, channels, frames, height, width]; got shape "
                         f"{tuple(reference.shape)}. VAE-encode the reference video with the model's video VAE.")
    if latent_shape is None:
        return
    _, channels, frames, height, width = reference.shape
    if channels != latent_shape[1]:
        raise ValueError(f"the reference latent has {channels} channels but the model samples {latent_shape[1]}: "
                         "encode the reference with the VAE that belongs to this model.")
    if frames != latent_shape[2]:
        raise ValueError(f"the reference latent has {frames} frames but the sampled latent has {latent_shape[2]}: "
                         "give the reference video the same number of frames as the output video (or set the "
                         "output length to the reference's).")
    if (height, width) != tuple(latent_shape[3:]):
        raise ValueError(f"the reference latent is {height}x{width} but the sampled latent is "
                         f"{latent_shape[3]}x{latent_shape[4]} (latent pixels): resize the reference video to the "
                         "output resolution before encoding it.")
    if reference.shape[0] not in (1, latent_shape[0]):
        raise ValueError(f"the reference batch ({reference.shape[0]}) must be 1 or the sampled batch "
                         f"({latent_shape[0]})")


class MotionTransferGuider(comfy.samplers.CFGGuider):
    """CFG guidance plus AMF latent optimisation at the first ``guided_steps`` steps of the schedule."""

    def __init__(self, model_patcher, reference, config, guided_steps, amf_block):
        super().__init__(model_patcher)
        self.reference, self.config = reference, config
        self.guided_steps, self.amf_block = guided_steps, amf_block
        self.loss_history = []  # per guided step: the losses of its recompute iterations

    def set_conds(self, positive, negative, reference_conditioning=None):
        conds = {"positive": positive, "negative": negative}
        if reference_conditioning is not None:
            conds[REFERENCE_COND] = reference_conditioning
        self.inner_set_conds(conds)

    def inner_sample(self, noise, latent_image, device, sampler, sigmas, denoise_mask, callback, disable_pbar, seed,
                     latent_shapes=None):
        check_reference(self.reference, noise.shape)
        if denoise_mask is not None:
            raise ValueError("the motion transfer guider does not support a latent noise mask; remove the mask")
        guided = min(self.guided_steps, len(sigmas) - 1)
        self.loss_history = []
        sampler = _GuidedSampler(sampler, self, guided)
        return super().inner_sample(noise, latent_image, device, sampler, sigmas, denoise_mask, callback,
                                    disable_pbar, seed, latent_shapes=latent_shapes)

    def _capture_qk(self, x, sigma, conds, model_options):
        options = comfy.model_patcher.create_model_options_clone(model_options)
        blocks = options.setdefault("transformer_options", {}).setdefault("patches_replace", {}).setdefault("dit", {})
        key = ("double_block", self.amf_block)
        blocks[key] = _capture_block(blocks.get(key))
        timestep = sigma.to(x) * x.new_ones(x.shape[0])
        try:
            comfy.samplers.calc_cond_batch(self.inner_model, [conds], x, timestep, options)
        except _QKCaptured as captured:
            return captured
        raise RuntimeError(f"block {self.amf_block} ran no self-attention during the motion-guidance forward")

    def _video_qk(self, x, sigma, conds, model_options):
        """Head-averaged q, k [B, F, S, D] of the AMF block, and the token grid."""
        grid = _token_grid(self.inner_model.diffusion_model, x.shape)
        captured = self._capture_qk(x, sigma, conds, model_options)
        return (mt.video_qk(captured.q, captured.heads, grid, captured.bhld),
                mt.video_qk(captured.k, captured.heads, grid, captured.bhld), grid)

    def guide(self, x, sigma, extra_args, on_iteration):
        """Optimise the latent x at noise level sigma; returns the new latent (no graph attached)."""
        model_options, seed = extra_args["model_options"], extra_args.get("seed") or 0
        sampling = self.inner_model.model_sampling
        reference = self.inner_model.process_latent_in(self.reference).to(x)
        reference = reference.expand(x.shape[0], *reference.shape[1:])
        noise = torch.randn(reference.shape, generator=torch.Generator().manual_seed(seed)).to(x)
        noisy_reference = sampling.noise_scaling(sigma.to(x), noise, reference)
        ref_conds = self.conds.get(REFERENCE_COND, self.conds["negative"])
        with torch.no_grad():
            q, k, grid = self._video_qk(noisy_reference, sigma, ref_conds, model_options)
        pairs = mt.frame_pairs(grid[0], self.config)
        references = [mt.motion_flow(q[b], k[b], grid, pairs, self.config, hard=True).flows for b in range(len(q))]

        def loss_fn(z):
            q, k, _ = self._video_qk(z, sigma, self.conds["positive"], model_options)
            return sum(mt.motion_loss(references[b], mt.motion_flow(q[b], k[b], grid, pairs, self.config, hard=False),
                                      pairs, self.config, grid[0]) for b in range(len(q)))

        ensure_rope_backward()
        with _differentiable_weights(self.inner_model.diffusion_model):
            z, losses = mt.optimize_latent(x, loss_fn, self.config, on_iteration)
        self.loss_history.append(losses)
        log.info("motion guidance at sigma %.4f: loss %.5g -> %.5g", float(sigma), losses[0], losses[-1])
        return z


class _GuidedSampler(comfy.samplers.Sampler):
    """Runs the user's sampler one step at a time over the guided steps, optimising the latent before each, then
    the remaining steps in one call.

    A segment starts from the optimised latent x by passing noise = x / a with an all-zero latent image, where a is
    the model's noise scaling factor for that sigma; and the output of a segment (in the sampler's
    inverse-noise-scaled form) is brought back with noise_scaling(sigma_end, 0, out). Both use only the model
    sampling's own functions, so flow (WAN) and eps models work alike. Multistep samplers restart their history at
    each guided step.
    """

    def __init__(self, sampler, guider, guided):
        self.sampler, self.guider, self.guided = sampler, guider, guided

    def max_denoise(self, model_wrap, sigmas):
        return self.sampler.max_denoise(model_wrap, sigmas)

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        if self.guided == 0:
            return self.sampler.sample(model_wrap, sigmas, extra_args, callback, noise, latent_image, denoise_mask,
                                       disable_pbar)
        sampling = model_wrap.inner_model.model_sampling
        x = sampling.noise_scaling(sigmas[0], noise, latent_image, self.sampler.max_denoise(model_wrap, sigmas))
        steps = len(sigmas) - 1
        bounds = [(s, s + 1) for s in range(self.guided)] + ([(self.guided, steps)] if self.guided < steps else [])
        progress = comfy.utils.ProgressBar(self.guided * self.guider.config.iterations)
        for start, stop in bounds:
            if start < self.guided:
                x = self.guider.guide(x, sigmas[start], extra_args, lambda _: progress.update(1))
            segment = sigmas[start:stop + 1]
            scale = sampling.noise_scaling(segment[0], x.new_ones(1), x.new_zeros(1),
                                           self.sampler.max_denoise(model_wrap, segment))
            shifted = None if callback is None else _shifted_callback(callback, start, steps)
            out = self.sampler.sample(model_wrap, segment, extra_args, shifted, x / scale, torch.zeros_like(x),
                                      None, disable_pbar)
            if stop == steps:
                return out
            x = sampling.noise_scaling(segment[-1], torch.zeros_like(out), out)
        return x


def _shifted_callback(callback, offset, total):
    return lambda step, denoised, x, _total: callback(step + offset, denoised, x, total)


class MotionTransferGuiderNode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FreeAccel_MotionTransferGuider",
            display_name="Motion Transfer Guider (FastVMT)",
            category="FreeAccel/motion",
            description="Training-free video motion transfer for WAN (for SamplerCustomAdvanced): at the first "
                        "guided steps the latent is optimised so that its attention motion flow matches the "
                        "reference video's (DiTFlow), with FastVMT's local-window AMF and gradient reuse. Start from "
                        "the reference latent with denoise < 1 (SDEdit), e.g. BasicScheduler denoise 0.75.",
            inputs=[
                io.Model.Input("model", tooltip="A WAN 2.1 / 2.2 video model."),
                io.Conditioning.Input("positive", tooltip="The prompt of the video to generate."),
                io.Conditioning.Input("negative", tooltip="The negative prompt (also the reference pass's prompt "
                                                          "unless reference_conditioning is given)."),
                io.Float.Input("cfg", default=5.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Classifier-free guidance scale of the denoising steps."),
                io.Latent.Input("reference", tooltip="The VAE-encoded reference video whose motion is transferred; "
                                                     "same frames, size and channels as the sampled latent."),
                io.Combo.Input("mode", options=list(mt.MODES), default="fastvmt",
                               tooltip="fastvmt: frame pairs within temporal_span, local-window AMF and gradient "
                                       "reuse. ditflow: the unaccelerated baseline (all frame pairs, full "
                                       "attention, a real backward every iteration)."),
                io.Int.Input("guided_steps", default=10, min=0, max=1000,
                             tooltip="How many of the schedule's first steps optimise the latent (0 = plain CFG)."),
                io.Int.Input("iterations", default=10, min=1, max=100,
                             tooltip="AdamW iterations per guided step."),
                io.Float.Input("lr_start", default=0.003, min=0.0, max=1.0, step=0.0001, round=0.00001,
                               tooltip="Learning rate of the first iteration of each guided step."),
                io.Float.Input("lr_end", default=0.002, min=0.0, max=1.0, step=0.0001, round=0.00001,
                               tooltip="Learning rate the schedule falls towards linearly over the iterations."),
                io.Int.Input("amf_block", default=FASTVMT_AMF_BLOCK, min=0, max=200,
                             tooltip="Transformer block whose self-attention Q/K give the motion flow (FastVMT: "
                                     "14); clamped to the model's last block. Later blocks are not run."),
                io.Int.Input("temporal_span", default=4, min=1, max=64,
                             tooltip="fastvmt: each frame is compared with itself and the next span-1 frames."),
                io.Int.Input("tile_height", default=3, min=1, max=64,
                             tooltip="fastvmt: query tile height in tokens; a tile shares one search window."),
                io.Int.Input("tile_width", default=4, min=1, max=64, tooltip="fastvmt: query tile width in tokens."),
                io.Int.Input("window_height", default=21, min=1, max=512,
                             tooltip="fastvmt: height in tokens of the search window around a tile's match."),
                io.Int.Input("window_width", default=21, min=1, max=512,
                             tooltip="fastvmt: width in tokens of the search window around a tile's match."),
                io.Int.Input("recompute_every", default=3, min=1, max=100,
                             tooltip="fastvmt: a real forward/backward every this many iterations (0, 3, 6, 9 of "
                                     "10); the others reuse the last gradient."),
                io.Conditioning.Input("reference_conditioning", optional=True,
                                      tooltip="Prompt of the reference pass (DiTFlow/FastVMT use an empty prompt). "
                                              "Default: the negative."),
            ],
            outputs=[io.Guider.Output(tooltip="A guider for SamplerCustomAdvanced.")],
        )

    @classmethod
    def validate_inputs(cls, lr_start=0.003, lr_end=0.002, **_):
        if lr_start <= 0 or lr_end <= 0:
            return f"learning rates must be positive (lr_start {lr_start}, lr_end {lr_end})"
        return True

    @classmethod
    def execute(cls, model, positive, negative, cfg, reference, mode, guided_steps, iterations, lr_start, lr_end,
                amf_block, temporal_span, tile_height, tile_width, window_height, window_width, recompute_every,
                reference_conditioning=None):
        samples = reference["samples"]
        if guided_steps == 0:  # exactly core CFGGuider
            guider = comfy.samplers.CFGGuider(model)
            guider.set_conds(positive, negative)
            guider.set_cfg(cfg)
            return io.NodeOutput(guider)
        require_family("motion_transfer", model.model)
        check_reference(samples)
        config = mt.MotionTransferConfig(mode=mode, iterations=iterations, lr_start=lr_start, lr_end=lr_end,
                                         recompute_every=recompute_every, temporal_span=temporal_span,
                                         tile=(tile_height, tile_width), window=(window_height, window_width))
        depth = len(model.get_model_object("diffusion_model").blocks)
        guider = MotionTransferGuider(model, samples, config, guided_steps, min(amf_block, depth - 1))
        guider.set_conds(positive, negative, reference_conditioning)
        guider.set_cfg(cfg)
        return io.NodeOutput(guider)


NODES = [MotionTransferGuiderNode, LocalWindowAttentionNode]
