"""FreeAccel_TemporalAttnPrune: F3-style pruning of the temporal attention units with the least cross-frame mass.

Hooks (one controller per patched model, state recreated for every sampling run):
- OUTER_SAMPLE wrapper: a fresh ``TemporalPruneRun`` per run, summary logged and state dropped in ``finally``.
- APPLY_MODEL wrapper: the step phase from sigma and this call's token -> frame layout, read from the latent shape,
  the conditioning and the diffusion model's own patch size (Mochi calls no DIFFUSION_MODEL wrapper, so this level
  serves every family alike).
- SVD: object patches on the ``forward`` attribute of every ``time_stack`` block's ``attn1`` (and of the block itself
  in skip mode). Patching the bound ``forward`` rather than swapping modules keeps the module tree, and so
  state-dict / LoRA / lowvram keys, untouched, and the two patch paths never nest.
- Full-3D-attention DiTs: an attention override (chained with other FreeAccel nodes) on the joint self-attention,
  recognised by query length == key length == this call's video (+ text) token count. Units are its heads.
"""
import logging
import math

import torch
from comfy_api.v0_0_2 import io
import comfy.patcher_extension

from ..accel_core.families import require_family
from ..accel_core.temporal_prune import (
    CALIBRATE, WAIT, TemporalPruneRun, cross_frame_mass, frame_ids, sample_queries)
from ..kernels.attention import merge_heads, split_heads
from ..kernels.frame_attention import frame_attention
from ..kernels.scoring import frame_pair_mass
from .attention_override import BACKEND_KEY, install_attention_override
from .integration.compat import report_block_info

log = logging.getLogger(__name__)

WRAPPER_KEY = "freeaccel_temporal_prune"
MODES = ("identity", "skip")
QUERY_ROWS_PER_FRAME = 16  # sampled query tokens per latent frame when scoring a DiT head
SVD_SCORED_POSITIONS = 1024  # spatial positions per video whose temporal attention is scored (evenly spaced)


class _Layout:
    """Where the video tokens of one model call sit in a joint self-attention sequence.

    [prefix (reference latent) | frames x tokens_per_frame | text]. ``text`` is the exact text length, or with
    ``text_exact`` False a lower bound (HunyuanVideo adds byT5 / vision tokens). ``video_ids`` overrides the frame
    ids of the video part when tokens were dropped (LTXV keyframe conditioning).
    """

    def __init__(self, frames, tokens_per_frame, prefix=0, text=0, text_exact=True, video_ids=None, video_batch=1):
        self.frames, self.tokens_per_frame, self.prefix = frames, tokens_per_frame, prefix
        self.text, self.text_exact, self.video_ids, self.video_batch = text, text_exact, video_ids, video_batch
        self._cache = {}

    @property
    def video_tokens(self):
        return self.video_ids.numel() if self.video_ids is not None else self.frames * self.tokens_per_frame

    def frame_ids_for(self, length):
        """Frame id per token for a self-attention of ``length`` tokens, or None if it is not the joint one."""
        minimum = self.prefix + self.video_tokens + self.text
        if length < minimum or (self.text_exact and length != minimum):
            return None
        if length not in self._cache:
            if self.video_ids is None:
                ids = frame_ids(self.prefix, self.frames, self.tokens_per_frame, length - self.prefix
                                - self.video_tokens)
            else:
                none = torch.full((1,), -1, dtype=torch.long)
                ids = torch.cat([none.expand(self.prefix), self.video_ids.long().cpu(),
                                 none.expand(length - self.prefix - self.video_tokens)])
            self._cache[length] = ids
        return self._cache[length]


