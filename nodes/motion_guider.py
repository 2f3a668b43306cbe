"""FreeAccel_MotionTransferGuider: ComfyUI glue for motion transfer (the guidance itself is
``accel_core.motion_transfer``).

A CFGGuider that, at the first ``guided_steps`` steps, optimises the latent so that its attention motion flow
matches the reference video's, then lets the chosen sampler step from the optimised latent. The Q/K of the AMF block
are captured with the model's own forward: a chained ``patches_replace["dit"]`` entry on that block marks the
attention calls inside it during a capture forward, and an attention handler (``integration.attention``) raises with
the first one's q and k, which also cuts the rest of the forward.
"""
import contextlib
import logging

import torch
from comfy_api.v0_0_2 import io
import comfy.model_patcher
import comfy.samplers
import comfy.utils

from ..accel_core import motion_transfer as mt
from ..accel_core.families import family_of
from ..accel_core.motion_transfer import MotionTransferSettings
from ..accel_core.settings import fields, from_inputs
from .integration.families import double_blocks, token_layout
from .integration.install import apply, technique
from .integration.rope_autograd import rope_backward
from .integration.schema import settings_inputs, settings_validator

log = logging.getLogger(__name__)

KEY = "freeaccel_motion_transfer"  # owner of everything installed; in a forward's transformer_options: capture q/k
NAME = "Motion Transfer Guider (FastVMT)"  # the node's display name, the prefix of its messages
_IN_AMF_BLOCK = "freeaccel_motion_transfer_in_amf_block"  # transformer_options of the AMF block in a capture forward
REFERENCE_COND = "freeaccel_motion_reference"


class _QKCaptured(Exception):
    """Raised from inside the AMF block's self-attention: carries its q and k [B, H, L, D] and cuts the rest of the
    forward."""

    def __init__(self, q, k):
        super().__init__("q/k captured")
        self.q, self.k = q, k


def _amf_block(args, run_block):
    """In a capture forward, run the AMF block (through any earlier replacement) with its attention calls marked."""
    options = args["transformer_options"]
    if options.get(KEY):
        args = dict(args, transformer_options=dict(options, **{_IN_AMF_BLOCK: True}))
    return run_block(args)


def _capture_attention(call):
    """The AMF block's first attention call is its self-attention; its q/k are what the attention sees (after WAN's
    q/k RMSNorm and RoPE, which is also what FastVMT reads). Nothing of WAN's block math is copied."""
    if call.options.get(_IN_AMF_BLOCK):
        raise _QKCaptured(call.q, call.k)
    return call.next()


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
    """CFG guidance plus AMF latent optimisation at the first ``settings.guided_steps`` steps of the schedule.

    ``model_patcher`` carries the capture hooks on block ``amf_block`` (see ``motion_transfer_guider``).
    """

    def __init__(self, model_patcher, family, reference, settings, amf_block):
        super().__init__(model_patcher)
        self.family, self.reference, self.settings, self.amf_block = family, reference, settings, amf_block
        self.loss_history = []  # per guided step: the losses of its recompute iterations

    def set_conds(self, positive, negative, reference_conditioning=None):
        conds = {"positive": positive, "negative": negative}
        if reference_conditioning is not None:
            conds[REFERENCE_COND] = reference_conditioning
        self.inner_set_conds(conds)

    def inner_sample(self, noise, latent_image, device, sampler, sigmas, denoise_mask, callback, disable_pbar, seed,
                     latent_shapes=None):
        try:
            check_reference(self.reference, noise.shape)
        except ValueError as err:
            raise ValueError(f"{NAME}: {err}") from None
        if denoise_mask is not None:
            raise ValueError(f"{NAME}: a latent noise mask is not supported; remove the mask")
        guided = min(self.settings.guided_steps, len(sigmas) - 1)
        self.loss_history = []
        sampler = _GuidedSampler(sampler, self, guided)
        return super().inner_sample(noise, latent_image, device, sampler, sigmas, denoise_mask, callback,
                                    disable_pbar, seed, latent_shapes=latent_shapes)

    def _capture_qk(self, x, sigma, conds, model_options):
        options = comfy.model_patcher.create_model_options_clone(model_options)
        options.setdefault("transformer_options", {})[KEY] = True
        timestep = sigma.to(x) * x.new_ones(x.shape[0])
        try:
            comfy.samplers.calc_cond_batch(self.inner_model, [conds], x, timestep, options)
        except _QKCaptured as captured:
            return captured
        raise RuntimeError(f"block {self.amf_block} ran no self-attention during the motion-guidance forward")

    def _video_qk(self, x, sigma, conds, model_options):
        """Head-averaged q, k [B, F, S, D] of the AMF block, and the video token grid of ``x``."""
        layout, _ = token_layout(self.family, self.inner_model, x, None, {})  # only the grid of x is read
        grid = (layout.frames, layout.height, layout.width)
        captured = self._capture_qk(x, sigma, conds, model_options)
        return mt.video_qk(captured.q, grid), mt.video_qk(captured.k, grid), grid

    def guide(self, x, sigma, extra_args, on_iteration):
        """Optimise the latent x at noise level sigma; returns the new latent (no graph attached)."""
        model_options, seed = extra_args["model_options"], extra_args.get("seed") or 0
        sampling = self.inner_model.model_sampling
        reference = self.inner_model.process_latent_in(self.reference).to(x)
        reference = reference.expand(x.shape[0], *reference.shape[1:])
        noise = torch.randn(reference.shape, generator=torch.Generator().manual_seed(seed)).to(x)
        noisy_reference = sampling.noise_scaling(sigma.to(x), noise, reference)
        ref_conds = self.conds.get(REFERENCE_COND, self.conds["negative"])
        settings = self.settings
        with torch.no_grad():
            q, k, grid = self._video_qk(noisy_reference, sigma, ref_conds, model_options)
        pairs = mt.frame_pairs(grid[0], settings)
        references = [mt.motion_flow(q[b], k[b], grid, pairs, settings, hard=True).flows for b in range(len(q))]

        def loss_fn(z):
            q, k, _ = self._video_qk(z, sigma, self.conds["positive"], model_options)
            return sum(mt.motion_loss(references[b], mt.motion_flow(q[b], k[b], grid, pairs, settings, hard=False),
                                      pairs, settings, grid[0]) for b in range(len(q)))

        with rope_backward(), _differentiable_weights(self.inner_model.diffusion_model):
            z, losses = mt.optimize_latent(x, loss_fn, settings, on_iteration)
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
        progress = comfy.utils.ProgressBar(self.guided * self.guider.settings.iterations)
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


