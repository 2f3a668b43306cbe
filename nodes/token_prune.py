"""FreeAccel_TokenPrune: AT-EDM attention-driven token pruning (G-WPR ranking, similarity recovery, DSAP) for the
SD1.5 / SDXL UNet, and for Flux / WAN over a block range (see the DiT section below and ``token_prune_dit``).

UNet hook: every SpatialTransformer of the UNet is replaced, through an object patch on a model clone, by a
PrunedSpatialTransformer that registers the SAME child modules under the SAME names (so state-dict, LoRA and
weight-loading keys are unchanged and ComfyUI still moves / patches those weights) and only swaps the forward.
ComfyUI's unpatch_model puts the original modules back after the run.

DSAP (both hooks): the run state (``integration.run_state``) is the run's window of the first dsap_percent of the
whole schedule as sigmas (``integration.steps.SigmaWindow``), so KSamplerAdvanced segments and split samplers spare
the same steps as one run over the schedule.

The private ComfyUI classes the UNet hook subclasses and recognises are imported under a guard: on a ComfyUI that
renamed one, the node still loads and refuses UNets with a message naming what is missing.
"""
import functools
import logging

import torch
from comfy_api.v0_0_2 import io
import comfy.patcher_extension

from ..accel_core.settings import from_inputs
from ..accel_core.token_prune import (
    PruneSettings, Stage, classify_stages, plan_tokens, recovery_windows, resolve_block_range,
)
from ..kernels.attention import split_heads
from .integration.attention import chain_attention_override
from .integration.families import double_blocks
from .integration.install import apply, technique
from .integration.run_state import run_state
from .integration.schema import settings_inputs, settings_validator
from .integration.steps import SigmaWindow, call_sigma
from .token_prune_dit import DIT_HOSTS, dit_host

try:  # private ComfyUI classes: the stage PrunedSpatialTransformer extends, the resamplers that mark the levels
    from comfy.ldm.modules.attention import SpatialTransformer
    from comfy.ldm.modules.diffusionmodules.openaimodel import Downsample, Upsample
    _UNET_IMPORT_ERROR = None
except ImportError as err:
    SpatialTransformer = Downsample = Upsample = None
    _UNET_IMPORT_ERROR = err

log = logging.getLogger(__name__)

KEY = "freeaccel_token_prune"  # owner of everything installed, and the run-state key
NAME = "TokenPrune (G-WPR / DSAP)"  # the node's display name, the prefix of its messages


class _DsapRun:
    """One sampler run's DSAP window: the first dsap_percent of the whole schedule."""

    def __init__(self, dsap_percent, model_sampling, sample_sigmas):
        # sample_sigmas (this run's part of the schedule) is not used: progress is read from the whole schedule
        self.window = SigmaWindow(model_sampling, 0.0, dsap_percent)
        self._call_sigmas, self._early = None, False

    def early(self, sigmas):
        """True when the model call with ``sigmas`` (its transformer_options["sigmas"]) lies in the window. Reading
        the sigma waits for the device, so the answer is kept for the call's sigmas tensor, which every stage of
        one call shares: one wait per model call instead of one per stage."""
        if sigmas is not self._call_sigmas:
            self._call_sigmas, self._early = sigmas, self.window.contains(call_sigma(sigmas))
        return self._early

    def finish(self):
        self._call_sigmas = None  # nothing to record; drop the device tensor


def _scheduled_ratio(settings, stage, tokens, transformer_options):
    """The ratio ``stage`` prunes at in this model call (level selection, and DSAP inside a sampler run)."""
    early = False
    if settings.dsap and stage.dsap_protected:  # only then is the call's sigma read
        dsap = run_state(transformer_options, KEY)
        sigmas = transformer_options.get("sigmas")
        early = dsap is not None and sigmas is not None and dsap.early(sigmas)
    return settings.stage_ratio(stage, tokens, early)


