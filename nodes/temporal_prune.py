"""FreeAccel_TemporalAttnPrune: ComfyUI glue for F3-style pruning of the temporal attention units with the least
cross-frame mass (the algorithm lives in ``accel_core.temporal_prune``).

Hooks (per-run state from ``integration.run_state``, so the patched model holds none between runs):
- OUTER_SAMPLE: a fresh ``_RunState`` per sampler run; its summary is logged and kept as ``last_run`` in ``finally``.
- APPLY_MODEL wrapper: the step phase from sigma and this call's token layout (``integration.token_layout``).
- SVD: object patches on the ``forward`` attribute of every ``time_stack`` block's ``attn1`` (and of the block itself
  in skip mode). Patching the bound ``forward`` rather than swapping modules keeps the module tree, and so
  state-dict / LoRA / lowvram keys, untouched, and the two patch paths never nest.
- Full-3D-attention DiTs: an attention handler (``integration.attention``, chained with other FreeAccel nodes) on the
  joint self-attention, recognised by query length == key length == this call's video (+ text) token count. Units
  are its heads.
"""
import functools
import logging
import math

import torch
from comfy_api.v0_0_2 import io
import comfy.patcher_extension

from ..accel_core.settings import from_inputs
from ..accel_core.temporal_prune import (
    CALIBRATE, WAIT, TemporalPruneRun, TemporalPruneSettings, cross_frame_mass, sample_queries)
from ..kernels.attention import split_heads
from ..kernels.frame_attention import frame_attention
from ..kernels.scoring import frame_pair_mass
from .integration.compat import report_block_info
from .integration.install import apply, technique
from .integration.run_state import run_state
from .integration.schema import settings_inputs, settings_validator
from .integration.steps import SigmaWindow, call_sigma
from .integration.families import token_layout
from .integration.token_layout import ModelCall

log = logging.getLogger(__name__)

KEY = "freeaccel_temporal_prune"  # owner of everything installed, and the run-state key
NAME = "TemporalAttnPrune (F3)"  # the node's display name, the prefix of its messages
QUERY_ROWS_PER_FRAME = 16  # sampled query tokens per latent frame when scoring a DiT head
SVD_SCORED_POSITIONS = 1024  # spatial positions per video whose temporal attention is scored (evenly spaced)


