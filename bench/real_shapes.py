"""Real-shape benchmark: each technique on models of the real ComfyUI classes at their real width, head count and head
dim (random weights; the DiTs with only a few blocks), at the token counts users run.

    python -m bench.real_shapes [--full] [--techniques token_prune,local_window] [--families sd15,wan21]
                                [--wan-frames 9,21] [--wan-blocks 2] [--ratios 0.5] [--repeats 1] [--motion-iterations 2]
                                [--dtype auto] [--out bench/out]

Cases, built one at a time and freed before the next (no downloads: config class from ``comfy.supported_models``,
``get_model``, random weights, ``ModelPatcher``, as ``devtools.harness.tiny_models`` builds its models):

- ``wan21``: WAN 2.1 T2V 1.3B width (dim 1536 = 12 heads x 128, ffn 8960), 2 blocks (``--wan-blocks``), 480p: latent 60 x 104 (30 x 52
  tokens per frame) with each of ``--wan-frames`` latent frames; UMT5 text 512 x 4096.
- ``sd15``: the SD1.5 UNet (the real config of ``comfy.model_detection``), 512x512: latent 64 x 64; CLIP 77 x 768.
- ``sdxl``: the SDXL base UNet (real config, full depth), 1024x1024: latent 128 x 128; CLIP 77 x 2048, pooled 1280
  and the size conditioning.
- ``flux``: Flux dev width (hidden 3072 = 24 heads x 128), 2 double + 2 single blocks, 1024x1024: latent 128 x 128
  (64 x 64 tokens); T5 512 x 4096, pooled 768, guidance 3.5.

What is measured, per variant, against the unpatched model in the same process (``bench.benchmark.run_variants``:
runs interleaved, medians over ``--repeats`` timed runs after one untimed run that counts FLOPs and warms up):

- seconds per step: ``comfy.sample.sample`` as KSampler runs it, cfg 1 (ComfyUI then skips the negative prompt, so a
  step is one model call at batch 1), euler, the variant's number of steps; the run's median divided by its steps.
  The baseline runs 1 step. Stateless patches (TokenPrune, core ToMe, LocalWindowAttention, AttentionBackend) run 1
  step too; TokenPrune with DSAP then runs in its DSAP phase (step 1 lies in the first ``dsap_percent`` of the
  schedule, where the outer stages are spared): later steps cost what the DSAP-off row costs. Stateful techniques
  run a short schedule and report its average step: TemporalAttnPrune 2 steps (the first calibrates, the second
  runs pruned), AdaCache ``ADACACHE_STEPS`` steps with a custom codebook that reuses at any distance (random weights
  give no meaningful distances), so it computes the 2 forced first steps, reuses, and computes the 2 forced last.
  Rows named "... on SDPA" apply the technique to the model on torch SDPA (FreeAccel_AttentionBackend sdpa), as a
  fused-attention (GPU) build would run it; compare them in the "vs SDPA" column.
- ``head_patterns``: TemporalAttnPrune mode adaptive on the WAN cases, on SDPA, every block sparse (``dense_blocks``
  0: the case has only 2 of the real model's 30 blocks), pattern sizes at their defaults. Random weights attend
  almost uniformly, so their own decision keeps every head dense; the rows use the assumed ``HEAD_MIXES`` instead.
  "pattern file" rows: one step with the mix loaded from a pattern file (no decision). "N-step run deciding" rows:
  a ``FEW_STEPS``-step cfg-1 run in which the first sparse step takes the sampled-row statistics of every block as a
  real run does and then runs the mix (``assumed_choice``), so the decision's cost is in the run's seconds.
- speedup: baseline seconds per step / variant seconds per step (for a stateful N-step variant, the N-step run's
  seconds / N: its speedup is the whole run's against N unpatched steps).
- ideal: baseline FLOPs per step / variant FLOPs per step (``torch.utils.flop_counter.FlopCounterMode`` with CPU
  attention counted, ``bench.flops``); flex attention cannot be counted (ideal and efficiency are then empty).
- efficiency: speedup / ideal.
- ``motion_transfer``: FastVMT vs DiTFlow guidance on the WAN cases (``FreeAccel_MotionTransferGuider``, amf_block 1,
  a one-step schedule from a moving reference latent, that step guided with ``--motion-iterations`` iterations,
  SDPA attention): guidance seconds = a guided run minus a plain CFG run of the same schedule; the FastVMT row's
  speedup is DiTFlow's guidance seconds / FastVMT's, its ideal the same ratio of FLOPs.

No quality columns: on random weights they say nothing. On a CPU the default dtype is float32 (see ``pick_dtype``).
"""
import argparse
import dataclasses
import gc
import json
import logging
import math
import os
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext

from bench import benchmark
from devtools.harness.comfy_env import BENCH_RUNTIME, PACK_ROOT, boot, find_comfyui

FAMILIES = ("wan21", "sd15", "sdxl", "flux")
TECHNIQUES = ("token_prune", "temporal_prune", "head_patterns", "local_window", "adacache", "attention_backend",
              "motion_transfer")
DEFAULT_OUT = os.path.join(PACK_ROOT, "bench", "out")
JSON_NAME = "real_shapes.json"

# (frames, height, width) inputs of FreeAccel_LocalWindowAttention; window radii (1, 10, 10) and (2, 7, 10)
LOCAL_WINDOWS = ((1, 21, 21), (2, 15, 21))
ADACACHE_STEPS = 6
ADACACHE_CODEBOOK = "1000:3"  # every distance reuses the stack for 3 steps: steps 1-2 computed, 3-4 reused, 5-6 forced
MOTION_AMF_BLOCK = 1
SDPA_VARIANT = "AttentionBackend sdpa"  # the unpatched model on torch SDPA: the kernel reference of every case
# TemporalAttnPrune adaptive: head-pattern mixes (pattern: heads of 12, WAN 1.3B's count), spread over the heads by
# mix_patterns as a model's choice would scatter them (bench.head_sparse_timing spreads its mixes the same way).
# Assumed, not chosen: random weights attend almost uniformly, so a real decision on them keeps every head dense.
# The first is the kernel bench's mixed case, the second one local window for every head (Local Window Attention's
# work, chosen per head).
HEAD_MIXES = (("dense", 1, "frame", 4, "window", 4, "temporal", 3), ("window", 12))
FEW_STEPS = 4  # the few-step run of the adaptive rows (a step-distilled model's schedule, cfg 1)

# comfy/model_detection.py (model_config_from_diffusers_unet), without its dtype
SD15_UNET = dict(use_checkpoint=False, image_size=32, out_channels=4, use_spatial_transformer=True, legacy=False,
                 adm_in_channels=None, in_channels=4, model_channels=320, num_res_blocks=[2, 2, 2, 2],
                 transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0], channel_mult=[1, 2, 4, 4], transformer_depth_middle=1,
                 use_linear_in_transformer=False, context_dim=768, num_heads=8,
                 transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], use_temporal_attention=False,
                 use_temporal_resblock=False)
SDXL_UNET = dict(use_checkpoint=False, image_size=32, out_channels=4, use_spatial_transformer=True, legacy=False,
                 num_classes="sequential", adm_in_channels=2816, in_channels=4, model_channels=320,
                 num_res_blocks=[2, 2, 2], transformer_depth=[0, 0, 2, 2, 10, 10], channel_mult=[1, 2, 4],
                 transformer_depth_middle=10, use_linear_in_transformer=True, context_dim=2048, num_head_channels=64,
                 transformer_depth_output=[0, 0, 0, 2, 2, 2, 10, 10, 10], use_temporal_attention=False,
                 use_temporal_resblock=False)
# comfy/model_detection.py, Flux dev (guidance_in present, T5 and CLIP-L pooled inputs)
FLUX_DIT = dict(image_model="flux", guidance_embed=True, in_channels=16, out_channels=16, vec_in_dim=768,
                context_in_dim=4096, hidden_size=3072, mlp_ratio=4.0, num_heads=24, depth=2, depth_single_blocks=2,
                axes_dim=[16, 56, 56], theta=10000, patch_size=2, qkv_bias=True, txt_ids_dims=[])
T5_DIM = 4096  # UMT5-XXL (WAN) and T5-XXL (Flux) hidden size
SDXL_POOLED_DIM = 1280  # CLIP-G pooled output
FLUX_POOLED_DIM = 768  # CLIP-L pooled output
HEAD_DIM = 128  # WAN and Flux


@dataclasses.dataclass(frozen=True)
class Selection:
    """What one benchmark run covers. The default (SD1.5 and WAN at 9 frames, ratio 0.5, one timed run) took 12.7
    minutes on an otherwise idle 2-core CPU (docs/results.md); ``FULL`` is everything (hours)."""
    techniques: tuple = ("token_prune", "temporal_prune", "local_window", "attention_backend")
    families: tuple = ("sd15", "wan21")
    wan_frames: tuple = (9,)
    wan_blocks: int = 2  # transformer blocks of the WAN cases (the real 1.3B model has 30)
    token_prune_ratios: tuple = (0.5,)
    repeats: int = 1  # timed runs per variant, after the untimed one that counts FLOPs
    motion_iterations: int = 2  # AdamW iterations of motion_transfer's one guided step
    dtype: str = "auto"  # see pick_dtype