class StagePruner:
    """Prunes one stage's tokens in its first block and refills them before proj_out.

    The first block runs with options that carry two hooks. An attention handler, chained in front of any attention
    override, meets the block's self-attention: it ranks the tokens by G-WPR from the q and k ComfyUI hands to
    attention (no extra projections), picks each token's recovery source from the block's input (the TokenPlan) and
    computes attention for the K query rows only (the kept tokens' queries, or with merging their groups' mean
    queries), against every key; each pruned row takes its source's result. The LAST middle patch, which ComfyUI
    calls right after attn1's residual add, then reduces the tokens to those K rows, so the block's cross-attention
    and feed-forward run on them, exactly as AT-EDM prunes after the first self-attention, while the block's
    forward stays ComfyUI's own. If the handler never saw that self-attention (another node replaced attn1 without
    calling ComfyUI's attention, or changed its keys), the middle patch plans from q / k recomputed from the block's
    input with its own norm1 / to_q / to_k. Recovery starts from the tokens after attn1's residual add.
    """

    def __init__(self, block, settings, ratio, grid, device):
        self.block, self.settings, self.ratio = block, settings, ratio
        self.tokens = grid[0] * grid[1]
        self.windows = recovery_windows(settings, *grid, ratio, device)
        self.block_input = self.plan = None

    def first_block_options(self, transformer_options, block_input):
        """A copy of transformer_options for the first block (whose input is ``block_input``) with both hooks; the
        original is not modified."""
        self.block_input = block_input
        options = dict(transformer_options)
        patches = dict(options.get("patches", {}))
        patches["middle_patch"] = list(patches.get("middle_patch", [])) + [self.prune]
        options["patches"] = patches
        return chain_attention_override(options, self.attention, KEY)

    def _plan(self, q, k):
        self.plan = plan_tokens(q, k, self.block_input, self.settings, self.ratio, self.windows)

    def attention(self, call):
        """The first block's self-attention on the K query rows (see the class doc); other calls pass through."""
        if self.plan is not None or call.mask is not None or not (
                call.query_length == call.key_length == self.tokens):
            return call.next()
        self._plan(call.q, call.k)
        rows_out = call.next(self.plan.rows(call.q.transpose(1, 2)).transpose(1, 2), call.k, call.v)
        return self.plan.spread(rows_out.transpose(1, 2)).transpose(1, 2)

    def prune(self, x, extra_options):
        """The middle patch: x reduced to the plan's K rows (planned from recomputed q / k if the handler did not
        plan)."""
        if self.plan is None:
            attn = self.block.attn1
            normed = self.block.norm1(self.block_input)
            self._plan(split_heads(attn.to_q(normed), attn.heads), split_heads(attn.to_k(normed), attn.heads))
        return self.plan.reduce(x)

    def recover(self, kept_out):
        return self.plan.restore(kept_out)


