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
from ..accel_core.families import FAMILIES, is_video
from ..accel_core.settings import from_inputs
from .integration.families import ADAPTERS, block_keys
from .integration.install import Installer, apply, technique
from .integration.run_state import run_state
from .integration.schema import settings_inputs, settings_validator
from .integration.steps import SigmaWindow, call_sigma

log = logging.getLogger(__name__)

KEY = "freeaccel_adacache"  # owner of everything installed, and the run-state key
NAME = "AdaCache + MoReg"  # the node's display name, the prefix of its messages

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
        raise ValueError(f"metric_block {metric_block} is out of range; this model has {block_count} "
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
        effective = adacache.effective_steps(model_sampling.percent_to_sigma, self.sigmas)
        codebook = adacache.resolve_codebook(settings.preset, settings.custom_codebook, effective)
        if settings.preset != adacache.CUSTOM and not codebook.reuses:  # e.g. a 4-step distilled run
            log.info("AdaCache: preset %s scaled to %d effective steps reuses no step; this run computes every step "
                     "(a custom codebook reuses as written)", settings.preset, effective)
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
                    f"{NAME}: the metric block changed the number of image tokens ({before.shape[1]} -> "
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


def _install(installer: Installer, settings: AdaCacheSettings, family: str) -> None:
    if settings.moreg and not is_video(family):
        raise ValueError(f"MoReg measures motion between latent frames, but {FAMILIES[family][0]} makes "
                         "single images; turn moreg off for this model")
    keys = block_keys(family, installer.patcher.get_model_object("diffusion_model"))
    if not keys:
        raise ValueError(f"found no transformer blocks in this {FAMILIES[family][0]} model")
    metric = _metric_index(settings.metric_block, len(keys))
    for i, (kind, index) in enumerate(keys):
        role = _BlockRole(kind, entry=i == 0, exit=i == len(keys) - 1, metric=i == metric,
                          text_first=ADAPTERS[family].text_first)
        installer.block(kind, index, functools.partial(_block, role))
    installer.run_state(functools.partial(_RunContext, settings))
    installer.wrapper(comfy.patcher_extension.WrappersMP.CALC_COND_BATCH, _calc_cond_batch_wrapper)


TECHNIQUE = technique(KEY, NAME, AdaCacheSettings, _install, support="adacache")


def apply_adacache(model, settings: AdaCacheSettings):
    """A clone of ModelPatcher ``model`` with AdaCache installed in place of any earlier AdaCache (raises for
    unsupported models or settings)."""
    return apply(TECHNIQUE, model, settings)


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
            display_name=NAME,
            category="FreeAccel/caching",
            is_experimental=True,  # until measured on real weights
            description=_DESCRIPTION,
            inputs=[
                io.Model.Input("model", tooltip="A WAN 2.1/2.2, HunyuanVideo, LTX-Video, Mochi, Flux/Chroma or "
                                                "Qwen-Image model. A patched clone is returned."),
                *settings_inputs(AdaCacheSettings),
            ],
            outputs=[io.Model.Output(tooltip="The model with AdaCache installed.")],
        )

    validate_inputs = settings_validator(AdaCacheSettings, NAME)

    @classmethod
    def execute(cls, model, **inputs):
        return io.NodeOutput(apply_adacache(model, from_inputs(AdaCacheSettings, inputs)))


NODES = [AdaCacheNode]