class _RunState:
    """One sampling run: the host-agnostic TemporalPruneRun plus the model call in progress."""

    def __init__(self, settings, family, model_sampling, _sample_sigmas):  # RunHook's start(sampling, sigmas)
        self.settings, self.family = settings, family
        start_sigma = SigmaWindow(model_sampling, settings.start_percent).start_sigma
        self.run = TemporalPruneRun(settings.ratio, start_sigma, settings.calibration_steps)
        self.call = None  # ModelCall while the model runs
        self.warned_ambiguous = False

    def finish(self):
        summary = self.run.summary()
        log.info("TemporalAttnPrune (%s, %s): pruned %d of %d temporal attention units (ratio %.2f) after %d "
                 "calibration steps", self.family, self.settings.mode, len(summary["pruned"]), summary["units"],
                 self.settings.ratio, summary["calibrated_steps"])
        return summary

    def apply_model(self, executor, args, kwargs):
        x, timestep, c_crossattn = args[0], args[1], args[3]
        layout = self._layout(executor.class_obj, x, c_crossattn, kwargs)
        self.run.begin_forward(call_sigma(timestep))
        self.call = ModelCall(layout)
        try:
            return executor(*args, **kwargs)
        finally:
            self.call = None

    def _layout(self, base_model, x, c_crossattn, conds):
        layout, _ = token_layout(self.family, base_model, x, c_crossattn, conds)
        if layout is None:
            # a cross-attention would look exactly like the self-attention: leave this call dense
            if not self.warned_ambiguous:
                self.warned_ambiguous = True
                log.warning("%s: the conditioning has as many tokens as the video, so a cross-attention cannot be "
                            "told from the self-attention; attention is left dense for such calls", NAME)
            return None
        if layout.frames < 2:
            raise ValueError(f"{NAME} needs a video of at least 2 latent frames; this one has "
                             f"{layout.frames}. Remove the node for single images or one-frame videos.")
        return layout

    # --- SVD: temporal attention modules ------------------------------------------------------------------
    def score_module(self, unit, module, x, context):
        """Record the cross-frame mass of one time_stack attn1 call (x: [(b s), t, c])."""
        batch = self.call.layout.video_batch
        positions = x.shape[0] // batch
        step = max(1, math.ceil(positions / SVD_SCORED_POSITIONS))
        rows = (torch.arange(batch).view(-1, 1) * positions + torch.arange(0, positions, step)).flatten()
        rows = rows.to(x.device)
        source = x.index_select(0, rows)
        q = split_heads(module.to_q(source), module.heads)
        k = split_heads(module.to_k(source if context is None else context.index_select(0, rows)), module.heads)
        frames = torch.arange(x.shape[1])
        mass = frame_pair_mass(q, k, frames, frames, x.shape[1])
        self.run.scores.add([unit], cross_frame_mass(mass).reshape(-1, 1))

    # --- DiTs: heads of the joint self-attention ------------------------------------------------------------
    def attention(self, call):
        run, model_call = self.run, self.call
        if model_call is None or model_call.layout is None or run.phase == WAIT:
            return call.next()
        ids = model_call.layout.frame_ids_for(call.query_length) if call.query_length == call.key_length else None
        if ids is None:
            return call.next()
        site = model_call.site(call.options)
        heads = call.q.shape[1]
        if run.phase == CALIBRATE:
            with torch.no_grad():
                mass = frame_pair_mass(call.q, call.k, ids, ids, model_call.layout.frames,
                                       query_index=sample_queries(ids, QUERY_ROWS_PER_FRAME))
                run.scores.add([site + (h,) for h in range(heads)], cross_frame_mass(mass).transpose(1, 2))
            return call.next()
        pruned = [h for h in range(heads) if run.is_pruned(site + (h,))]
        if not pruned:
            return call.next()
        return self._pruned_heads(call, pruned, ids)

    def _pruned_heads(self, call, pruned, ids):
        """[B, H, L, D] attention: full for the kept heads (through the chain), within-frame or zero for the pruned."""
        q, k, v = call.q, call.k, call.v
        kept = [h for h in range(q.shape[1]) if h not in pruned]
        out = q.new_empty(q.shape)
        if kept:
            out[:, kept] = call.next(q[:, kept], k[:, kept], v[:, kept], mask=_select_heads(call.mask, kept))
        if self.settings.mode == "identity":
            out[:, pruned] = frame_attention(q[:, pruned], k[:, pruned], v[:, pruned], ids,
                                             mask=_select_heads(call.mask, pruned), backend=call.backend)
        else:
            out[:, pruned] = 0  # the head is removed: the block's residual stream carries on without it
        return out


def _select_heads(mask, index):
    """A 4-D attention mask restricted to the heads ``index`` (a mask without a head axis broadcasts as it is)."""
    if mask is None or mask.shape[1] == 1:
        return mask
    return mask[:, index]


def _apply_model(executor, *args, **kwargs):
    state = run_state(args[5], KEY)  # apply_model(x, t, c_concat, c_crossattn, control, transformer_options, ...)
    if state is None:  # a model call outside a sampler run (nothing to calibrate against)
        return executor(*args, **kwargs)
    return state.apply_model(executor, args, kwargs)


def _attention(call):
    state = run_state(call.options, KEY)
    return call.next() if state is None else state.attention(call)


