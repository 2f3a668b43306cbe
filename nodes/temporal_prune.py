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

from ..accel_core.families import require_family
from ..accel_core.temporal_prune import (
    CALIBRATE, MODES, WAIT, TemporalPruneRun, TemporalPruneSettings, cross_frame_mass, sample_queries)
from ..kernels.attention import split_heads
from ..kernels.frame_attention import frame_attention
from ..kernels.scoring import frame_pair_mass
from .integration.attention import install_attention_override
from .integration.compat import report_block_info
from .integration.run_state import install_run_hook, run_state
from .integration.steps import SigmaWindow, call_sigma
from .integration.families import token_layout
from .integration.token_layout import ModelCall

log = logging.getLogger(__name__)

KEY = "freeaccel_temporal_prune"  # wrapper and run-state key
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
                log.warning("TemporalAttnPrune: the conditioning has as many tokens as the video, so a cross-attention "
                            "cannot be told from the self-attention; attention is left dense for such calls")
            return None
        if layout.frames < 2:
            raise ValueError(f"TemporalAttnPrune needs a video of at least 2 latent frames; this one has "
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


# The SVD patches get no transformer_options reliably, so they read the run hook's state of the run in progress.
def _svd_attn1_forward(hook, unit, module, original):
    def forward(x, context=None, value=None, mask=None, transformer_options={}):
        state = hook.current
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


def _svd_block_forward(hook, unit, block, original):
    def forward(x, context=None, transformer_options={}):
        state = hook.current
        if state is not None and state.call is not None and state.run.is_pruned(unit):
            return x  # the whole temporal block bypassed through its residual; the AlphaBlender still mixes
        return original(block, x, context=context, transformer_options=transformer_options)
    return forward


def _svd_time_stack_attention(diffusion_model):
    """Names of the temporal self-attention modules: ``attn1`` of every SpatialVideoTransformer.time_stack block."""
    return [name for name, module in diffusion_model.named_modules()
            if ".time_stack." in name and name.endswith(".attn1") and hasattr(module, "to_q")]


def _patch_svd(patched, diffusion_model, hook, mode):
    names = _svd_time_stack_attention(diffusion_model)
    if not names:
        raise ValueError("TemporalAttnPrune: this SVD model has no temporal attention (time_stack) modules")
    for name in names:
        attn = diffusion_model.get_submodule(name)
        patched.add_object_patch(f"diffusion_model.{name}.forward",
                                 _svd_attn1_forward(hook, name, attn, type(attn).forward))
        if mode == "skip":
            block_name = name[:-len(".attn1")]
            block = diffusion_model.get_submodule(block_name)
            patched.add_object_patch(f"diffusion_model.{block_name}.forward",
                                     _svd_block_forward(hook, name, block, type(block).forward))


def apply_temporal_prune(model, settings):
    """A clone of ModelPatcher ``model`` with TemporalAttnPrune installed (raises for unsupported models or
    settings); ``run_state.last_run(patched, KEY)`` is the summary of its last sampling run."""
    error = settings.error()
    if error is not None:
        raise ValueError(f"TemporalAttnPrune: {error}")
    family = require_family("temporal_prune", model.model)
    patched = model.clone()
    hook = install_run_hook(patched, KEY, functools.partial(_RunState, settings, family))
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, KEY, _apply_model)
    if family == "svd":
        _patch_svd(patched, model.model.diffusion_model, hook, settings.mode)
    else:
        report_block_info(patched, family)  # units are keyed on the block
        install_attention_override(patched, _attention)
    return patched


_DEFAULTS = TemporalPruneSettings()


class TemporalAttnPruneNode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FreeAccel_TemporalAttnPrune",
            display_name="TemporalAttnPrune (F3)",
            category="FreeAccel/pruning",
            is_experimental=True,  # until measured on real weights
            description="F3-style pruning of temporal attention: during a few calibration steps it measures how much "
                        "attention each temporal unit sends to OTHER frames, then prunes the lowest-ranked fraction "
                        "for the rest of the run. SVD: units are the time_stack attention modules. WAN, "
                        "HunyuanVideo, LTX-Video, Mochi: units are heads of the joint 3-D self-attention, and a "
                        "pruned head attends within its own latent frame only.",
            inputs=[
                io.Model.Input("model", tooltip="A video model: SVD, WAN 2.1/2.2, HunyuanVideo, LTX-Video or Mochi."),
                io.Float.Input("ratio", default=_DEFAULTS.ratio, min=0.0, max=1.0, step=0.05,
                               tooltip="Fraction of temporal attention units to prune (lowest cross-frame attention "
                                       "first). 0 only measures and logs, leaving the output unchanged."),
                io.Combo.Input("mode", options=list(MODES), default=_DEFAULTS.mode,
                               tooltip="identity: a pruned unit lets each frame attend only to itself (SVD: just the "
                                       "value and output projections; DiTs: attention within each latent frame, "
                                       "text still visible). skip: SVD bypasses the whole temporal block through its "
                                       "residual (the spatial/temporal mix still applies); on DiTs the pruned head's "
                                       "output is dropped."),
                io.Float.Input("start_percent", default=_DEFAULTS.start_percent, min=0.0, max=1.0, step=0.01,
                               tooltip="Sampling progress at which calibration starts; steps before it run dense."),
                io.Int.Input("calibration_steps", default=_DEFAULTS.calibration_steps, min=1, max=100,
                             tooltip="Computed steps (from start_percent) used to measure the units before the pruned "
                                     "set is frozen for the rest of the run. Recomputed on every run."),
            ],
            outputs=[io.Model.Output(tooltip="The model with temporal attention pruning.")],
        )

    @classmethod
    def validate_inputs(cls, ratio=_DEFAULTS.ratio, mode=_DEFAULTS.mode, start_percent=_DEFAULTS.start_percent,
                        calibration_steps=_DEFAULTS.calibration_steps):
        # An input fed by a link is unknown here and keeps its default (execute checks again).
        error = TemporalPruneSettings(ratio=ratio, mode=mode, start_percent=start_percent,
                                      calibration_steps=calibration_steps).error()
        return True if error is None else error

    @classmethod
    def execute(cls, model, **inputs):
        return io.NodeOutput(apply_temporal_prune(model, TemporalPruneSettings(**inputs)))


NODES = [TemporalAttnPruneNode]
