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

Mode ``adaptive`` (DiTs only; ``accel_core.head_patterns``): the same hooks, with an ``AdaptiveRun`` as the run's
state. In the first computed step from ``start_percent``, each block's first joint self-attention call measures its
heads on sampled query rows and runs right away with the chosen patterns (``kernels.head_sparse``); every later call
reuses them. Dense heads go down the attention chain as they are, so a model whose heads all stay dense is
bit-identical to the unpatched one. An optional pattern file is loaded at the start of a run, or written once the
first model call of the deciding step has finished.
"""
import functools
import logging
import math
import os

import torch
from comfy_api.v0_0_2 import io
import comfy.patcher_extension

from ..accel_core import head_patterns
from ..accel_core.settings import from_inputs
from ..accel_core.temporal_prune import (
    ADAPTIVE, CALIBRATE, WAIT, TemporalPruneRun, TemporalPruneSettings, cross_frame_mass, sample_queries)
from ..kernels.attention import split_heads
from ..kernels.frame_attention import frame_attention
from ..kernels.head_sparse import DENSE, head_sparse_attention
from ..kernels.local_window import VideoLayout
from ..kernels.scoring import frame_pair_mass
from .integration.compat import report_block_info
from .integration.install import apply, technique
from .integration.run_state import run_state
from .integration.schema import settings_inputs, settings_validator
from .integration.steps import SigmaWindow, call_sigma
from .integration.families import double_blocks, token_layout
from .integration.token_layout import ModelCall

log = logging.getLogger(__name__)

KEY = "freeaccel_temporal_prune"  # owner of everything installed, and the run-state key
NAME = "TemporalAttnPrune (F3)"  # the node's display name, the prefix of its messages
QUERY_ROWS_PER_FRAME = 16  # sampled query tokens per latent frame when scoring a DiT head
SVD_SCORED_POSITIONS = 1024  # spatial positions per video whose temporal attention is scored (evenly spaced)


class _RunState:
    """One sampling run: the host-agnostic TemporalPruneRun (F3 modes) or AdaptiveRun (adaptive) plus the model
    call in progress."""

    def __init__(self, settings, family, model_sampling, _sample_sigmas):  # RunHook's start(sampling, sigmas)
        self.settings, self.family = settings, family
        start_sigma = SigmaWindow(model_sampling, settings.start_percent).start_sigma
        self.adaptive = settings.mode == ADAPTIVE
        if self.adaptive:
            self.pattern_path = pattern_path(settings.pattern_file)
            self.run = head_patterns.AdaptiveRun(settings.head_patterns, start_sigma, self._load_table())
            self.saved = False
        else:
            self.run = TemporalPruneRun(settings.ratio, start_sigma, settings.calibration_steps)
        self.call = None  # ModelCall while the model runs
        self.warned_ambiguous = False
        self.warned = set()  # adaptive-mode fallbacks already logged in this run

    def _load_table(self):
        """The pattern file's table, or None (no file yet, or unreadable: then the run measures, as logged)."""
        self.file_existed = self.pattern_path is not None and os.path.exists(self.pattern_path)
        if not self.file_existed:
            return None
        try:
            return head_patterns.PatternTable.load(self.pattern_path)
        except (OSError, ValueError) as err:
            log.warning("%s: cannot use the pattern file (%s); measuring the head patterns in this run instead",
                        NAME, err)
            return None

    def finish(self):
        if self.adaptive:
            return self._finish_adaptive()
        summary = self.run.summary()
        log.info("TemporalAttnPrune (%s, %s): pruned %d of %d temporal attention units (ratio %.2f) after %d "
                 "calibration steps", self.family, self.settings.mode, len(summary["pruned"]), summary["units"],
                 self.settings.ratio, summary["calibrated_steps"])
        return summary

    def _finish_adaptive(self):
        summary = self.run.summary()
        summary["pattern_file"] = self.pattern_path
        counts = ", ".join(f"{pattern} {count}" for pattern, count in summary["counts"].items())
        if summary["decision_step"] is None:
            log.info("TemporalAttnPrune (%s, adaptive): no step reached start_percent %.2f; all %d steps ran dense",
                     self.family, self.settings.start_percent, summary["steps"])
        else:
            source = ("loaded from " + self.pattern_path if summary["source"] == "file"
                      else f"measured in computed step {summary['decision_step']}")
            log.info("TemporalAttnPrune (%s, adaptive): head patterns of %d heads in %d blocks (%s): %s; %d dense "
                     "blocks before them; %d of %d steps dense before start_percent", self.family, summary["heads"],
                     len(summary["patterns"]), source, counts, len(summary["dense_blocks"]),
                     summary["dense_steps"], summary["steps"])
        return summary

    def apply_model(self, executor, args, kwargs):
        x, timestep, c_crossattn = args[0], args[1], args[3]
        layout = self._layout(executor.class_obj, x, c_crossattn, kwargs)
        self.run.begin_forward(call_sigma(timestep))
        # adaptive: blocks are numbered globally (HunyuanVideo's single-stream blocks after its double-stream ones)
        doubles = len(double_blocks(self.family, executor.class_obj.diffusion_model)) if self.adaptive else 0
        self.call = ModelCall(layout, doubles)
        try:
            out = executor(*args, **kwargs)
        finally:
            self.call = None
        if self.adaptive and self.run.phase != head_patterns.WAIT:
            self._save_table()
        return out

    def _save_table(self):
        """Write the patterns measured in this run to the pattern file, once, after the first whole model call of
        the deciding step (only to a file that did not exist when the run started)."""
        if self.saved or self.pattern_path is None or self.file_existed or not self.run.table.blocks:
            return
        self.saved = True
        try:
            os.makedirs(os.path.dirname(self.pattern_path) or ".", exist_ok=True)
            self.run.table.save(self.pattern_path)
            log.info("%s: wrote the head patterns to %s", NAME, self.pattern_path)
        except OSError as err:
            log.warning("%s: cannot write the pattern file %s (%s)", NAME, self.pattern_path, err)

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
        if self.adaptive:
            return self._adaptive_attention(call)
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


    # --- DiTs, adaptive mode: a pattern per head ------------------------------------------------------------
    def _warn_once(self, key, message, *args):
        if key not in self.warned:
            self.warned.add(key)
            log.info("%s: " + message, NAME, *args)

    def _adaptive_attention(self, call):
        run, model_call = self.run, self.call
        if model_call is None or model_call.layout is None or run.phase == head_patterns.WAIT:
            return call.next()
        layout = model_call.layout
        if call.query_length != call.key_length or not layout.matches(call.query_length):
            return call.next()
        block = model_call.block_number(model_call.site(call.options))
        if not layout.full_grid:
            self._warn_once("grid", "the video tokens of this call do not form a full frames x height x width grid "
                                    "(e.g. LTX-Video keyframe conditioning); its attention stays dense")
            return call.next()
        key_mask = None if call.mask is None else _key_mask(call.mask)
        if call.mask is not None and key_mask is None:
            self._warn_once("mask", "the attention mask of this model differs per query; its attention stays dense")
            return call.next()
        grid = VideoLayout(layout.frames, layout.height, layout.width, offset=layout.prefix_for(call.query_length))
        settings = self.settings.head_patterns

        def measure():
            return head_patterns.decide_patterns(call.q, call.k, grid, settings, key_mask=key_mask)
        had_mismatch = run.mismatch
        patterns = run.patterns(block, call.q.shape[1], (layout.frames, layout.height, layout.width), measure)
        if run.mismatch is not None and had_mismatch is None and run.loaded is not None:
            log.warning("%s: the pattern file %s does not fit this run (%s); measuring the head patterns again (the "
                        "file is left as it is)", NAME, self.pattern_path, run.mismatch)
        if patterns is None:
            return call.next()
        return self._head_patterns(call, patterns, grid)

    def _head_patterns(self, call, patterns, grid):
        """[B, H, L, D]: the dense heads through the chain, the others on their pattern (heads sharing one run
        together)."""
        q, k, v = call.q, call.k, call.v
        heads = q.shape[1]
        dense = [h for h in range(heads) if patterns[h] == DENSE]
        if len(dense) == heads:
            return call.next()
        sparse = [h for h in range(heads) if patterns[h] != DENSE]
        shapes = self.settings.head_patterns.shapes
        if not dense:
            return head_sparse_attention(q, k, v, grid, patterns, shapes, mask=call.mask, backend=call.backend)
        out = q.new_empty(q.shape)
        out[:, dense] = call.next(q[:, dense], k[:, dense], v[:, dense], mask=_select_heads(call.mask, dense))
        out[:, sparse] = head_sparse_attention(q[:, sparse], k[:, sparse], v[:, sparse], grid,
                                               [patterns[h] for h in sparse], shapes,
                                               mask=_select_heads(call.mask, sparse), backend=call.backend)
        return out