FULL = Selection(techniques=TECHNIQUES, families=FAMILIES, wan_frames=(9, 21), token_prune_ratios=(0.3, 0.5, 0.7))


# ---------------------------------------------------------------------------------------------------------------
# shapes and models


@dataclasses.dataclass
class Shape:
    """What one case is built at: ``unet_config`` goes to the family's ``comfy.supported_models`` class."""
    family: str
    name: str  # the case's name in tables, e.g. "wan21 9x30x52"
    unet_config: dict
    latent: tuple  # the latent KSampler gets
    text_tokens: int


def wan21_shape(frames, height=60, width=104, blocks=2, dim=1536, ffn_dim=8960, text_tokens=512):
    """WAN 2.1 T2V at 1.3B width (num_heads = dim / 128, as ComfyUI's detection derives it)."""
    from devtools.harness.tiny_models import WAN21_FILE_CONFIG  # the complete WAN 2.1 T2V layout, small
    config = dict(WAN21_FILE_CONFIG, dim=dim, ffn_dim=ffn_dim, num_heads=dim // HEAD_DIM, num_layers=blocks)
    return Shape("wan21", f"wan21 {frames}x{height // 2}x{width // 2}", config, (1, 16, frames, height, width),
                 text_tokens)


def sd15_shape(height=64, width=64, **config_changes):
    return Shape("sd15", f"sd15 {8 * width}x{8 * height}", dict(SD15_UNET, **config_changes), (1, 4, height, width), 77)


def sdxl_shape(height=128, width=128, **config_changes):
    return Shape("sdxl", f"sdxl {8 * width}x{8 * height}", dict(SDXL_UNET, **config_changes), (1, 4, height, width),
                 77)


def flux_shape(height=128, width=128, double_blocks=2, single_blocks=2, hidden=3072, text_tokens=512):
    config = dict(FLUX_DIT, hidden_size=hidden, num_heads=hidden // HEAD_DIM, depth=double_blocks,
                  depth_single_blocks=single_blocks)
    return Shape("flux", f"flux {8 * width}x{8 * height}", config, (1, 16, height, width), text_tokens)


def real_shapes(wan_frames=(9, 21), wan_blocks=2):
    """The benchmark's cases at their real sizes, in run order."""
    return [sd15_shape(), sdxl_shape(), flux_shape(),
            *(wan21_shape(frames, blocks=wan_blocks) for frames in wan_frames)]


def pick_dtype(name="auto"):
    """The compute dtype: float16 on CUDA; float32 on a CPU.

    On a CPU without native bfloat16 (AVX2 only, as this bench's 2-core machine) torch 2.14's bfloat16 convolution
    ran 400x and its linear layers 8x slower than float32 (a 3x3 conv on a 320 x 128 x 128 map: 396 s vs 1.0 s; a
    2048 x 1536 x 1536 linear: 1.66 s vs 0.19 s), which would bury every technique under cast and fallback costs;
    ``--dtype bf16`` is there for CPUs that have it.
    """
    import torch
    named = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if name != "auto":
        return named[name]
    return torch.float16 if torch.cuda.is_available() else torch.float32


def _config_at(config_class, dtype):
    """``config_class`` with its inference dtype pinned to ``dtype`` (``tiny_models.make_patcher`` asks for float32),
    under the same class name (the pack recognises a model family by that name)."""
    def set_inference_dtype(self, _requested, manual_cast_dtype):
        config_class.set_inference_dtype(self, dtype, manual_cast_dtype)
    return type(config_class.__name__, (config_class,), {"set_inference_dtype": set_inference_dtype})


def build(shape, dtype, seed=0):
    """A ``tiny_models.TinyCase`` of ``shape`` at ``dtype``: random weights and random conditioning of real sizes."""
    import torch
    import comfy.ldm.flux.model
    import comfy.supported_models as supported

    from devtools.harness import tiny_models

    config_class = {"wan21": supported.WAN21_T2V, "sd15": supported.SD15, "sdxl": supported.SDXL,
                    "flux": supported.Flux}[shape.family]
    unet_config = shape.unet_config
    if shape.family == "flux":
        unet_config = tiny_models._known_to_this_comfyui(comfy.ldm.flux.model.FluxParams, unet_config)
    patcher = tiny_models.make_patcher(_config_at(config_class, dtype), unet_config, seed)
    generator = torch.Generator().manual_seed(seed + 1)
    context_dim = {"wan21": T5_DIM, "flux": T5_DIM, "sd15": 768, "sdxl": 2048}[shape.family]

    def conditioning():
        extra = {}
        if shape.family == "sdxl":
            pixels = {"height": 8 * shape.latent[-2], "width": 8 * shape.latent[-1]}
            extra = {"pooled_output": torch.randn(1, SDXL_POOLED_DIM, generator=generator), "crop_w": 0, "crop_h": 0,
                     **pixels, "target_height": pixels["height"], "target_width": pixels["width"]}
        elif shape.family == "flux":
            extra = {"pooled_output": torch.randn(1, FLUX_POOLED_DIM, generator=generator), "guidance": 3.5}
        return [[torch.randn(1, shape.text_tokens, context_dim, generator=generator), extra]]

    frames = shape.latent[2] if len(shape.latent) == 5 else 1
    return tiny_models.TinyCase(patcher, torch.zeros(shape.latent), conditioning(), conditioning(), shape.family,
                                frames)


def free_models():
    """Drop ComfyUI's references to loaded models and collect, so the next case starts from free memory."""
    import comfy.model_management
    comfy.model_management.unload_all_models()
    gc.collect()
    comfy.model_management.soft_empty_cache()


# ---------------------------------------------------------------------------------------------------------------
# variants


@dataclasses.dataclass
class Variant:
    name: str
    technique: str
    node_id: str
    inputs: dict  # keyword inputs; the node's other widget inputs take their schema defaults
    steps: int = 1  # sampling steps of one run; seconds and FLOPs are reported per step
    note: str = ""
    on_sdpa: bool = False  # applied to the model on torch SDPA (AttentionBackend sdpa) instead of the unpatched one
    # (shape, folder) -> extra inputs known only once the case is built (a pattern file for its grid)
    prepare: object = None
    # head patterns the decision returns in place of its own choice, its statistics still computed (see
    # assumed_choice); None: the real choice
    choice: tuple = None


def apply_node(node_id, model, **inputs):
    """The first output of ComfyUI's registered node ``node_id`` executed on ``model`` with keyword ``inputs``;
    widget inputs not given take their schema default, as a fresh node in the UI has them."""
    import nodes

    from devtools.workflows.builder import Workflow
    from devtools.workflows.ui_format import node_schemas_from_comfy, widget_layout

    node = nodes.NODE_CLASS_MAPPINGS[node_id]
    schema = node_schemas_from_comfy({node_id: node})[node_id]
    defaults = {slot.input_name: Workflow._default(schema, slot.input_name)
                for slot in widget_layout(schema) if slot.role == "value"}
    return node.execute(model, **dict(defaults, **inputs)).result[0]


def _token_prune_variants(family, ratios):
    found = []
    for ratio in ratios:
        found.append(Variant(f"TokenPrune {ratio}", "token_prune", "FreeAccel_TokenPrune", {"ratio": ratio,
                                                                                            "dsap": "off"}))
        if family in ("sd15", "sdxl"):  # DSAP spares UNet stages; core ToMe patches UNet self-attention only
            found.append(Variant(f"TokenPrune {ratio} DSAP", "token_prune", "FreeAccel_TokenPrune",
                                 {"ratio": ratio, "dsap": "on"}, note="DSAP phase (outer stages spared)"))
            found.append(Variant(f"TokenPrune {ratio} pruning", "token_prune", "FreeAccel_TokenPrune",
                                 {"ratio": ratio, "dsap": "off", "recovery": "similarity"},
                                 note="AT-EDM's plain pruning: what merging costs"))
            found.append(Variant(f"core ToMe {ratio}", "token_prune", "TomePatchModel", {"ratio": ratio}))
            # on a fast fused attention (GPU builds) attention weighs less than under ComfyUI's CPU default
            found.append(Variant(f"TokenPrune {ratio} on SDPA", "token_prune", "FreeAccel_TokenPrune",
                                 {"ratio": ratio, "dsap": "off"}, on_sdpa=True))
            found.append(Variant(f"core ToMe {ratio} on SDPA", "token_prune", "TomePatchModel", {"ratio": ratio},
                                 on_sdpa=True))
    return found


def _temporal_prune_variants(family, _ratios):
    if family != "wan21":
        return []
    return [Variant("TemporalAttnPrune 0.5 identity", "temporal_prune", "FreeAccel_TemporalAttnPrune",
                    {"ratio": 0.5, "mode": "identity", "start_percent": 0.0, "calibration_steps": 1}, steps=2,
                    note="2-step run: step 1 calibrates, step 2 pruned")]


def _local_window_variants(family, _ratios):
    if family != "wan21":
        return []
    return [Variant(f"LocalWindow frames {f} window {h}x{w} (radii {f},{h // 2},{w // 2})", "local_window",
                    "FreeAccel_LocalWindowAttention", {"frames": f, "height": h, "width": w})
            for f, h, w in LOCAL_WINDOWS]


def _adacache_variants(family, _ratios):
    if family not in ("wan21", "flux"):
        return []
    return [Variant(f"AdaCache forced reuse (custom {ADACACHE_CODEBOOK})", "adacache", "FreeAccel_AdaCache",
                    {"preset": "custom", "custom_codebook": ADACACHE_CODEBOOK}, steps=ADACACHE_STEPS)]


def _attention_backend_variants(family, _ratios):
    return [Variant(SDPA_VARIANT, "attention_backend", "FreeAccel_AttentionBackend", {"backend": "sdpa"})]


def mix_patterns(mix, heads):
    """The head patterns of ``mix`` (pattern, count, ...) for ``heads`` heads: the i-th head of every pattern before
    the (i+1)-th, cut or cycled to ``heads`` (the smoke test's small models have fewer than 12)."""
    counts = list(zip(mix[::2], mix[1::2]))
    spread = [pattern for _, _, pattern in sorted((i, order, pattern) for order, (pattern, count) in enumerate(counts)
                                                  for i in range(count))]
    return tuple(spread[h % len(spread)] for h in range(heads))


def _mix_text(mix):
    return ", ".join(f"{pattern} {count}" for pattern, count in zip(mix[::2], mix[1::2]))


def _wan_heads(shape):
    return shape.unet_config["dim"] // HEAD_DIM


def _pattern_file(mix):
    """``prepare`` of a variant loading ``mix`` from a pattern file written for the case's grid and head count."""
    def prepare(shape, folder):
        from devtools.harness.comfy_env import current_runtime
        head_patterns = current_runtime().pack_module("accel_core.head_patterns")
        settings = head_patterns.HeadPatternSettings()
        _, _, frames, height, width = shape.latent
        table = head_patterns.PatternTable(settings.shapes, settings.mass_threshold, (frames, height // 2, width // 2))
        for block in range(shape.unet_config["num_layers"]):
            table.record(block, mix_patterns(mix, _wan_heads(shape)))
        path = os.path.join(folder, f"patterns-{'-'.join(map(str, mix))}-{frames}x{height}x{width}.json")
        table.save(path)
        return {"pattern_file": path}
    return prepare


@contextmanager
def assumed_choice(patterns):
    """TemporalAttnPrune adaptive's decision with its statistics computed as in a real run (``decide_patterns``
    measures every sampled row) but ``patterns`` (cut to the head count) returned as the choice: the cost of the
    decision step at real shapes, with the chosen patterns random weights cannot produce."""
    from devtools.harness.comfy_env import current_runtime
    head_patterns = current_runtime().pack_module("accel_core.head_patterns")
    choose = head_patterns.choose_patterns

    def assumed(masses, costs, threshold):
        choose(masses, costs, threshold)
        return tuple(patterns[h % len(patterns)] for h in range(masses.shape[1]))
    head_patterns.choose_patterns = assumed
    try:
        yield
    finally:
        head_patterns.choose_patterns = choose


def _head_pattern_variants(family, _ratios):
    if family != "wan21":
        return []
    adaptive = {"mode": "adaptive", "dense_blocks": 0}
    found = [Variant(f"TemporalAttnPrune adaptive, pattern file ({_mix_text(mix)})", "head_patterns",
                     "FreeAccel_TemporalAttnPrune", dict(adaptive, start_percent=0.0), on_sdpa=True,
                     prepare=_pattern_file(mix), note="patterns loaded, every block sparse")
             for mix in HEAD_MIXES]
    mix = mix_patterns(HEAD_MIXES[0], 12)
    for start in (0.0, 0.2):
        dense_steps = "no dense step" if start == 0.0 else "start_percent 0.2: step 1 dense"
        found.append(Variant(f"TemporalAttnPrune adaptive, {FEW_STEPS}-step run deciding, start {start:g}",
                             "head_patterns", "FreeAccel_TemporalAttnPrune", dict(adaptive, start_percent=start),
                             steps=FEW_STEPS, on_sdpa=True, choice=mix,
                             note=f"{FEW_STEPS} steps, cfg 1, {dense_steps}; the first sparse step measures every "
                                  f"block's heads (choice replaced by {_mix_text(HEAD_MIXES[0])})"))
    return found


VARIANTS = {"token_prune": _token_prune_variants, "temporal_prune": _temporal_prune_variants,
            "head_patterns": _head_pattern_variants, "local_window": _local_window_variants, "adacache": _adacache_variants,
            "attention_backend": _attention_backend_variants}


def variants(selection, family):
    """The variants ``selection`` runs on ``family`` (motion transfer, a guider, is not one of them)."""
    return [variant for technique in selection.techniques if technique in VARIANTS
            for variant in VARIANTS[technique](family, selection.token_prune_ratios)]


def runs_motion_transfer(selection, family):
    return "motion_transfer" in selection.techniques and family == "wan21"


# ---------------------------------------------------------------------------------------------------------------
# running


class _VariantProgress:
    """The ``progress`` of ``benchmark.run_variants`` on a tqdm bar: also names the run that comes next (the runs
    go through the variants in order, once untimed and then once per repeat)."""

    def __init__(self, bar, names):
        self.bar, self.names, self.done = bar, names, 0
        bar.set_postfix_str(names[0])

    def update(self):
        self.done += 1
        self.bar.update()
        self.bar.set_postfix_str(self.names[self.done % len(self.names)])


@contextmanager
def quiet_console():
    """Raise the console handlers of the root logger to WARNING: ComfyUI logs "Requested to load ..." and "loaded
    completely ..." at INFO on every run, and ``run_variants`` lowers the root level to INFO while it captures the
    techniques' own log lines (its capture handler still receives them)."""
    handlers = [handler for handler in logging.getLogger().handlers if handler.level < logging.WARNING]
    levels = [handler.level for handler in handlers]
    for handler in handlers:
        handler.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for handler, level in zip(handlers, levels):
            handler.setLevel(level)


def _run_side_by_side(shape, sample_fn, runs, repeats):
    """``benchmark.run_variants`` over ``runs`` = [(name, run)], the baseline first, with a progress bar."""
    from tqdm import tqdm

    names = [name for name, _ in runs]
    with tqdm(total=len(runs) * (repeats + 1), desc=shape.name, file=sys.stderr) as bar:
        return benchmark.run_variants(sample_fn, runs, repeats=repeats, progress=_VariantProgress(bar, names))


def _ratio(numerator, denominator):
    return numerator / denominator if denominator and not math.isnan(denominator) else math.nan


def _row(shape, name, technique, steps, note, result, seconds, gflops, attention_gflops):
    """One table row: ``seconds`` and FLOPs per step (or per guided step) of one ``run_variants`` result."""
    return {"case": shape.name, "variant": name, "technique": technique, "steps": steps, "note": note,
            "seconds": seconds, "gflops": gflops, "attention_gflops": attention_gflops, "run_times": result.times,
            "log": result.log[-1:]}


def _compared(rows, reference):
    """``rows`` with speedup, ideal (FLOPs ratio) and efficiency against the ``reference`` row, and speedup and
    efficiency against the rows' AttentionBackend sdpa row (nan without one): ComfyUI's own attention on a CPU is
    sub-quadratic attention, while the techniques' kernels run on SDPA, so part of a speedup can be the kernel."""
    sdpa = next((row for row in rows if row["variant"] == SDPA_VARIANT), None)
    for row in rows:
        row["speedup"] = reference["seconds"] / row["seconds"]
        row["ideal"] = _ratio(reference["gflops"], row["gflops"])
        row["efficiency"] = _ratio(row["speedup"], row["ideal"])
        row["speedup_vs_sdpa"] = sdpa["seconds"] / row["seconds"] if sdpa else math.nan
        row["efficiency_vs_sdpa"] = _ratio(row["speedup_vs_sdpa"], row["ideal"])
    return rows


def time_variants(case, shape, found, repeats):
    """Rows of the baseline and ``found`` variants on ``case``: per step, side by side."""
    from devtools.harness import tiny_models

    sdpa = apply_node("FreeAccel_AttentionBackend", case.patcher, backend="sdpa")
    runs = [(benchmark.BASELINE, (case.patcher, 1, None))]
    with tempfile.TemporaryDirectory(prefix="freeaccel-real-shapes-") as folder:
        for variant in found:
            inputs = dict(variant.inputs, **(variant.prepare(shape, folder) if variant.prepare else {}))
            model = apply_node(variant.node_id, sdpa if variant.on_sdpa else case.patcher, **inputs)
            runs.append((variant.name, (model, variant.steps, variant.choice)))

        def sample_fn(run):
            model, steps, choice = run
            with assumed_choice(choice) if choice else nullcontext():
                return tiny_models.sample(case, model=model, steps=steps, cfg=1.0, seed=0)

        results = _run_side_by_side(shape, sample_fn, runs, repeats)
    base = results[0]
    rows = [_row(shape, benchmark.BASELINE, "", 1, "", base, base.median_s, base.gflops, base.attention_gflops)]
    rows += [_row(shape, variant.name, variant.technique, variant.steps, variant.note, result,
                  result.median_s / variant.steps, result.gflops / variant.steps,
                  result.attention_gflops / variant.steps)
             for variant, result in zip(found, results[1:])]
    return _compared(rows, rows[0])


def time_motion_transfer(case, shape, iterations, repeats):
    """FastVMT vs DiTFlow guidance seconds on ``case`` (a WAN case): each guided run minus a plain CFG run of the same
    one-step schedule from the reference latent, all on a model with SDPA attention (ComfyUI's CPU default,
    sub-quadratic attention, keeps every attention chunk for the backward: tens of GB at these token counts)."""
    import torch
    import comfy.samplers
    from comfy_extras import nodes_custom_sampler as custom

    from bench.variants.motion_transfer import moving_reference

    model = apply_node("FreeAccel_AttentionBackend", case.patcher, backend="sdpa")
    reference = {"samples": moving_reference(case.latent.shape)}
    sigmas = custom.BasicScheduler.execute(model, "simple", 1, 1.0).result[0]

    def sample_fn(run):
        mode, guided_steps = run
        guider = apply_node("FreeAccel_MotionTransferGuider", model, positive=case.positive, negative=case.negative,
                            reference=reference, cfg=1.0, mode=mode, guided_steps=guided_steps,
                            iterations=iterations, amf_block=MOTION_AMF_BLOCK)
        with torch.inference_mode():
            return custom.SamplerCustomAdvanced.execute(custom.Noise_RandomNoise(0), guider,
                                                        comfy.samplers.sampler_object("euler"), sigmas,
                                                        reference).result[0]["samples"]

    runs = [(benchmark.BASELINE, ("fastvmt", 0)), ("DiTFlow", ("ditflow", 1)), ("FastVMT", ("fastvmt", 1))]
    plain, *guided = _run_side_by_side(shape, sample_fn, runs, repeats)
    steps = f"1 guided step x {iterations} iterations"
    note = f"guidance only (plain CFG step: {plain.median_s:.1f} s)"
    rows = [_row(shape, f"{result.name} guidance", "motion_transfer", steps, note, result,
                 result.median_s - plain.median_s, result.gflops - plain.gflops,
                 result.attention_gflops - plain.attention_gflops)
            for result in guided]
    return _compared(rows, rows[0])


def bench_case(shape, selection, dtype):
    """Build ``shape``, run what ``selection`` picks on it, free it; returns its rows."""
    case = build(shape, dtype)
    try:
        rows = []
        found = variants(selection, shape.family)
        if found:
            rows += time_variants(case, shape, found, selection.repeats)
        if runs_motion_transfer(selection, shape.family):
            rows += time_motion_transfer(case, shape, selection.motion_iterations, selection.repeats)
    finally:
        del case
        free_models()
    return rows


def bench_real_shapes(selection, shapes=None):
    """Run the benchmark inside a booted ComfyUI; returns the report for ``format_markdown`` and ``write_json``.

    ``shapes`` replaces the real cases (the smoke test passes small ones); ``selection.families`` picks among them.
    """
    import torch
    import comfy.model_management

    dtype = pick_dtype(selection.dtype)
    shapes = shapes or real_shapes(selection.wan_frames, selection.wan_blocks)
    start = time.perf_counter()
    rows, case_seconds = [], {}
    with quiet_console():
        for shape in shapes:
            if shape.family in selection.families and (variants(selection, shape.family)
                                                       or runs_motion_transfer(selection, shape.family)):
                case_start = time.perf_counter()
                rows += bench_case(shape, selection, dtype)
                case_seconds[shape.name] = time.perf_counter() - case_start
    return {"selection": dataclasses.asdict(selection), "dtype": str(dtype).removeprefix("torch."),
            "device": str(comfy.model_management.get_torch_device()), "threads": torch.get_num_threads(),
            "seconds": time.perf_counter() - start, "case_seconds": case_seconds, "rows": rows}


# ---------------------------------------------------------------------------------------------------------------
# output


def _number(value, digits, suffix=""):
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}{suffix}"


def format_markdown(report):
    """A markdown table, one row per variant (names in full)."""
    lines = [f"Real shapes, {report['dtype']} on {report['device']} ({report['threads']} threads), medians of "
             f"{report['selection']['repeats']} timed run(s) after one untimed run; "
             f"{report['seconds'] / 60:.1f} min in all. speedup: against the unpatched model (ComfyUI's attention "
             f"for the device; on a CPU sub-quadratic attention); vs SDPA: against the unpatched model on torch SDPA "
             f"(the case's {SDPA_VARIANT} row); ideal: FLOPs ratio; efficiency: speedup / ideal. Wall time per case: "
             + ", ".join(f"{name} {seconds / 60:.1f} min" for name, seconds in report["case_seconds"].items()) + ".",
             "",
             "| case | variant | steps | s / step | speedup | vs SDPA | ideal (FLOPs) | efficiency "
             "| efficiency vs SDPA | GFLOPs / step | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        note = "; ".join(filter(None, [row["note"], *row["log"]]))
        lines.append(f"| {row['case']} | {row['variant']} | {row['steps']} | {_number(row['seconds'], 2)} | "
                     f"{_number(row['speedup'], 2, 'x')} | {_number(row['speedup_vs_sdpa'], 2, 'x')} | "
                     f"{_number(row['ideal'], 2, 'x')} | {_number(row['efficiency'], 2)} | "
                     f"{_number(row['efficiency_vs_sdpa'], 2)} | {_number(row['gflops'], 0)} | {note} |")
    return "\n".join(lines)


def _json_number(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write_json(report, out):
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, JSON_NAME)
    rows = [{key: _json_number(value) for key, value in row.items()} for row in report["rows"]]
    with open(path, "w") as file:
        json.dump(dict(report, rows=rows), file, indent=2)
    return path


def _names(text, known, what):
    names = tuple(name for name in text.split(",") if name)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"unknown {what} {', '.join(unknown)}; known: {', '.join(known)}")
    return names


def _numbers(text, kind):
    return tuple(kind(part) for part in text.split(",") if part)


def parse_args(argv=None):
    """The CLI's options; ``args.selection`` is the Selection they describe."""
    default = Selection()
    parser = argparse.ArgumentParser(prog="python -m bench.real_shapes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui", help="ComfyUI checkout (default: $COMFYUI_PATH, else ../.. of this pack)")
    parser.add_argument("--full", action="store_true",
                        help="every technique and family, WAN at 9 and 21 frames, TokenPrune and ToMe at "
                             f"{', '.join(map(str, FULL.token_prune_ratios))} (hours on 2 cores); the options below "
                             "narrow it")
    parser.add_argument("--techniques", help=f"comma-separated subset of {', '.join(TECHNIQUES)} "
                                             f"(default: {', '.join(default.techniques)})")
    parser.add_argument("--families", help=f"comma-separated subset of {', '.join(FAMILIES)} "
                                           f"(default: {', '.join(default.families)})")
    parser.add_argument("--wan-frames", help="latent frames of the WAN cases (default: "
                                             f"{','.join(map(str, default.wan_frames))})")
    parser.add_argument("--wan-blocks", type=int, help="transformer blocks of the WAN cases (default: "
                                                       f"{default.wan_blocks})")
    parser.add_argument("--ratios", help="TokenPrune and core ToMe ratios (default: "
                                         f"{','.join(map(str, default.token_prune_ratios))})")
    parser.add_argument("--repeats", type=int, help=f"timed runs per variant after the untimed one "
                                                    f"(default: {default.repeats})")
    parser.add_argument("--motion-iterations", type=int, help="AdamW iterations of motion_transfer's guided step "
                                                              f"(default: {default.motion_iterations})")
    parser.add_argument("--dtype", choices=("auto", "fp32", "bf16", "fp16"), help="auto (default): fp16 on CUDA, "
                                                                                   "fp32 on a CPU")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"folder for {JSON_NAME} (default: bench/out)")
    args = parser.parse_args(argv)
    given = {"techniques": args.techniques and _names(args.techniques, TECHNIQUES, "technique"),
             "families": args.families and _names(args.families, FAMILIES, "family"),
             "wan_frames": args.wan_frames and _numbers(args.wan_frames, int), "wan_blocks": args.wan_blocks,
             "token_prune_ratios": args.ratios and _numbers(args.ratios, float),
             "repeats": args.repeats, "motion_iterations": args.motion_iterations, "dtype": args.dtype}
    args.selection = dataclasses.replace(FULL if args.full else default,
                                         **{key: value for key, value in given.items() if value is not None})
    return args


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    comfy_path = find_comfyui(args.comfyui)
    if comfy_path is None:
        raise SystemExit("No ComfyUI found: pass --comfyui PATH or set COMFYUI_PATH.")
    boot(comfy_path, BENCH_RUNTIME)
    logging.getLogger().setLevel(logging.WARNING)
    report = bench_real_shapes(args.selection)
    print(format_markdown(report))
    print(f"wrote {write_json(report, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