# nn.Module stands in for the base only on a ComfyUI without SpatialTransformer, where apply_token_prune refuses UNets
class PrunedSpatialTransformer(SpatialTransformer or torch.nn.Module):
    """A SpatialTransformer (so ComfyUI's forward_timestep_embed passes context and transformer_options to it) that
    shares the original's children and prunes tokens when its stage is scheduled to."""

    def __init__(self, original, stage, settings):
        torch.nn.Module.__init__(self)  # children are shared, not rebuilt: SpatialTransformer.__init__ would allocate
        for name, child in original.named_children():
            self.add_module(name, child)
        self.in_channels = original.in_channels
        self.use_linear = original.use_linear
        object.__setattr__(self, "original", original)  # unregistered: keys stay those of the shared children
        self.stage = stage
        self.settings = settings

    def forward(self, x, context=None, transformer_options={}):
        ratio = _scheduled_ratio(self.settings, self.stage, x.shape[2] * x.shape[3], transformer_options)
        if ratio == 0.0:
            return SpatialTransformer.forward(self, x, context, transformer_options)
        return self.forward_pruned(x, context, transformer_options, ratio)

    def forward_pruned(self, x, context, transformer_options, ratio):
        """SpatialTransformer.forward with the tokens pruned at ``ratio`` after the first self-attention.

        The skeleton (norm, proj_in, blocks, proj_out, residual) mirrors SpatialTransformer.forward because the
        prune / recover steps sit inside it; the blocks themselves are ComfyUI's modules, called unchanged. A drift
        test pins the skeleton to ComfyUI's: at ratio 0 every token is kept and, with passthrough recovery, the
        output equals SpatialTransformer.forward's.
        """
        h, w = x.shape[2:]
        blocks = self.transformer_blocks
        if not isinstance(context, list):
            context = [context] * len(blocks)
        transformer_options["activations_shape"] = list(x.shape)
        x_in = x
        x = self.norm(x)
        if not self.use_linear:
            x = self.proj_in(x)
        x = x.movedim(1, 3).flatten(1, 2).contiguous()
        if self.use_linear:
            x = self.proj_in(x)
        pruner = StagePruner(blocks[0], self.settings, ratio, (h, w), x.device)
        for i, block in enumerate(blocks):
            transformer_options["block_index"] = i
            options = pruner.first_block_options(transformer_options, x) if i == 0 else transformer_options
            x = block(x, context=context[i], transformer_options=options)
        x = pruner.recover(x)
        if self.use_linear:
            x = self.proj_out(x)
        x = x.reshape(x.shape[0], h, w, x.shape[-1]).movedim(3, 1).contiguous()
        if not self.use_linear:
            x = self.proj_out(x)
        return x + x_in


def unet_stage_paths(diffusion_model):
    """[(attribute path under the BaseModel, section, downsample level)] of every SpatialTransformer, in call order.

    The level is counted from the Downsample / Upsample modules met along the way (also those inside ResBlocks with
    up/down sampling), so it does not depend on the latent size.
    """
    found = []
    level = 1
    sections = [("input", diffusion_model.input_blocks), ("output", diffusion_model.output_blocks)]
    if diffusion_model.middle_block is not None:
        sections.insert(1, ("middle", [diffusion_model.middle_block]))
    for section, blocks in sections:
        for block_id, block in enumerate(blocks):
            if section == "input" and any(isinstance(m, Downsample) for m in block.modules()):
                level *= 2
            for layer_id, layer in enumerate(block):
                if isinstance(layer, SpatialTransformer):
                    path = ("diffusion_model.middle_block" if section == "middle"
                            else f"diffusion_model.{section}_blocks.{block_id}")
                    found.append((f"{path}.{layer_id}", section, level))
            if section == "output" and any(isinstance(m, Upsample) for m in block.modules()):
                level //= 2
    return found


def _prunable(stage_module):
    """Plain image SpatialTransformers whose first block starts with a real self-attention (SVD's video variant and
    blocks with ff_in or disabled self-attention are left alone)."""
    if type(stage_module) not in (SpatialTransformer, PrunedSpatialTransformer):
        return False
    first = stage_module.transformer_blocks[0]
    return not first.disable_self_attn and not first.ff_in


def _install_unet_stages(installer, settings):
    """Every prunable stage of the SD1.5 / SDXL clone a PrunedSpatialTransformer."""
    if _UNET_IMPORT_ERROR is not None:
        raise RuntimeError(f"this ComfyUI lacks the UNet modules TokenPrune replaces and recognises "
                           f"({_UNET_IMPORT_ERROR}); FreeAccel needs an update for this ComfyUI version")
    patcher = installer.patcher
    diffusion_model = patcher.get_model_object("diffusion_model")
    entries = [(path, section, level) for path, section, level in unet_stage_paths(diffusion_model)
               if _prunable(patcher.get_model_object(path))]
    stages = classify_stages([(section, level) for _, section, level in entries])
    levels = settings.level_factors
    if levels is not None and not any(stage.level in levels for stage in stages):
        present = sorted({stage.level for stage in stages})
        raise ValueError(f"levels {','.join(map(str, levels))} select no attention stage of this model; its "
                         f"attention stages are at downsample {','.join(map(str, present))}")
    for (path, _, _), stage in zip(entries, stages):
        installer.object_patch(path, PrunedSpatialTransformer(patcher.get_model_object(path), stage, settings))
    log.debug("TokenPrune: %d attention stages patched (ratio %.2f, dsap %s)", len(entries), settings.ratio,
             "on" if settings.dsap else "off")