def _key_mask(mask):
    """A 4-D attention mask that only masks keys as [B|1, Lk]; None for one that differs per query or head."""
    return mask[:, 0, 0] if mask.shape[1] == 1 and mask.shape[2] == 1 else None


def pattern_path(text):
    """The pattern file named by the ``pattern_file`` input: None when empty; relative paths are in ComfyUI's output
    folder."""
    text = (text or "").strip()
    if not text:
        return None
    text = os.path.expanduser(text)
    if not os.path.isabs(text):
        import folder_paths
        text = os.path.join(folder_paths.get_output_directory(), text)
    return os.path.normpath(text)


def pattern_file_error(settings):
    """The message for a pattern file that exists but is not a readable pattern table, or None (no file: it is
    written by the run)."""
    if settings.mode != ADAPTIVE:
        return None
    path = pattern_path(settings.pattern_file)
    if path is None or not os.path.exists(path):
        return None
    if os.path.isdir(path):
        return f"pattern_file {path} is a folder; name a .json file"
    try:
        head_patterns.PatternTable.load(path)
    except (OSError, ValueError) as err:
        return f"pattern_file: {err} (delete it to measure and write it again)"
    return None


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
    if settings.mode == ADAPTIVE:
        if family == "svd":
            raise ValueError("mode adaptive chooses a pattern per head of a video DiT's joint 3-D self-attention; "
                             "SVD has none: use identity or skip")
        error = pattern_file_error(settings)
        if error is not None:
            raise ValueError(error)
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
                        "pruned head attends within its own latent frame only. Mode adaptive (DiTs): every head gets "
                        "the cheapest of dense, within-frame, local-window and temporal attention that keeps "
                        "mass_threshold of its attention, chosen inside the first step (no calibration steps).",
            inputs=[
                io.Model.Input("model", tooltip="A video model: SVD, WAN 2.1/2.2, HunyuanVideo, LTX-Video or Mochi."),
                *settings_inputs(TemporalPruneSettings),
            ],
            outputs=[io.Model.Output(tooltip="The model with temporal attention pruning.")],
        )

    validate_inputs = settings_validator(TemporalPruneSettings, NAME, pattern_file_error)

    @classmethod
    def execute(cls, model, **inputs):
        return io.NodeOutput(apply_temporal_prune(model, from_inputs(TemporalPruneSettings, inputs)))


NODES = [TemporalAttnPruneNode]
