"""FreeAccel_TokenPrune: AT-EDM attention-driven token pruning (G-WPR ranking, similarity recovery, DSAP) for the
SD1.5 / SDXL UNet, and for Flux / WAN over a block range (see the DiT section below).

UNet hook: every SpatialTransformer of the UNet is replaced, through an object patch on a model clone, by a
PrunedSpatialTransformer that registers the SAME child modules under the SAME names (so state-dict, LoRA and
weight-loading keys are unchanged and ComfyUI still moves / patches those weights) and only swaps the forward.
ComfyUI's unpatch_model puts the original modules back after the run.
"""
import dataclasses
import functools
import logging

import torch
from comfy_api.v0_0_2 import io
import comfy.model_management
import comfy.model_patcher
import comfy.patcher_extension
from comfy.ldm.flux.layers import apply_mod
from comfy.ldm.flux.math import apply_rope, apply_rope1
from comfy.ldm.wan.model import WanModel, repeat_e
from comfy.ldm.modules.attention import SpatialTransformer
from comfy.ldm.modules.diffusionmodules.openaimodel import Downsample, Upsample

from ..accel_core.families import require_family
from ..accel_core.token_prune import (
    AUTO_LEVELS, MAX_RATIO, RECOVERY_MODES, PruneSettings, Stage, classify_stages, gwpr_scores, keep_index_for,
    parse_levels, recover_passthrough, recover_residual, recover_similarity, recovery_source, resolve_block_range,
    score_query_rows,
)
from ..kernels.attention import split_heads
from ..kernels.tokens import gather_tokens

# transformer_options key of the per-run DSAP threshold sigma (set by the OUTER_SAMPLE wrapper)
DSAP_SIGMA_KEY = "freeaccel_token_prune_dsap_sigma"
WRAPPER_KEY = "freeaccel_token_prune"


def _scheduled_ratio(settings, stage, tokens, transformer_options):
    """The ratio `stage` prunes at in this model call (levels / min_tokens selection and the DSAP schedule)."""
    sigmas = transformer_options.get("sigmas")
    dsap_sigma = transformer_options.get(DSAP_SIGMA_KEY)
    needs_sigma = settings.dsap and stage.dsap_protected and sigmas is not None
    sigma = float(sigmas.max()) if needs_sigma else 0.0
    return settings.stage_ratio(stage, tokens, sigma, dsap_sigma if needs_sigma else None)


class StagePruner:
    """Prunes one stage's tokens right after its first self-attention and refills them before proj_out.

    The scores come from the first block's attn1 projections: q/k are recomputed here from norm1(x) with the block's
    own to_q/to_k, because ComfyUI computes its attention inside BasicTransformerBlock.forward and exposes no
    attention probabilities; recomputing the two projections costs 2*N*C^2 MACs, far less than the attention itself,
    and leaves ComfyUI's forward untouched. (Other nodes' attn1 patches are therefore not seen by the scoring.)
    The pruning itself runs as the LAST `middle_patch` of the first block: ComfyUI calls middle patches right after
    attn1's residual add, so that block's cross-attention and feed-forward already run on the kept tokens, exactly as
    AT-EDM prunes after the first self-attention, while the block's forward stays ComfyUI's own.
    """

    def __init__(self, keep_index, recovery):
        self.keep_index = keep_index
        self.recovery = recovery
        self.features = None
        self.source = None

    def __call__(self, x, extra_options):
        self.features = x
        if self.recovery == "similarity":
            self.source = recovery_source(x, self.keep_index)
        return gather_tokens(x, self.keep_index)

    def recover(self, kept_out):
        if self.recovery == "similarity":
            return recover_similarity(kept_out, self.source)
        return recover_passthrough(self.features.to(kept_out.dtype), self.keep_index, kept_out)


def _with_last_middle_patch(transformer_options, patch):
    """A copy of transformer_options whose middle_patch list ends with `patch` (the original is not modified)."""
    options = dict(transformer_options)
    patches = dict(options.get("patches", {}))
    patches["middle_patch"] = list(patches.get("middle_patch", [])) + [patch]
    options["patches"] = patches
    return options