# --- DiTs (Flux, WAN): a pruned block range through chained patches_replace["dit"] entries -------------------------
#
# Blocks block_start..block_end (inclusive) run on the kept image / video tokens only. At block_start the tokens are
# ranked by G-WPR over that block's own image-to-image self-attention (q/k recomputed from its modules, RoPE
# included), then its input is gathered together with everything that is per token: the rotary table of the kept
# tokens (Flux `pe`: text part kept whole; WAN `freqs`) and WAN 2.2 TI2V's per-frame modulation `vec`, expanded to
# one row per token first (with merging, the kept positions carry their groups' mean features). After block_end
# every token is refilled by the range's TokenPlan (accel_core.token_prune). DSAP on a DiT: the whole range is not
# pruned during the first dsap_percent of sampling.

RANGE_KEY = "freeaccel_token_prune_range"  # transformer_options key of the range state of the current model call
CONTROL_KEY = "freeaccel_token_prune_control"  # set for model calls that carry a ControlNet (Flux adds per token)
DIT_STAGE = Stage(level=1, dsap_protected=True)  # a DiT range is one stage at the latent's token resolution


class _BlockRange:
    """The pruned range first..last of one TokenPrune; ``scoring_block`` is the first block, whose modules rank the
    tokens (held, not copied: chained block entries are shared by model clones)."""

    def __init__(self, host, settings, scoring_block, first, last):
        self.host, self.settings, self.scoring_block = host, settings, scoring_block
        self.first, self.last = first, last


class _RangeState:
    """One model call's pruned range: its TokenPlan and the replaced per-token args."""

    def __init__(self, block_range, args, ratio):
        img, settings = args["img"], block_range.settings
        q, k = block_range.host.qk(block_range.scoring_block, args)
        # local recovery: windows of consecutive tokens in the model's raster order (neighbours along a row)
        windows = recovery_windows(settings, 1, img.shape[1], ratio, img.device)
        self.plan = plan_tokens(q, k, img, settings, ratio, windows)
        self.kept_args = block_range.host.kept_args(args, self.plan.keep_index)

    def pruned(self, args):
        return dict(args, img=self.plan.reduce(args["img"]), **self.kept_args)

    def restricted(self, args):
        return dict(args, **self.kept_args)

    def recover(self, kept_out):
        return self.plan.restore(kept_out)


def _range_ratio(settings, args, transformer_options):
    if transformer_options.get(CONTROL_KEY) or args.get("attn_mask") is not None:
        return 0.0  # ControlNet residuals and attention masks address every token: this call runs unpruned
    return _scheduled_ratio(settings, DIT_STAGE, args["img"].shape[1], transformer_options)


def _range_block(block_range, index, args, run_block):
    """Block ``index`` of ``block_range`` (a chained dit replacement; ``run_block`` runs what it replaced). The
    call's range state lives in its transformer_options from the first block of the range to the last."""
    options = args["transformer_options"]
    if index == block_range.first:
        ratio = _range_ratio(block_range.settings, args, options)
        options[RANGE_KEY] = _RangeState(block_range, args, ratio) if ratio > 0.0 else None
    state = options.get(RANGE_KEY)
    if state is None:
        return run_block(args)
    out = run_block(state.pruned(args) if index == block_range.first else state.restricted(args))
    if index == block_range.last:
        out = dict(out, img=state.recover(out["img"]))
        options[RANGE_KEY] = None
    return out


