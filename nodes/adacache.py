"""FreeAccel_AdaCache: ComfyUI glue for AdaCache + MoReg (the algorithm lives in ``accel_core.adacache``).

Hooks, all official: an OUTER_SAMPLE wrapper creates the per-run state and drops it in ``finally``; a CALC_COND_BATCH
wrapper makes one decision per model evaluation (shared by every cond/uncond chunk, batched or not); and
``patches_replace["dit"]`` replacements on every block of the stack measure the metric block, record the stack
residual on computed steps and, on skipped steps, pass the blocks through and add the cached residual at the last
block. Embeddings and the output head still run every step, exactly as in the official per-block caching.
"""
import contextvars
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
from .integration.families import ADAPTERS, stack_blocks
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
    streams: str       # what the token stream holds (integration.families.FamilyAdapter.streams)


def _metric_index(metric_block, block_count):
    if metric_block == -1:
        return block_count // 2
    if metric_block >= block_count:
        raise ValueError(f"metric_block {metric_block} is out of range; this model has {block_count} "
                         f"blocks (0..{block_count - 1}, or -1 for the middle one)")
    return metric_block


def _parts(stream):
    """The tensors of a token stream: LTX-2's (video, audio) pair, or the one tensor."""
    return tuple(stream) if isinstance(stream, (tuple, list)) else (stream,)


def _joined(like, parts):
    return type(like)(parts) if isinstance(like, (tuple, list)) else parts[0]


def _image_tokens(x, role, image_length):
    if role.kind != "single_block":
        return x
    return x[:, x.shape[1] - image_length:] if role.text_first else x[:, :image_length]


def _row_modalities(mod_segments, length, device):
    """MiniMax H3: the modality of every row of the packed sequence (a span's modulation row % 3: 0 video, 1 text,
    2 audio; the row is an int or a per-row tensor)."""
    modality = torch.full((length,), 1, dtype=torch.long, device=device)
    for start, stop, row in mod_segments:
        modality[start:stop] = (row.to(device) if torch.is_tensor(row) else torch.tensor(row, device=device)) % 3
    return modality


def _metric_tokens(role, residuals, args):
    """[(modality, [B, tokens, dim])] of a metric residual: the visual tokens, and the audio tokens apart."""
    if role.streams == "pair":
        return [(adacache.VISUAL, residuals[0]), (adacache.AUDIO, residuals[1])]
    (residual,) = residuals
    if role.streams == "packed":
        modality = _row_modalities(args["mod_segments"], residual.shape[0], residual.device)
        return [(adacache.VISUAL, residual[modality == 0][None]), (adacache.AUDIO, residual[modality == 2][None])]
    return [(adacache.VISUAL, residual.flatten(1, -2))]  # [B, T, H, W, D] blocks (Cosmos) as [B, T*H*W, D]


class _DitRoute:
    """A ``patches_replace["dit"]`` replacement's view of one block call: ``inputs`` is its args dict."""

    def __init__(self, key):
        self.key = key

    def stream(self, args):
        return args[self.key]

    def options(self, args):
        return args.get("transformer_options")

    def output_stream(self, out):
        return out[self.key]

    def passthrough(self, args):
        out = {self.key: args[self.key]}
        if "txt" in args:
            out["txt"] = args["txt"]
        return out

    def with_stream(self, out, stream):
        out[self.key] = stream
        return out


class _ForwardRoute:
    """An object-patched block ``forward``'s view of one block call: ``inputs`` is (args, kwargs)."""

    def __init__(self, call):
        self.call = call

    def _argument(self, inputs, name, position):
        args, kwargs = inputs
        return kwargs[name] if name in kwargs else args[position]

    def stream(self, inputs):
        return self._argument(inputs, *self.call.stream)

    def options(self, inputs):
        return _CURRENT_CALL.get()[1]

    def output_stream(self, out):
        return out if self.call.passthrough is None else out[0]

    def passthrough(self, inputs):
        if self.call.passthrough is None:
            return self.stream(inputs)
        names = self.call.passthrough
        return tuple(self._argument(inputs, name, i) for i, name in enumerate(names))

    def with_stream(self, out, stream):
        return stream if self.call.passthrough is None else (stream, *out[1:])


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
        self.blocks_seen = False

    def finish(self):
        self.stack_input = None
        record = self.run.finish()
        if self.blocks_seen or not record.steps:
            log.info("AdaCache: %s", record.summary)
        else:
            log.warning("AdaCache: no transformer block of this model ran through its hooks in this run (e.g. Wan "
                        "CausalAR's frame-by-frame mode calls its blocks directly), so no step was reused")
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

    def _begin_call(self, parts, transformer_options):
        uuids = transformer_options.get("uuids") or [0]
        cond_or_uncond = transformer_options.get("cond_or_uncond") or [0] * len(uuids)
        for key, kind in zip(uuids, cond_or_uncond):
            self.key_order.setdefault(key, (kind, len(self.key_order)))
        self.chunk_keys = list(uuids)
        self.run.check_metadata(parts[0] if len(parts) == 1 else parts)
        self.stack_input = tuple(p.clone() for p in parts)  # blocks and hooks after them may update it in place
        self.blocks_seen = True
        if not self.run.computing and any(self.run.cached_residual((key, i), chunk) is None
                                          for i, part in enumerate(self.stack_input)
                                          for key, chunk in self._chunks(part)):
            self.run.force_compute()
        self.call_computing = self.run.computing

    def block(self, role, route, inputs, run_block):
        parts = _parts(route.stream(inputs))
        if role.entry:
            self._begin_call(parts, route.options(inputs))
        if self.stack_input is None:  # called outside a stack pass (should not happen): stay transparent
            return run_block(inputs)
        image_length = self.stack_input[0].shape[1]
        if not self.call_computing:
            if not role.exit:
                return route.passthrough(inputs)
            return route.with_stream(route.passthrough(inputs), self._skipped_exit(route.stream(inputs), role))
        before = None
        if role.metric and not role.entry:
            before = tuple(_image_tokens(p, role, image_length).clone() for p in parts)
        out = run_block(inputs)
        after = _parts(route.output_stream(out))
        if role.metric:
            before = self.stack_input if before is None else before
            after_image = tuple(_image_tokens(p, role, image_length) for p in after)
            if after_image[0].shape != before[0].shape:
                raise ValueError(
                    f"{NAME}: the metric block changed the number of image tokens ({before[0].shape[1]} -> "
                    f"{after_image[0].shape[1]}): another patch prunes tokens inside the block stack (e.g. "
                    f"TokenPrune). Apply AdaCache first and the pruning node after it (loader -> AdaCache -> "
                    f"TokenPrune).")
            residuals = tuple(a - b for a, b in zip(after_image, before))
            for modality, tokens in _metric_tokens(role, residuals, inputs if isinstance(inputs, dict) else {}):
                for key, chunk in self._chunks(tokens):
                    self.run.observe_metric(key, chunk, self.frames, modality)
        if role.exit:
            for i, (part, start) in enumerate(zip(after, self.stack_input)):
                for key, chunk in self._chunks(_image_tokens(part, role, image_length) - start):
                    self.run.store_residual((key, i), chunk)
            self.stack_input = None
        return out

    def _skipped_exit(self, stream, role):
        """The stack output of a skipped step: each stream's stack input plus its cached residual."""
        parts = []
        for i, (part, start) in enumerate(zip(_parts(stream), self.stack_input)):
            image = torch.cat([chunk + self.run.cached_residual((key, i), chunk) for key, chunk in self._chunks(start)])
            if role.kind == "single_block":
                text = part[:, :part.shape[1] - image.shape[1]] if role.text_first else part[:, image.shape[1]:]
                image = torch.cat((text, image) if role.text_first else (image, text), dim=1)
            parts.append(image)
        self.stack_input = None
        return _joined(stream, parts)