class PrunedSpatialTransformer(SpatialTransformer):
    """A SpatialTransformer (so ComfyUI's forward_timestep_embed passes context and transformer_options to it) that
    shares the original's children and prunes tokens when its stage is scheduled to."""

    def __init__(self, original, stage, stage_index, settings):
        torch.nn.Module.__init__(self)  # children are shared, not rebuilt: SpatialTransformer.__init__ would allocate
        for name, child in original.named_children():
            self.add_module(name, child)
        self.in_channels = original.in_channels
        self.use_linear = original.use_linear
        object.__setattr__(self, "original", original)  # unregistered: keys stay those of the shared children
        self.stage = stage
        self.stage_index = stage_index
        self.settings = settings

    def forward(self, x, context=None, transformer_options={}):
        b, c, h, w = x.shape
        ratio = _scheduled_ratio(self.settings, self.stage, h * w, transformer_options)
        if ratio == 0.0:
            return SpatialTransformer.forward(self, x, context, transformer_options)
        # The stage skeleton (norm, proj_in, blocks, proj_out, residual) mirrors SpatialTransformer.forward because the
        # prune/recover steps must sit inside it; the blocks themselves are ComfyUI's modules, called unchanged.
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
        pruner = StagePruner(self._keep_index(x, ratio), self.settings.recovery)
        for i, block in enumerate(blocks):
            transformer_options["block_index"] = i
            options = _with_last_middle_patch(transformer_options, pruner) if i == 0 else transformer_options
            x = block(x, context=context[i], transformer_options=options)
        x = pruner.recover(x)
        if self.use_linear:
            x = self.proj_out(x)
        x = x.reshape(x.shape[0], h, w, x.shape[-1]).movedim(3, 1).contiguous()
        if not self.use_linear:
            x = self.proj_out(x)
        return x + x_in

    def _keep_index(self, tokens, ratio):
        block = self.transformer_blocks[0]
        attn = block.attn1
        normed = block.norm1(tokens)
        q = split_heads(attn.to_q(normed), attn.heads)
        k = split_heads(attn.to_k(normed), attn.heads)
        rows = score_query_rows(tokens.shape[1], self.settings.score_queries, self.stage_index, tokens.device)
        scores = gwpr_scores(q, k, self.settings.iterations, query_index=rows)
        return keep_index_for(scores, ratio)


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


def _dsap_outer_sample(executor, *args, **kwargs):
    """Per run: the sigma below which DSAP stops sparing the protected stages, from the model_sampling this run uses
    (global progress via percent_to_sigma, so split / advanced sampler runs see the same schedule)."""
    guider = executor.class_obj
    original_options = guider.model_options
    guider.model_options = comfy.model_patcher.create_model_options_clone(original_options)
    transformer_options = guider.model_options["transformer_options"]
    sampling = guider.model_patcher.get_model_object("model_sampling")
    transformer_options[DSAP_SIGMA_KEY] = sampling.percent_to_sigma(transformer_options[WRAPPER_KEY].dsap_percent)
    try:
        return executor(*args, **kwargs)
    finally:
        guider.model_options = original_options


