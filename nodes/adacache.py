"""FreeAccel_AdaCache: ComfyUI glue for AdaCache + MoReg (the algorithm lives in ``accel_core.adacache``).

Hooks, all official: an OUTER_SAMPLE wrapper creates the per-run state and drops it in ``finally``; a CALC_COND_BATCH
wrapper makes one decision per model evaluation (shared by every cond/uncond chunk, batched or not); and
``patches_replace["dit"]`` replacements on every block of the stack measure the metric block, record the stack
residual on computed steps and, on skipped steps, pass the blocks through and add the cached residual at the last
block. Embeddings and the output head still run every step, exactly as in the official per-block caching.
"""
import dataclasses
import functools
import logging

import torch
from comfy_api.v0_0_2 import io
import comfy.patcher_extension

from ..accel_core import adacache
from ..accel_core.adacache import AdaCacheSettings
from ..accel_core.families import FAMILIES, is_video, require_family
from .integration.blocks import chain_block_replacement
from .integration.families import ADAPTERS, block_keys
from .integration.run_state import install_run_hook, run_state
from .integration.steps import SigmaWindow, call_sigma

log = logging.getLogger(__name__)

KEY = "freeaccel_adacache"  # wrapper, block-replacement owner and run-state key

@dataclasses.dataclass(frozen=True)
class _BlockRole:
    kind: str          # "double_block" | "single_block"
    entry: bool        # first block of the stack: its input is the stack input
    exit: bool         # last block: its output gives the stack residual
    metric: bool       # distance and motion are measured on this block's residual
    text_first: bool   # layout of concatenated tokens in single-stream blocks


def _metric_index(metric_block, block_count):
    if metric_block == -1:
        return block_count // 2
    if metric_block >= block_count:
        raise ValueError(f"AdaCache: metric_block {metric_block} is out of range; this model has {block_count} "
                         f"blocks (0..{block_count - 1}, or -1 for the middle one)")
    return metric_block


def _image_tokens(x, role, image_length):
    if role.kind != "single_block":
        return x
    return x[:, x.shape[1] - image_length:] if role.text_first else x[:, :image_length]


def _pass_through(args):
    out = {"img": args["img"]}
    if "txt" in args:
        out["txt"] = args["txt"]
    return out


class _RunContext:
    """One sampling run: the host-agnostic AdaCacheRun plus what the ComfyUI hooks need between calls."""

    def __init__(self, settings, model_sampling, sample_sigmas):
        self.sigmas = [float(s) for s in sample_sigmas]
        steps = len(self.sigmas) - 1
        codebook = adacache.resolve_codebook(
            settings.preset, settings.custom_codebook,
            adacache.effective_steps(model_sampling.percent_to_sigma, self.sigmas))
        self.key_order = {}
        self.run = adacache.AdaCacheRun(
            codebook, steps, settings.moreg_config(), storage_device=torch.device("cpu") if settings.offload else None,
            key_order=lambda key: self.key_order[key], reuse=settings.reuse,
            reduce_sums=adacache.process_group_sum())
        self.window = SigmaWindow(model_sampling, settings.start_percent, settings.end_percent)
        self.frames = 1
        self.call_computing = True
        self.stack_input = None
        self.chunk_keys = []

    def finish(self):
        self.stack_input = None
        record = self.run.finish()
        log.info("AdaCache: %s", record.summary)
        return record

    def step_index(self, sigma):
        """Index of the schedule interval that ``sigma`` falls in (exact for evaluations at schedule sigmas)."""
        index = 0
        for i, s in enumerate(self.sigmas[:-1]):
            if s >= sigma:
                index = i
        return index

    def begin_step(self, x_in, timestep):
        sigma = call_sigma(timestep)
        self.frames = x_in.shape[2] if x_in.ndim == 5 else 1
        self.run.begin_step(self.step_index(sigma), self.window.contains(sigma), sigma)

    # --- per model call ----------------------------------------------------------------------------------------------
    def _chunks(self, x):
        size = x.shape[0] // len(self.chunk_keys)
        return [(key, x[i * size:(i + 1) * size]) for i, key in enumerate(self.chunk_keys)]

    def _begin_call(self, img, transformer_options):
        uuids = transformer_options.get("uuids") or [0]
        cond_or_uncond = transformer_options.get("cond_or_uncond") or [0] * len(uuids)
        for key, kind in zip(uuids, cond_or_uncond):
            self.key_order.setdefault(key, (kind, len(self.key_order)))
        self.chunk_keys = list(uuids)
        self.run.check_metadata(img)
        self.stack_input = img.clone()  # blocks and hooks after them may update their input in place
        if not self.run.computing and any(self.run.cached_residual(key, chunk) is None
                                          for key, chunk in self._chunks(self.stack_input)):
            self.run.force_compute()
        self.call_computing = self.run.computing

    def block(self, role, args, run_block):
        img = args["img"]
        if role.entry:
            self._begin_call(img, args["transformer_options"])
        if self.stack_input is None:  # called outside a stack pass (should not happen): stay transparent
            return run_block(args)
        image_length = self.stack_input.shape[1]
        if not self.call_computing:
            return self._skipped_exit(args, role) if role.exit else _pass_through(args)
        before = _image_tokens(img, role, image_length).clone() if role.metric and not role.entry else None
        out = run_block(args)
        if role.metric:
            before = self.stack_input if before is None else before
            after = _image_tokens(out["img"], role, image_length)
            if after.shape != before.shape:
                raise ValueError(
                    f"AdaCache: the metric block changed the number of image tokens ({before.shape[1]} -> "
                    f"{after.shape[1]}): another patch prunes tokens inside the block stack (e.g. TokenPrune). "
                    f"Apply AdaCache first and the pruning node after it (loader -> AdaCache -> TokenPrune).")
            residual = after - before
            for key, chunk in self._chunks(residual):
                self.run.observe_metric(key, chunk, self.frames)
        if role.exit:
            residual = _image_tokens(out["img"], role, image_length) - self.stack_input
            for key, chunk in self._chunks(residual):
                self.run.store_residual(key, chunk)
            self.stack_input = None
        return out

    def _skipped_exit(self, args, role):
        image = torch.cat([chunk + self.run.cached_residual(key, chunk)
                           for key, chunk in self._chunks(self.stack_input)])
        self.stack_input = None
        out = _pass_through(args)
        if role.kind == "single_block":
            x = args["img"]
            text = x[:, :x.shape[1] - image.shape[1]] if role.text_first else x[:, image.shape[1]:]
            image = torch.cat((text, image) if role.text_first else (image, text), dim=1)
        out["img"] = image
        return out