def _calc_cond_batch_wrapper(executor, *args, **kwargs):
    context = run_state(args[-1].get("transformer_options"), KEY)
    if context is None:
        return executor(*args, **kwargs)
    context.begin_step(args[2], args[3])
    out = executor(*args, **kwargs)
    context.run.end_step()
    return out


def _dit_block(role, route, args, run_block):
    context = run_state(args.get("transformer_options"), KEY)
    if context is None:
        return run_block(args)
    return context.block(role, route, args, run_block)


# (run context, transformer_options) of the model call in progress, for blocks patched through their forward, which
# not every model passes transformer_options to; set by the APPLY_MODEL wrapper
_CURRENT_CALL = contextvars.ContextVar("freeaccel_adacache_call", default=(None, None))


def _apply_model_wrapper(executor, *args, **kwargs):
    options = args[5]  # apply_model(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
    token = _CURRENT_CALL.set((run_state(options, KEY), options))
    try:
        return executor(*args, **kwargs)
    finally:
        _CURRENT_CALL.reset(token)


def _forward_block(role, route, run_forward, *args, **kwargs):
    context = _CURRENT_CALL.get()[0]
    if context is None:
        return run_forward(*args, **kwargs)
    return context.block(role, route, (args, kwargs), lambda inputs: run_forward(*inputs[0], **inputs[1]))


def _install(installer: Installer, settings: AdaCacheSettings, family: str) -> None:
    if settings.moreg and not is_video(family):
        raise ValueError(f"MoReg measures motion between latent frames, but {FAMILIES[family][0]} makes "
                         "single images; turn moreg off for this model")
    adapter = ADAPTERS[family]
    blocks = stack_blocks(family, installer.patcher.get_model_object("diffusion_model"))
    if not blocks:
        raise ValueError(f"found no transformer blocks in this {FAMILIES[family][0]} model")
    metric = _metric_index(settings.metric_block, len(blocks))
    dit = _DitRoute(adapter.stream)
    for i, (attribute, kind, index) in enumerate(blocks):
        role = _BlockRole(kind, entry=i == 0, exit=i == len(blocks) - 1, metric=i == metric,
                          text_first=adapter.text_first, streams=adapter.streams)
        if attribute in adapter.forward:
            installer.forward_patch(f"diffusion_model.{attribute}.{index}",
                                    functools.partial(_forward_block, role, _ForwardRoute(adapter.forward[attribute])))
        else:
            installer.block(kind, index, functools.partial(_dit_block, role, dit))
    installer.run_state(functools.partial(_RunContext, settings))
    installer.wrapper(comfy.patcher_extension.WrappersMP.CALC_COND_BATCH, _calc_cond_batch_wrapper)
    if adapter.forward:
        installer.wrapper(comfy.patcher_extension.WrappersMP.APPLY_MODEL, _apply_model_wrapper)


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
                io.Model.Input("model", tooltip="An image or video DiT: Flux(.2), Z-Image, Qwen-Image, WAN 2.1/2.2 "
                                                "and its variants, HunyuanVideo (1.5), LTX-Video, LTX-2, MiniMax H3, "
                                                "CogVideoX, ... (docs/support.md). A patched clone is returned."),
                *settings_inputs(AdaCacheSettings),
            ],
            outputs=[io.Model.Output(tooltip="The model with AdaCache installed.")],
        )

    validate_inputs = settings_validator(AdaCacheSettings, NAME)

    @classmethod
    def execute(cls, model, **inputs):
        return io.NodeOutput(apply_adacache(model, from_inputs(AdaCacheSettings, inputs)))


NODES = [AdaCacheNode]