def apply_token_prune(model, settings):
    """A clone of the ModelPatcher `model` with every prunable UNet stage replaced by a PrunedSpatialTransformer,
    or, on Flux / WAN, with a pruned block range (apply_dit_token_prune)."""
    settings.validate()
    family = require_family("token_prune", model.model)
    if family in _DIT_HOSTS:
        return apply_dit_token_prune(model, settings, family)
    diffusion_model = model.get_model_object("diffusion_model")
    entries = [(path, section, level) for path, section, level in unet_stage_paths(diffusion_model)
               if _prunable(model.get_model_object(path))]
    stages = classify_stages([(section, level) for _, section, level in entries])
    if settings.levels is not None and not any(stage.level in settings.levels for stage in stages):
        present = sorted({stage.level for stage in stages})
        raise ValueError(f"token_prune: levels {','.join(map(str, settings.levels))} select no attention stage of "
                         f"this model; its attention stages are at downsample {','.join(map(str, present))}")
    patched = model.clone()
    for index, ((path, _, _), stage) in enumerate(zip(entries, stages)):
        original = model.get_model_object(path)
        if isinstance(original, PrunedSpatialTransformer):  # a TokenPrune earlier in the chain: replace its settings
            original = original.original
        patched.add_object_patch(path, PrunedSpatialTransformer(original, stage, index, settings))
    patched.model_options["transformer_options"][WRAPPER_KEY] = settings
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, WRAPPER_KEY, _dsap_outer_sample)
    logging.info("TokenPrune: %d attention stages patched (ratio %.2f, dsap %s)", len(entries), settings.ratio,
                 "on" if settings.dsap else "off")
    return patched


# --- DiTs (Flux, WAN): a pruned block range through patches_replace["dit"] ----------------------------------------
#
# Blocks block_start..block_end (inclusive) run on the kept image / video tokens only. At block_start the tokens are
# ranked by G-WPR over that block's own image-to-image self-attention (q/k recomputed from its modules, RoPE
# included), then its input is gathered together with everything that is per token: the rotary table of the kept
# tokens (Flux `pe`: text part kept whole; WAN `freqs`) and WAN 2.2 TI2V's per-frame modulation `vec`, expanded to
# one row per token first. After block_end every pruned token gets its own input features plus the update of its
# most similar kept token (accel_core.token_prune.recover_residual). DSAP on a DiT: the whole range is not pruned
# during the first dsap_percent of sampling.

RANGE_KEY = "freeaccel_token_prune_range"  # transformer_options key of the range state of the current model call
CONTROL_KEY = "freeaccel_token_prune_control"  # set for model calls that carry a ControlNet (Flux adds per token)
DIT_STAGE = Stage(level=1, dsap_protected=True)  # a DiT range is one stage at the latent's token resolution


def _flux_image_qk(block, args):
    """q, k [B, H, N, D] of a Flux double block's image stream, RoPE applied, computed with the block's modules."""
    img, vec, pe = args["img"], args["vec"], args["pe"]
    mod = block.img_mod(vec)[0] if block.modulation else vec[0][0]
    normed = apply_mod(block.img_norm1(img), 1 + mod.scale, mod.shift)
    qkv = block.img_attn.qkv(normed)
    q, k, v = qkv.view(img.shape[0], img.shape[1], 3, block.num_heads, -1).permute(2, 0, 3, 1, 4)
    q, k = block.img_attn.norm(q, k, v)
    if pe is not None:
        q, k = apply_rope(q, k, pe[:, :, args["txt"].shape[1]:])
    return q, k


def _wan_token_modulation(vec, x):
    """WAN's e0 with one row per token ([B, L, 6, C]) when it varies along the sequence (WAN 2.2 TI2V: one row per
    latent frame), expanded exactly as the block does it; None when it is one row per sample."""
    return repeat_e(vec, x) if vec.shape[1] > 1 else None


def _wan_qk(block, args):
    """q, k [B, H, L, D] of a WAN block's self-attention, RoPE applied, computed with the block's modules."""
    x, freqs = args["img"], args["pe"]
    vec = _wan_token_modulation(args["vec"], x)
    vec = args["vec"] if vec is None else vec
    modulation = comfy.model_management.cast_to(block.modulation, dtype=x.dtype, device=x.device).unsqueeze(0)
    shift, scale = (modulation + vec).unbind(2)[:2]
    normed = torch.addcmul(shift, block.norm1(x), 1 + scale)
    attn = block.self_attn
    b, s = x.shape[:2]
    q = apply_rope1(attn.norm_q(attn.q(normed)).view(b, s, attn.num_heads, attn.head_dim), freqs)
    k = apply_rope1(attn.norm_k(attn.k(normed)).view(b, s, attn.num_heads, attn.head_dim), freqs)
    return q.transpose(1, 2), k.transpose(1, 2)