def _amf_block_index(family, patcher, settings):
    """The AMF block: settings.amf_block clamped to the model's last block."""
    return min(settings.amf_block, len(double_blocks(family, patcher.get_model_object("diffusion_model"))) - 1)


def _install(installer, settings, family):
    installer.block("double_block", _amf_block_index(family, installer.patcher, settings), _amf_block)
    installer.attention(_capture_attention)


TECHNIQUE = technique(KEY, NAME, MotionTransferSettings, _install, support="motion_transfer")


def motion_transfer_guider(model, positive, negative, reference, settings: MotionTransferSettings,
                           reference_conditioning=None):
    """A GUIDER for ModelPatcher ``model``: core CFGGuider when ``settings.guided_steps`` is 0, else a
    MotionTransferGuider on a patched clone. ``reference``: the LATENT (dict) of the reference video. Raises for
    unsupported models, settings or references."""
    if settings.guided_steps == 0:  # exactly core CFGGuider
        error = settings.error()
        if error is not None:
            raise ValueError(f"{NAME}: {error}")
        guider = comfy.samplers.CFGGuider(model)
        guider.set_conds(positive, negative)
    else:
        patched = apply(TECHNIQUE, model, settings)
        samples = reference["samples"]
        try:
            check_reference(samples)
        except ValueError as err:
            raise ValueError(f"{NAME}: {err}") from None
        family = family_of(model.model)
        guider = MotionTransferGuider(patched, family, samples, settings, _amf_block_index(family, model, settings))
        guider.set_conds(positive, negative, reference_conditioning)
    guider.set_cfg(settings.cfg)
    return guider


# the node shows cfg before the reference input and the other settings after it (saved workflows keep that order)
_AFTER_REFERENCE = tuple(name for name, *_ in fields(MotionTransferSettings) if name != "cfg")


class MotionTransferGuiderNode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FreeAccel_MotionTransferGuider",
            display_name=NAME,
            category="FreeAccel/motion",
            is_experimental=True,  # until measured on real weights
            description="Training-free video motion transfer for WAN (for SamplerCustomAdvanced): at the first "
                        "guided steps the latent is optimised so that its attention motion flow matches the "
                        "reference video's (DiTFlow), with FastVMT's local-window AMF and gradient reuse. Start from "
                        "the reference latent with denoise < 1 (SDEdit), e.g. BasicScheduler denoise 0.75.",
            inputs=[
                io.Model.Input("model", tooltip="A WAN 2.1 / 2.2 video model."),
                io.Conditioning.Input("positive", tooltip="The prompt of the video to generate."),
                io.Conditioning.Input("negative", tooltip="The negative prompt (also the reference pass's prompt "
                                                          "unless reference_conditioning is given)."),
                *settings_inputs(MotionTransferSettings, ("cfg",)),
                io.Latent.Input("reference", tooltip="The VAE-encoded reference video whose motion is transferred; "
                                                     "same frames, size and channels as the sampled latent."),
                *settings_inputs(MotionTransferSettings, _AFTER_REFERENCE),
                io.Conditioning.Input("reference_conditioning", optional=True,
                                      tooltip="Prompt of the reference pass (DiTFlow/FastVMT use an empty prompt). "
                                              "Default: the negative."),
            ],
            outputs=[io.Guider.Output(tooltip="A guider for SamplerCustomAdvanced.")],
        )

    validate_inputs = settings_validator(MotionTransferSettings, NAME)

    @classmethod
    def execute(cls, model, positive, negative, reference, reference_conditioning=None, **inputs):
        return io.NodeOutput(motion_transfer_guider(model, positive, negative, reference,
                                                    from_inputs(MotionTransferSettings, inputs),
                                                    reference_conditioning=reference_conditioning))


NODES = [MotionTransferGuiderNode]
