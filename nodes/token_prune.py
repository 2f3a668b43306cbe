"""FreeAccel_TokenPrune: AT-EDM attention-driven token pruning (G-WPR ranking, similarity recovery, DSAP) for the
SD1.5 / SDXL UNet.

Hook: every SpatialTransformer of the UNet is replaced, through an object patch on a model clone, by a
PrunedSpatialTransformer that registers the SAME child modules under the SAME names (so state-dict, LoRA and
weight-loading keys are unchanged and ComfyUI still moves / patches those weights) and only swaps the forward.
ComfyUI's unpatch_model puts the original modules back after the run.
"""
import logging

import torch
from comfy_api.v0_0_2 import io
import comfy.model_patcher
import comfy.patcher_extension
from comfy.ldm.modules.attention import SpatialTransformer
from comfy.ldm.modules.diffusionmodules.openaimodel import Downsample, Upsample

from ..accel_core.families import require_family
from ..accel_core.token_prune import (
    AUTO_LEVELS, MAX_RATIO, RECOVERY_MODES, PruneSettings, classify_stages, gwpr_scores, keep_index_for,
    parse_levels, recover_passthrough, recover_similarity, recovery_source, score_query_rows,
)
from ..kernels.attention import split_heads
from ..kernels.tokens import gather_tokens

# transformer_options key of the per-run DSAP threshold sigma (set by the OUTER_SAMPLE wrapper)
DSAP_SIGMA_KEY = "freeaccel_token_prune_dsap_sigma"
WRAPPER_KEY = "freeaccel_token_prune"


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

    def _ratio(self, tokens, transformer_options):
        sigmas = transformer_options.get("sigmas")
        dsap_sigma = transformer_options.get(DSAP_SIGMA_KEY)
        needs_sigma = self.settings.dsap and self.stage.dsap_protected and sigmas is not None
        sigma = float(sigmas.max()) if needs_sigma else 0.0
        return self.settings.stage_ratio(self.stage, tokens, sigma, dsap_sigma if needs_sigma else None)

    def forward(self, x, context=None, transformer_options={}):
        b, c, h, w = x.shape
        ratio = self._ratio(h * w, transformer_options)
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
    """A clone of the ModelPatcher `model` with every prunable UNet stage replaced by a PrunedSpatialTransformer."""
    settings.validate()
    require_family("token_prune", model.model)
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
                        "convolutions. DSAP spares the outer stages of each level during the first steps.",
            inputs=[
                io.Model.Input("model", tooltip="SD1.5 or SDXL (base or refiner) model; a patched clone is returned."),
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
                                        "resolution; SDXL has attention at 2 and 4, SD1.5 at 1, 2, 4 and 8)."),
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
            ],
            outputs=[io.Model.Output(tooltip="The model with token pruning applied during sampling.")],
        )

    @classmethod
    def validate_inputs(cls, ratio=0.5, dsap_percent=0.3, levels=AUTO_LEVELS, iterations=1, score_queries=0.25,
                        recovery="similarity"):
        # defaults stand in for inputs fed by links (unknown until execution, where apply_token_prune re-validates)
        try:
            PruneSettings(ratio=ratio, dsap_percent=dsap_percent, levels=parse_levels(levels),
                          iterations=iterations, score_queries=score_queries, recovery=recovery).validate()
        except ValueError as err:
            return str(err)
        return True

    @classmethod
    def execute(cls, model, ratio, dsap, dsap_percent, levels, min_tokens, recovery, iterations, score_queries):
        settings = PruneSettings(ratio=ratio, iterations=iterations, score_queries=score_queries, recovery=recovery,
                                 dsap=dsap == "on", dsap_percent=dsap_percent, levels=parse_levels(levels),
                                 min_tokens=min_tokens)
        return io.NodeOutput(apply_token_prune(model, settings))


NODES = [TokenPruneNode]