def _flux_kept_args(args, keep_index):
    """The per-token arguments of a Flux double block restricted to the kept image tokens (text rows untouched)."""
    pe = args["pe"]
    if pe is not None:
        text = args["txt"].shape[1]
        pe = pe.expand(keep_index.shape[0], *pe.shape[1:])
        pe = torch.cat((pe[:, :, :text], gather_tokens(pe[:, 0, text:], keep_index).unsqueeze(1)), dim=2)
    return {"pe": pe}


def _wan_kept_args(args, keep_index):
    """The per-token arguments of a WAN block restricted to the kept tokens: rotary freqs and per-token e0."""
    freqs = args["pe"]
    freqs = gather_tokens(freqs.expand(keep_index.shape[0], *freqs.shape[1:]), keep_index)
    vec = _wan_token_modulation(args["vec"], args["img"])
    return {"pe": freqs, "vec": args["vec"] if vec is None else gather_tokens(vec, keep_index)}


@dataclasses.dataclass(frozen=True)
class _DitHost:
    blocks: str             # attribute of diffusion_model holding the prunable blocks ("double_block" keys)
    description: str        # what the blocks are called in messages
    default_range: object   # block count -> inclusive default (first, last)
    qk: object              # (block, args) -> q, k of the block's image self-attention
    kept_args: object       # (args, keep_index) -> replaced per-token args for the pruned blocks


# Defaults (ours): the first block never prunes (its input is the bare patch embedding, whose attention ranks
# tokens poorly) and on WAN the last block runs on every token before the output head. Flux prunes inside its
# double-stream blocks only: the single-stream blocks see text and image concatenated.
_DIT_HOSTS = {
    "flux": _DitHost("double_blocks", "Flux double-stream blocks", lambda n: (min(1, n - 1), n - 1),
                     _flux_image_qk, _flux_kept_args),
    "wan": _DitHost("blocks", "WAN blocks", lambda n: (min(1, n - 1), max(min(1, n - 1), n - 2)),
                    _wan_qk, _wan_kept_args),
}


class _SharedBlock:
    """The range's first block, shared rather than copied when ComfyUI deep-copies model_options on clone() (a
    copy would duplicate the weights and miss later weight patches such as LoRAs)."""

    def __init__(self, module):
        self.module = module

    def __deepcopy__(self, memo):
        return self


class _RangeState:
    """One model call's pruned range: the keep index, the replaced per-token args and what recovery needs."""

    def __init__(self, host, block, args, settings, first, ratio):
        img = args["img"]
        q, k = host.qk(block, args)
        rows = score_query_rows(img.shape[1], settings.score_queries, first, img.device)
        self.keep_index = keep_index_for(gwpr_scores(q, k, settings.iterations, query_index=rows), ratio)
        self.kept_args = host.kept_args(args, self.keep_index)
        self.features = img
        self.source = recovery_source(img, self.keep_index) if settings.recovery == "similarity" else None

    def pruned(self, args):
        return dict(args, img=gather_tokens(args["img"], self.keep_index), **self.kept_args)

    def restricted(self, args):
        return dict(args, **self.kept_args)

    def recover(self, kept_out):
        if self.source is None:
            return recover_passthrough(self.features.to(kept_out.dtype), self.keep_index, kept_out)
        return recover_residual(self.features, self.keep_index, kept_out, self.source)


def _range_ratio(settings, args, transformer_options):
    if transformer_options.get(CONTROL_KEY) or args.get("attn_mask") is not None:
        return 0.0  # ControlNet residuals and attention masks address every token: this call runs unpruned
    return _scheduled_ratio(settings, DIT_STAGE, args["img"].shape[1], transformer_options)