def _calc_cond_batch_wrapper(executor, *args, **kwargs):
    context = run_state(args[-1].get("transformer_options"), KEY)
    if context is None:
        return executor(*args, **kwargs)
    context.begin_step(args[2], args[3])
    out = executor(*args, **kwargs)
    context.run.end_step()
    return out


def _block(role, args, run_block):
    context = run_state(args.get("transformer_options"), KEY)
    if context is None:
        return run_block(args)
    return context.block(role, args, run_block)


def apply_adacache(model, settings):
    """A clone of ModelPatcher ``model`` with AdaCache installed (raises for unsupported models or settings)."""
    error = settings.error()
    if error is not None:
        raise ValueError(f"AdaCache: {error}")
    family = require_family("adacache", model.model)
    if settings.moreg and not is_video(family):
        raise ValueError(f"AdaCache: MoReg measures motion between latent frames, but {FAMILIES[family][0]} makes "
                         "single images; turn moreg off for this model")
    keys = block_keys(family, model.get_model_object("diffusion_model"))
    if not keys:
        raise ValueError(f"AdaCache: found no transformer blocks in this {FAMILIES[family][0]} model")
    metric = _metric_index(settings.metric_block, len(keys))
    patched = model.clone()
    for i, (kind, index) in enumerate(keys):
        role = _BlockRole(kind, entry=i == 0, exit=i == len(keys) - 1, metric=i == metric,
                          text_first=ADAPTERS[family].text_first)
        chain_block_replacement(patched, kind, index, functools.partial(_block, role), KEY)
    install_run_hook(patched, KEY, functools.partial(_RunContext, settings))
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.CALC_COND_BATCH, KEY, _calc_cond_batch_wrapper)
    return patched


_DEFAULTS = AdaCacheSettings()
_DESCRIPTION = (
    "AdaCache (Kahatapitiya et al., ICCV 2025): reuses the whole transformer block stack for a number of steps that "
    "depends on how fast the content changes, measured at one block (the metric block). The first two and last two "
    "steps of every sampler run, and steps outside start/end percent, are always computed. MoReg (video only) "
    "computes more often when motion rises. Presets are codebooks tuned for 30 or 100 steps; "
    "for other step counts N their thresholds are multiplied by reference/N and their reuse counts by N/reference "
    "(rounded, at least 1). N is the step density of the whole schedule: a KSamplerAdvanced or WAN 2.2 high/low-noise "
    "segment counts as many steps as the full schedule it belongs to. A custom codebook is used as written. "
    "The log reports 'AdaCache: computed X of Y steps (rates ...)' after each run. Under torch.distributed "
    "sequence parallelism the distance is summed over all processes, so every process takes the same decision.")