def _control_apply_model(executor, *args, **kwargs):
    """APPLY_MODEL wrapper (Flux): marks model calls with a ControlNet, whose per-block residuals span every
    image token, so that their block range runs unpruned."""
    x, t, c_concat, c_crossattn, control, transformer_options = args[:6]
    if control is not None:
        transformer_options = dict(transformer_options, **{CONTROL_KEY: True})
    return executor(x, t, c_concat, c_crossattn, control, transformer_options, *args[6:], **kwargs)


def _install_block_range(installer, settings, family):
    """The block range of the Flux or WAN clone prunes tokens."""
    diffusion_model = installer.patcher.get_model_object("diffusion_model")
    host = dit_host(family, diffusion_model)
    blocks = double_blocks(family, diffusion_model)
    first, last = resolve_block_range(settings.block_start, settings.block_end, host.default_range(len(blocks)),
                                      len(blocks), host.description)
    block_range = _BlockRange(host, settings, blocks[first], first, last)
    for index in range(first, last + 1):
        installer.block("double_block", index, functools.partial(_range_block, block_range, index))
    if family in ("flux", "flux2"):
        installer.wrapper(comfy.patcher_extension.WrappersMP.APPLY_MODEL, _control_apply_model)
    log.debug("TokenPrune: %s %d..%d prune (ratio %.2f, dsap %s)", host.description, first, last, settings.ratio,
             "on" if settings.dsap else "off")


def _install(installer, settings, family):
    if family in DIT_HOSTS:
        _install_block_range(installer, settings, family)
    else:
        _install_unet_stages(installer, settings)
    if settings.dsap:
        installer.run_state(functools.partial(_DsapRun, settings.dsap_percent))


TECHNIQUE = technique(KEY, NAME, PruneSettings, _install, support="token_prune")


def apply_token_prune(model, settings: PruneSettings):
    """A clone of the ModelPatcher ``model`` that prunes tokens with ``settings``: in every prunable UNet stage
    (SD1.5, SDXL) or over a block range (Flux, WAN), in place of any earlier TokenPrune. Raises ValueError for
    invalid settings or an unsupported model, RuntimeError when this ComfyUI lacks an internal that the model
    family's hook uses."""
    return apply(TECHNIQUE, model, settings)


class TokenPruneNode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FreeAccel_TokenPrune",
            display_name=NAME,
            category="FreeAccel/pruning",
            is_experimental=True,  # until measured on real weights
            description="AT-EDM token pruning for SD1.5 / SDXL: in each selected attention stage, ranks tokens by "
                        "G-WPR (a PageRank over the first self-attention map), joins each other token to its most "
                        "similar top token, computes that self-attention for the top tokens (by default the mean of "
                        "each group) only, runs the rest of the stage on them and gives every token its group's update "
                        "before the convolutions. DSAP spares the outer stages of each level during the first steps. "
                        "Flux / WAN: blocks block_start..block_end run on the top image / video tokens (ranked by "
                        "block_start's self-attention) in the same way. DSAP there leaves the whole range unpruned "
                        "during the first steps.",
            inputs=[
                io.Model.Input("model", tooltip="SD1.5 or SDXL (base or refiner), Flux / Chroma, Flux.2 or WAN 2.1 / "
                                                "2.2 model; a patched clone is returned."),
                *settings_inputs(PruneSettings),
            ],
            outputs=[io.Model.Output(tooltip="The model with token pruning applied during sampling.")],
        )

    validate_inputs = settings_validator(PruneSettings, NAME)

    @classmethod
    def execute(cls, model, **inputs):
        return io.NodeOutput(apply_token_prune(model, from_inputs(PruneSettings, inputs)))


NODES = [TokenPruneNode]