def _patched_tokens(size, patch):
    return -(-size // patch)  # the DiTs pad to a multiple of the patch size


def _token_counts(*tensors):
    """Sequence lengths (dim -2 of [B, L, C]) of the tensors that are present: a model's cross-attention keys."""
    return {t.shape[-2] for t in tensors if t is not None}


def _layout_svd(model, x, c_crossattn, conds):
    frames = int(conds.get("num_video_frames", x.shape[0]))
    return _Layout(frames, 1, video_batch=max(1, x.shape[0] // frames)), set()


def _layout_wan(model, x, c_crossattn, conds):
    pt, ph, pw = model.diffusion_model.patch_size
    frames = _patched_tokens(x.shape[2], pt)
    if conds.get("time_dim_concat") is not None:  # concatenated along time after both are padded (wan/model.py)
        frames += _patched_tokens(conds["time_dim_concat"].shape[2], pt)
    prefix = 0
    reference = conds.get("reference_latent")
    if reference is not None and getattr(model.diffusion_model, "ref_conv", None) is not None:
        prefix = (reference.shape[-2] // ph) * (reference.shape[-1] // pw)  # ref_conv: stride = spatial patch
    layout = _Layout(frames, _patched_tokens(x.shape[-2], ph) * _patched_tokens(x.shape[-1], pw), prefix=prefix)
    return layout, _token_counts(c_crossattn, conds.get("clip_fea"))


def _layout_hunyuan(model, x, c_crossattn, conds):
    pt, ph, pw = model.diffusion_model.patch_size
    reference = conds.get("ref_latent")
    prefix = 0 if reference is None else math.prod(s // p for s, p in zip(reference.shape[2:], (pt, ph, pw)))
    layout = _Layout(x.shape[2] // pt, (x.shape[3] // ph) * (x.shape[4] // pw), prefix=prefix,
                     text=c_crossattn.shape[1], text_exact=False)
    return layout, set()  # joint attention only: text is part of the sequence


def _layout_ltxv(model, x, c_crossattn, conds):
    pt, ph, pw = model.diffusion_model.patchifier.patch_size
    frames, per_frame = x.shape[2] // pt, (x.shape[3] // ph) * (x.shape[4] // pw)
    video_ids = None
    if conds.get("keyframe_idxs") is not None and conds.get("denoise_mask") is not None:
        # the model drops tokens whose denoise mask is negative (lightricks/model.py _process_input)
        tokens = model.diffusion_model.patchifier.patchify(conds["denoise_mask"])[0]
        kept = ~torch.any(tokens < 0, dim=-1)[0]
        video_ids = (torch.arange(frames * per_frame, device=kept.device) // per_frame)[kept]
    return _Layout(frames, per_frame, video_ids=video_ids), _token_counts(c_crossattn)


def _layout_mochi(model, x, c_crossattn, conds):
    patch = model.diffusion_model.patch_size
    text = int(conds.get("num_tokens", 256))
    if c_crossattn is not None:
        text = min(text, c_crossattn.shape[1])  # the model crops q_y[:, :num_tokens]
    return _Layout(x.shape[2], (x.shape[3] // patch) * (x.shape[4] // patch), text=text), set()


# family -> fn(BaseModel, x, c_crossattn, conds) -> (_Layout, key lengths of the model's cross-attentions)
_LAYOUTS = {"svd": _layout_svd, "wan": _layout_wan, "hunyuan_video": _layout_hunyuan, "ltxv": _layout_ltxv,
            "mochi": _layout_mochi}


class _Call:
    """Per model call: the token layout and a counter that names each joint self-attention layer."""

    def __init__(self, layout):
        self.layout = layout
        self._seen = {}

    def layer_id(self, transformer_options):
        """(block type, block index, n-th joint attention of that block in this call): stable across calls."""
        block = (transformer_options.get("block_type"), transformer_options.get("block_index"))
        ordinal = self._seen.get(block, 0)
        self._seen[block] = ordinal + 1
        return block + (ordinal,)


class TemporalPruneController:
    """Settings plus the state of the sampling run in progress (None between runs)."""

    def __init__(self, family, ratio, mode, start_percent, calibration_steps):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.family, self.ratio, self.mode = family, ratio, mode
        self.start_percent, self.calibration_steps = start_percent, calibration_steps
        self.run = None
        self.call = None
        self.last_run = None
        self._warned = set()

    # --- wrappers -------------------------------------------------------------------------------------------
    def outer_sample(self, executor, *args, **kwargs):
        guider = executor.class_obj
        sampling = guider.model_patcher.get_model_object("model_sampling")
        self.run = TemporalPruneRun(self.ratio, sampling.percent_to_sigma(self.start_percent), self.calibration_steps)
        try:
            return executor(*args, **kwargs)
        finally:
            summary = self.run.summary()
            self.last_run = summary
            log.info("TemporalAttnPrune (%s, %s): pruned %d of %d temporal attention units (ratio %.2f) after %d "
                     "calibration steps", self.family, self.mode, len(summary["pruned"]), summary["units"],
                     self.ratio, summary["calibrated_steps"])
            self.run = None
            self.call = None

    def apply_model(self, executor, *args, **kwargs):
        if self.run is None:  # a model call outside a sampler run (nothing to calibrate against)
            return executor(*args, **kwargs)
        x, sigma, c_crossattn = args[0], args[1], args[3]
        layout = self._layout(executor.class_obj, x, c_crossattn, kwargs)
        self.run.begin_forward(sigma.max().item())
        self.call = _Call(layout)
        try:
            return executor(*args, **kwargs)
        finally:
            self.call = None

    def _layout(self, model, x, c_crossattn, conds):
        layout, cross_lengths = _LAYOUTS[self.family](model, x, c_crossattn, conds)
        if layout.frames < 2:
            raise ValueError(f"TemporalAttnPrune needs a video of at least 2 latent frames; this one has "
                             f"{layout.frames}. Remove the node for single images or one-frame videos.")
        if layout.prefix + layout.video_tokens + layout.text in cross_lengths:
            # a cross-attention would look exactly like the self-attention: leave this call dense
            self._warn_once("ambiguous", "TemporalAttnPrune: the text has as many tokens as the video (%d); "
                            "attention is left dense for such calls", layout.video_tokens)
            return None
        return layout

    def _warn_once(self, key, message, *args):
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    # --- SVD: temporal attention modules ------------------------------------------------------------------
    def score_module(self, unit, module, x, context):
        """Record the cross-frame mass of one time_stack attn1 call (x: [(b s), t, c])."""
        batch = self.call.layout.video_batch if self.call.layout is not None else 1
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

    def attn1_forward(self, unit, module, original):
        def forward(x, context=None, value=None, mask=None, transformer_options={}):
            run = self.run
            if run is not None and self.call is not None:
                if self.mode == "identity" and run.is_pruned(unit):
                    # each frame attends only to itself: softmax over one key is 1, so the output is V
                    source = value if value is not None else (x if context is None else context)
                    return module.to_out(module.to_v(source))
                if run.calibrating:
                    with torch.no_grad():
                        self.score_module(unit, module, x, context)
            return original(module, x, context=context, value=value, mask=mask,
                            transformer_options=transformer_options)
        return forward

    def block_forward(self, unit, block, original):
        def forward(x, context=None, transformer_options={}):
            if self.run is not None and self.call is not None and self.run.is_pruned(unit):
                return x  # the whole temporal block bypassed through its residual; the AlphaBlender still mixes
            return original(block, x, context=context, transformer_options=transformer_options)
        return forward

    # --- DiTs: heads of the joint self-attention ------------------------------------------------------------
    def attention(self, next_attention, q, k, v, heads, **kwargs):
        run, call = self.run, self.call
        if run is None or call is None or call.layout is None or run.phase == WAIT:
            return next_attention(q, k, v, heads, **kwargs)
        skip_reshape = kwargs.get("skip_reshape", False)
        length = q.shape[2] if skip_reshape else q.shape[1]
        key_length = k.shape[2] if skip_reshape else k.shape[1]
        ids = call.layout.frame_ids_for(length) if length == key_length else None
        if ids is None:
            return next_attention(q, k, v, heads, **kwargs)
        layer = call.layer_id(kwargs.get("transformer_options") or {})
        qh, kh, vh = (t if skip_reshape else split_heads(t, heads) for t in (q, k, v))
        if run.phase == CALIBRATE:
            with torch.no_grad():
                mass = frame_pair_mass(qh, kh, ids, ids, call.layout.frames,
                                       query_index=sample_queries(ids, QUERY_ROWS_PER_FRAME))
                run.scores.add([layer + (h,) for h in range(heads)], cross_frame_mass(mass).transpose(1, 2))
            return next_attention(q, k, v, heads, **kwargs)
        pruned = [h for h in range(heads) if run.is_pruned(layer + (h,))]
        if not pruned:
            return next_attention(q, k, v, heads, **kwargs)
        out = self._pruned_heads(next_attention, qh, kh, vh, heads, pruned, ids, kwargs)
        return out if kwargs.get("skip_output_reshape", False) else merge_heads(out)

    def _pruned_heads(self, next_attention, q, k, v, heads, pruned, ids, kwargs):
        """[B, H, L, D] attention: full for the kept heads (through the chain), within-frame or zero for the pruned."""
        kept = [h for h in range(heads) if h not in pruned]
        mask = kwargs.get("mask")
        out = q.new_empty(q.shape)
        if kept:
            sub = dict(kwargs, skip_reshape=True, skip_output_reshape=True, mask=_select_heads(mask, kept, heads))
            out[:, kept] = next_attention(q[:, kept], k[:, kept], v[:, kept], len(kept), **sub)
        if self.mode == "identity":
            backend = (kwargs.get("transformer_options") or {}).get(BACKEND_KEY, "auto")
            out[:, pruned] = frame_attention(q[:, pruned], k[:, pruned], v[:, pruned], ids,
                                             mask=_select_heads(mask, pruned, heads), backend=backend)
        else:
            out[:, pruned] = 0  # the head is removed: the block's residual stream carries on without it
        return out


def _select_heads(mask, index, heads):
    """A ComfyUI attention mask restricted to the heads ``index`` (only a 4-D mask can have a head axis)."""
    if mask is None or mask.dim() != 4 or mask.shape[1] != heads or heads == 1:
        return mask
    return mask[:, index]


def _svd_time_stack_attention(diffusion_model):
    """Names of the temporal self-attention modules: ``attn1`` of every SpatialVideoTransformer.time_stack block."""
    return [name for name, module in diffusion_model.named_modules()
            if ".time_stack." in name and name.endswith(".attn1") and hasattr(module, "to_q")]


def apply_temporal_prune(model, ratio, mode, start_percent, calibration_steps):
    """Patched clone of ``model`` (a ModelPatcher) and its controller (``controller.last_run`` after sampling)."""
    family = require_family("temporal_prune", model.model)
    controller = TemporalPruneController(family, ratio, mode, start_percent, calibration_steps)
    patched = model.clone()
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, WRAPPER_KEY, controller.outer_sample)
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, WRAPPER_KEY, controller.apply_model)
    if family == "svd":
        diffusion_model = model.model.diffusion_model
        names = _svd_time_stack_attention(diffusion_model)
        if not names:
            raise ValueError("TemporalAttnPrune: this SVD model has no temporal attention (time_stack) modules")
        for name in names:
            attn = diffusion_model.get_submodule(name)
            patched.add_object_patch(f"diffusion_model.{name}.forward",
                                     controller.attn1_forward(name, attn, type(attn).forward))
            if mode == "skip":
                block_name = name[:-len(".attn1")]
                block = diffusion_model.get_submodule(block_name)
                patched.add_object_patch(f"diffusion_model.{block_name}.forward",
                                         controller.block_forward(name, block, type(block).forward))
    else:
        report_block_info(patched, family)  # units are keyed on the block
        install_attention_override(patched, controller.attention)
    return patched, controller


class TemporalAttnPruneNode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FreeAccel_TemporalAttnPrune",
            display_name="TemporalAttnPrune (F3)",
            category="FreeAccel/pruning",
            description="F3-style pruning of temporal attention: during a few calibration steps it measures how much "
                        "attention each temporal unit sends to OTHER frames, then prunes the lowest-ranked fraction "
                        "for the rest of the run. SVD: units are the time_stack attention modules. WAN, "
                        "HunyuanVideo, LTX-Video, Mochi: units are heads of the joint 3-D self-attention, and a "
                        "pruned head attends within its own latent frame only.",
            inputs=[
                io.Model.Input("model", tooltip="A video model: SVD, WAN 2.1/2.2, HunyuanVideo, LTX-Video or Mochi."),
                io.Float.Input("ratio", default=0.5, min=0.0, max=1.0, step=0.05,
                               tooltip="Fraction of temporal attention units to prune (lowest cross-frame attention "
                                       "first). 0 only measures and logs, leaving the output unchanged."),
                io.Combo.Input("mode", options=list(MODES), default="identity",
                               tooltip="identity: a pruned unit lets each frame attend only to itself (SVD: just the "
                                       "value and output projections; DiTs: attention within each latent frame, "
                                       "text still visible). skip: SVD bypasses the whole temporal block through its "
                                       "residual (the spatial/temporal mix still applies); on DiTs the pruned head's "
                                       "output is dropped."),
                io.Float.Input("start_percent", default=0.1, min=0.0, max=1.0, step=0.01,
                               tooltip="Sampling progress at which calibration starts; steps before it run dense."),
                io.Int.Input("calibration_steps", default=2, min=1, max=100,
                             tooltip="Computed steps (from start_percent) used to measure the units before the pruned "
                                     "set is frozen for the rest of the run. Recomputed on every run."),
            ],
            outputs=[io.Model.Output(tooltip="The model with temporal attention pruning.")],
        )

    @classmethod
    def validate_inputs(cls, ratio, mode, start_percent, calibration_steps, **_):
        if not 0.0 <= ratio <= 1.0:
            return f"ratio must be between 0 and 1, got {ratio}"
        if mode not in MODES:
            return f"mode must be one of {', '.join(MODES)}, got {mode!r}"
        if not 0.0 <= start_percent <= 1.0:
            return f"start_percent must be between 0 and 1, got {start_percent}"
        if calibration_steps < 1:
            return f"calibration_steps must be at least 1, got {calibration_steps}"
        return True

    @classmethod
    def execute(cls, model, ratio, mode, start_percent, calibration_steps):
        patched, _ = apply_temporal_prune(model, ratio, mode, start_percent, calibration_steps)
        return io.NodeOutput(patched)


NODES = [TemporalAttnPruneNode]