# The SVD patches replace the modules' forward; the run's state comes with the transformer_options ComfyUI passes
def _svd_attn1_forward(unit, module, original):
    def forward(x, context=None, value=None, mask=None, transformer_options={}):
        state = run_state(transformer_options, KEY)
        if state is not None and state.call is not None:
            if state.settings.mode == "identity" and state.run.is_pruned(unit):
                # each frame attends only to itself: softmax over one key is 1, so the output is V
                source = value if value is not None else (x if context is None else context)
                return module.to_out(module.to_v(source))
            if state.run.calibrating:
                with torch.no_grad():
                    state.score_module(unit, module, x, context)
        return original(module, x, context=context, value=value, mask=mask, transformer_options=transformer_options)
    return forward


def _svd_block_forward(unit, block, original):
    def forward(x, context=None, transformer_options={}):
        state = run_state(transformer_options, KEY)
        if state is not None and state.call is not None and state.run.is_pruned(unit):
            return x  # the whole temporal block bypassed through its residual; the AlphaBlender still mixes
        return original(block, x, context=context, transformer_options=transformer_options)
    return forward


def _svd_time_stack_attention(diffusion_model):
    """Names of the temporal self-attention modules: ``attn1`` of every SpatialVideoTransformer.time_stack block."""
    return [name for name, module in diffusion_model.named_modules()
            if ".time_stack." in name and name.endswith(".attn1") and hasattr(module, "to_q")]


def _patch_svd(installer, diffusion_model, mode):
    names = _svd_time_stack_attention(diffusion_model)
    if not names:
        raise ValueError("this SVD model has no temporal attention (time_stack) modules")
    for name in names:
        attn = diffusion_model.get_submodule(name)
        installer.object_patch(f"diffusion_model.{name}.forward", _svd_attn1_forward(name, attn, type(attn).forward))
        if mode == "skip":
            block_name = name[:-len(".attn1")]
            block = diffusion_model.get_submodule(block_name)
            installer.object_patch(f"diffusion_model.{block_name}.forward",
                                   _svd_block_forward(name, block, type(block).forward))


def _install(installer, settings, family):
    installer.run_state(functools.partial(_RunState, settings, family))
    installer.wrapper(comfy.patcher_extension.WrappersMP.APPLY_MODEL, _apply_model)
    if family == "svd":
        _patch_svd(installer, installer.patcher.model.diffusion_model, settings.mode)
    else:
        report_block_info(installer.patcher, family)  # units are keyed on the block
        installer.attention(_attention)


TECHNIQUE = technique(KEY, NAME, TemporalPruneSettings, _install, support="temporal_prune")


def apply_temporal_prune(model, settings: TemporalPruneSettings):
    """A clone of ModelPatcher ``model`` with TemporalAttnPrune installed in place of any earlier one (raises for
    unsupported models or settings); ``run_state.last_run(patched, KEY)`` is the summary of its last sampling run."""
    return apply(TECHNIQUE, model, settings)


class TemporalAttnPruneNode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FreeAccel_TemporalAttnPrune",
            display_name=NAME,
            category="FreeAccel/pruning",
            is_experimental=True,  # until measured on real weights
            description="F3-style pruning of temporal attention: during a few calibration steps it measures how much "
                        "attention each temporal unit sends to OTHER frames, then prunes the lowest-ranked fraction "
                        "for the rest of the run. SVD: units are the time_stack attention modules. WAN, "
                        "HunyuanVideo, LTX-Video, Mochi: units are heads of the joint 3-D self-attention, and a "
                        "pruned head attends within its own latent frame only.",
            inputs=[
                io.Model.Input("model", tooltip="A video model: SVD, WAN 2.1/2.2, HunyuanVideo, LTX-Video or Mochi."),
                *settings_inputs(TemporalPruneSettings),
            ],
            outputs=[io.Model.Output(tooltip="The model with temporal attention pruning.")],
        )

    validate_inputs = settings_validator(TemporalPruneSettings, NAME)

    @classmethod
    def execute(cls, model, **inputs):
        return io.NodeOutput(apply_temporal_prune(model, from_inputs(TemporalPruneSettings, inputs)))


NODES = [TemporalAttnPruneNode]