class AdaCacheNode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FreeAccel_AdaCache",
            display_name="AdaCache + MoReg",
            category="FreeAccel/caching",
            is_experimental=True,  # until measured on real weights
            description=_DESCRIPTION,
            inputs=[
                io.Model.Input("model", tooltip="A WAN 2.1/2.2, HunyuanVideo, LTX-Video, Mochi, Flux/Chroma or "
                                                "Qwen-Image model. A patched clone is returned."),
                io.Combo.Input("preset", options=[*adacache.PRESETS, adacache.CUSTOM], default=_DEFAULTS.preset,
                               tooltip="Codebook (distance threshold -> steps to reuse), scaled to your step count. "
                                       "fast_30 / slow_30: official 30-step tables; medium_30: ours, between them; "
                                       "fast_100: official 100-step table; custom: use custom_codebook. On the "
                                       "bench's trained tiny WAN (worst case of 8 clips): slow_30 computes 1 step in "
                                       "1.7 at 37.8 dB, medium_30 + MoReg 1 in 2.1 at 36.0 dB, fast_30 + MoReg 1 in "
                                       "3.0 at 33.7 dB."),
                io.String.Input("custom_codebook", default=_DEFAULTS.custom_codebook,
                                tooltip="Used when preset is custom, as written (no scaling): comma-separated "
                                        "threshold:rate pairs with ascending thresholds; a distance below a "
                                        "threshold reuses the stack for that many steps (1 = compute every step). "
                                        "'1.00:1' never reuses."),
                io.Int.Input("metric_block", default=_DEFAULTS.metric_block, min=-1, max=1000,
                             tooltip="Block whose residual change measures the content change (-1 = the middle "
                                     "block, as in the paper). Blocks are counted double-stream first, then "
                                     "single-stream."),
                io.Boolean.Input("moreg", default=_DEFAULTS.moreg,
                                 tooltip="Motion regularisation (video models only): frame-to-frame differences of "
                                         "the metric residual raise the distance when they rise, so the steps where "
                                         "motion forms are computed."),
                io.Float.Input("start_percent", default=_DEFAULTS.start_percent, min=0.0, max=1.0, step=0.01,
                               tooltip="Sampling progress before which every step is computed."),
                io.Float.Input("end_percent", default=_DEFAULTS.end_percent, min=0.0, max=1.0, step=0.01,
                               tooltip="Sampling progress after which every step is computed."),
                io.Boolean.Input("offload", default=_DEFAULTS.offload,
                                 tooltip="Keep the cached residuals in CPU memory instead of next to the "
                                         "activations (saves VRAM, costs a copy per step)."),
                io.Combo.Input("reuse", options=list(adacache.REUSE_MODES), default=_DEFAULTS.reuse,
                               tooltip="What a skipped step adds to the block-stack input: hold = the residual of the "
                                       "last computed step (the paper); linear = that residual extrapolated in sigma "
                                       "from the last two computed steps (keeps two residuals per conditioning)."),
                io.Combo.Input("moreg_reference", options=list(adacache.MOREG_REFERENCES),
                               default=_DEFAULTS.moreg_reference,
                               tooltip="What MoReg divides the motion score by. fixed = moreg_normaliser (the paper; "
                                       "below it MoReg makes the node reuse more); run_minimum = the smallest score "
                                       "of this run so far (ours): MoReg only adds computed steps, where motion "
                                       "rises."),
                io.Float.Input("moreg_normaliser", default=_DEFAULTS.moreg_normaliser, min=0.001, max=10.0,
                               step=0.001,
                               tooltip="Advanced. With moreg_reference fixed, MoReg's motion score m is used as "
                                       "(m / normaliser) ^ exponent; the official value is 0.385."),
                io.Float.Input("moreg_exponent", default=_DEFAULTS.moreg_exponent, min=0.1, max=32.0, step=0.1,
                               tooltip="Advanced. Exponent of the MoReg motion factor; the official value is 8."),
            ],
            outputs=[io.Model.Output(tooltip="The model with AdaCache installed.")],
        )

    @classmethod
    def validate_inputs(cls, preset=_DEFAULTS.preset, custom_codebook=_DEFAULTS.custom_codebook,
                        metric_block=_DEFAULTS.metric_block, start_percent=_DEFAULTS.start_percent,
                        end_percent=_DEFAULTS.end_percent, moreg_normaliser=_DEFAULTS.moreg_normaliser,
                        moreg_exponent=_DEFAULTS.moreg_exponent):
        # Only the inputs the checks read, so ComfyUI still range-checks the others; an input fed by a link is
        # unknown here and keeps its default (execute checks again).
        error = AdaCacheSettings(preset=preset, custom_codebook=custom_codebook, metric_block=metric_block,
                                 start_percent=start_percent, end_percent=end_percent,
                                 moreg_normaliser=moreg_normaliser, moreg_exponent=moreg_exponent).error()
        return True if error is None else error

    @classmethod
    def execute(cls, model, **inputs):
        return io.NodeOutput(apply_adacache(model, AdaCacheSettings(**inputs)))


NODES = [AdaCacheNode]