def _dit_block(host, settings, block, first, last, index, args, extra, previous=None):
    """patches_replace["dit"] replacement of block `index` of the range first..last (`block`: the _SharedBlock of
    the range's first block, whose modules score the tokens); chains to `previous`, the replacement installed
    before it, if any."""
    original = extra["original_block"]

    def run(block_args):
        return previous(block_args, extra) if previous is not None else original(block_args)

    options = args["transformer_options"]
    if index == first:
        ratio = _range_ratio(settings, args, options)
        options[RANGE_KEY] = _RangeState(host, block.module, args, settings, first, ratio) if ratio > 0.0 else None
    state = options.get(RANGE_KEY)
    if state is None:
        return run(args)
    out = run(state.pruned(args) if index == first else state.restricted(args))
    if index == last:
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


def apply_dit_token_prune(model, settings, family):
    """A clone of the ModelPatcher `model` (Flux or WAN) whose block range prunes tokens."""
    diffusion_model = model.get_model_object("diffusion_model")
    if family == "wan" and type(diffusion_model) is not WanModel:
        raise ValueError(f"token_prune: {type(diffusion_model).__name__} is not supported (VACE and other WAN "
                         "variants add per-token hints between blocks); use a WAN 2.1 / 2.2 T2V, I2V or TI2V model")
    host = _DIT_HOSTS[family]
    blocks = getattr(diffusion_model, host.blocks)
    first, last = resolve_block_range(settings.block_start, settings.block_end, host.default_range(len(blocks)),
                                      len(blocks), host.description)
    patched = model.clone()
    dit = patched.model_options.get("transformer_options", {}).get("patches_replace", {}).get("dit", {})
    for key, replacement in list(dit.items()):
        if isinstance(replacement, functools.partial) and replacement.func is _dit_block:
            # an earlier TokenPrune in the chain (its range state would collide with ours): this one replaces it
            if replacement.keywords["previous"] is None:
                del dit[key]
            else:
                dit[key] = replacement.keywords["previous"]
    first_block = _SharedBlock(blocks[first])
    for index in range(first, last + 1):
        replacement = functools.partial(_dit_block, host, settings, first_block, first, last, index,
                                        previous=dit.get(("double_block", index)))
        patched.set_model_patch_replace(replacement, "dit", "double_block", index)
    patched.model_options["transformer_options"][WRAPPER_KEY] = settings
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, WRAPPER_KEY, _dsap_outer_sample)
    if family == "flux":
        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, WRAPPER_KEY,
                                     _control_apply_model)
    logging.info("TokenPrune: %s %d..%d prune (ratio %.2f, dsap %s)", host.description, first, last,
                 settings.ratio, "on" if settings.dsap else "off")
    return patched


class TokenPruneNode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FreeAccel_TokenPrune",
            display_name="TokenPrune (G-WPR / DSAP)",
            category="FreeAccel/pruning",
            description="AT-EDM token pruning for SD1.5 / SDXL: in each selected attention stage, ranks tokens by "
                        "G-WPR (a PageRank over the first self-attention map), runs the rest of the stage on the "
                        "top tokens only and refills the pruned ones from their most similar kept token before the "
                        "convolutions. DSAP spares the outer stages of each level during the first steps. "
                        "Flux / WAN: blocks block_start..block_end run on the top image / video tokens (ranked by "
                        "block_start's self-attention); afterwards each pruned token adds the update of its most "
                        "similar kept token. DSAP there leaves the whole range unpruned during the first steps.",
            inputs=[
                io.Model.Input("model", tooltip="SD1.5 or SDXL (base or refiner), Flux / Chroma or WAN 2.1 / 2.2 "
                                                "model; a patched clone is returned."),
                io.Float.Input("ratio", default=0.5, min=0.0, max=MAX_RATIO, step=0.05,
                               tooltip="Fraction of tokens pruned in each selected stage (0 = unchanged model). "
                                       "AT-EDM's main SD-XL setting prunes about 0.6."),
                io.Combo.Input("dsap", options=["on", "off"], default="on",
                               tooltip="Denoising-steps-aware pruning: during the first dsap_percent of sampling, the "
                                       "first stage of every down level and the last stage of every up level are not "
                                       "pruned (early steps set the layout). off = prune every selected stage always."),
                io.Float.Input("dsap_percent", default=0.3, min=0.0, max=1.0, step=0.05,
                               tooltip="Part of the sampling (0-1, by sigma) during which DSAP spares those stages."),
                io.String.Input("levels", default=AUTO_LEVELS,
                                tooltip="Which resolution levels prune: 'auto' = every stage with at least "
                                        "min_tokens tokens, or downsample factors such as '1,2' (1 = full latent "
                                        "resolution; SDXL has attention at 2 and 4, SD1.5 at 1, 2, 4 and 8; a Flux / "
                                        "WAN block range counts as level 1)."),
                io.Int.Input("min_tokens", default=1024, min=1, max=1 << 20,
                             tooltip="With levels = auto: a stage prunes only when it has at least this many tokens "
                                     "(1024 = 32x32 tokens; at 512x512 SD1.5 that is levels 1 and 2, at 1024x1024 "
                                     "SDXL every attention level)."),
                io.Combo.Input("recovery", options=list(RECOVERY_MODES), default="similarity",
                               tooltip="How pruned tokens are refilled before the convolutions: similarity = copy "
                                       "the output of the most similar kept token (AT-EDM); passthrough = keep their "
                                       "value from pruning time."),
                io.Int.Input("iterations", default=1, min=1, max=10,
                             tooltip="G-WPR power-iteration rounds (each costs one extra pass over the attention "
                                     "scores; 1 = attention each token receives)."),
                io.Float.Input("score_queries", default=0.25, min=0.01, max=1.0, step=0.01,
                               tooltip="Fraction of query rows (seeded random subset) used to estimate the scores; "
                                       "bounds the scoring cost to this fraction of one attention map per round."),
                io.Int.Input("block_start", default=-1, min=-1, max=1000,
                             tooltip="Flux / WAN only: first block that runs on the kept tokens; its self-attention "
                                     "ranks them. Flux counts double-stream blocks (0-18 on Flux dev), WAN its blocks "
                                     "(0-29 on 1.3B / 5B, 0-39 on 14B). -1 = block 1 (the first block always sees "
                                     "every token)."),
                io.Int.Input("block_end", default=-1, min=-1, max=1000,
                             tooltip="Flux / WAN only: last block (inclusive) that runs on the kept tokens; after it "
                                     "the pruned tokens are refilled. -1 = the last double-stream block on Flux, the "
                                     "second-to-last block on WAN."),
            ],
            outputs=[io.Model.Output(tooltip="The model with token pruning applied during sampling.")],
        )

    @classmethod
    def validate_inputs(cls, ratio=0.5, dsap_percent=0.3, levels=AUTO_LEVELS, iterations=1, score_queries=0.25,
                        recovery="similarity", block_start=-1, block_end=-1):
        # defaults stand in for inputs fed by links (unknown until execution, where apply_token_prune re-validates)
        try:
            PruneSettings(ratio=ratio, dsap_percent=dsap_percent, levels=parse_levels(levels),
                          iterations=iterations, score_queries=score_queries, recovery=recovery,
                          block_start=block_start, block_end=block_end).validate()
        except ValueError as err:
            return str(err)
        return True

    @classmethod
    def execute(cls, model, ratio, dsap, dsap_percent, levels, min_tokens, recovery, iterations, score_queries,
                block_start=-1, block_end=-1):
        settings = PruneSettings(ratio=ratio, iterations=iterations, score_queries=score_queries, recovery=recovery,
                                 dsap=dsap == "on", dsap_percent=dsap_percent, levels=parse_levels(levels),
                                 min_tokens=min_tokens, block_start=block_start, block_end=block_end)
        return io.NodeOutput(apply_token_prune(model, settings))


NODES = [TokenPruneNode]
