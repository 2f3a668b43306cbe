"""Train the tiny REAL ComfyUI WAN 2.1 model on procedural clips, so bench quality numbers reflect a trained denoiser.

    python -m bench.trained.train_tiny [--family wan21] [--steps N | --minutes M] [--out DIR] [--seed 0] [--threads N]
        [--sigma-sampling uniform|schedule]
    python -m bench.trained.train_tiny --judge heads    # the judge with heads (below)

The model is the one ``tiny_models.save_unet_file("wan21", ...)`` writes (``tiny_models.WAN21_FILE_CONFIG``: ComfyUI's
own WanModel inside model_base.WAN21, 2 heads x 128, 4 blocks, 4096-wide text input), built fresh (ComfyUI may load
weights under inference mode, which cannot be trained). Training uses ComfyUI's flow-matching parameterisation from
the model itself: a sigma drawn per ``sigma_sampling`` (default ``"uniform"``: sigma ~ U(0, sigma_max], i.e. (0, 1] for
flow models; ``"schedule"``: like the sampler's schedule, ``model_sampling.sigma`` of a uniform timestep, so WAN's
shift 8 applies and only ~5 % of sigmas fall below 0.3, leaving the late, detail-forming steps barely trained), the
clean latent noised with ``model_sampling.noise_scaling``, and the prediction taken through
``BaseModel.apply_model`` (which applies ``calculate_input`` / ``calculate_denoised``); the loss is the MSE of the
implied velocity ``(x_sigma - denoised) / sigma`` against ``noise - clean``. Data are fresh ``bench.trained.procedural``
batches every step, each clip conditioned on its class prompt (or, with probability ``uncond_prob``, the
unconditional embedding, so classifier-free guidance works).

The judge with heads (``--judge heads``, ``HeadsTrainConfig``): a second tiny WAN 2.1 of ComfyUI's own WanModel with
``HEADS_MODEL_CONFIG`` (dim 128 = 4 heads x 32, ffn 512, 4 blocks), trained the same way on procedural clips of 9 x 24
x 24 latents (9 x 12 x 12 tokens with the 2 x 2 patch, so a local window, a frame and a temporal line differ), so
per-head techniques can be judged (``python -m bench.head_patterns_quality``). UNETLoader's detection derives
heads = dim // 128, so this file does not round-trip through it: ``load_heads_judge`` builds the model from the config
(``tiny_models.make_patcher``) and loads the saved state dict into it. Its file is
``freeaccel_trained_wan21_heads_<hash>``; the first judge's config, hash and file are unchanged.

Deterministic: the same config (seed included) and thread count give bit-identical weights. ``--minutes`` is turned
into a step count by timing a few steps first; the step count actually trained is stored in the file's metadata and
the JSON beside it (reproduce exactly with ``--steps``). Results are cached by a hash of the requested config: a
re-run with the same config returns the saved file. Files written into DIR (default: the bench runtime's
models/diffusion_models, where UNETLoader finds them): ``<name>.safetensors``, ``<name>.json`` (config, steps,
losses), ``<name>_loss.png`` and, from the command line, ``<name>_samples.png``.
"""
import argparse
import dataclasses
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from typing import Optional

import torch

from bench.trained import procedural
from devtools.harness.comfy_env import BENCH_RUNTIME, current_runtime

TRAINER_VERSION = 2  # bump when training code changes what a config produces (invalidates cached files)
SIGMA_SAMPLINGS = ("uniform", "schedule")  # how training sigmas are drawn, see the module docstring
FAMILIES = ("wan21",)  # Flux: UNETLoader's detection pins it to 24 heads x 128, no tiny trainable file exists
DEFAULT_OUT = os.path.join(BENCH_RUNTIME, "models", "diffusion_models")
DEFAULT_STEPS = 3000  # the bench's trained model: 3000 steps take about 18 minutes on 2 CPU cores
CALIBRATION_STEPS = 3  # timed steps (after one untimed) used to turn --minutes into a step count
# the judge with heads: 4 heads x 32 (WAN's RoPE splits head dim 32 as 12 / 10 / 10), 4 blocks, same text width
HEADS_MODEL_CONFIG = dict(image_model="wan2.1", model_type="t2v", patch_size=(1, 2, 2), text_len=512, in_dim=16,
                          dim=128, ffn_dim=512, freq_dim=256, text_dim=4096, out_dim=16, num_heads=4, num_layers=4,
                          window_size=(-1, -1), qk_norm=True, cross_attn_norm=True, eps=1e-6)
HEADS_LATENT = (9, 24, 24)  # frames, height, width of its clips: 9 x 12 x 12 tokens
HEADS_DEFAULT_STEPS = 600  # its training steps: 24 minutes on 2 CPU cores (2.4 s per step at batch 4)
JUDGES = ("file", "heads")  # --judge: the UNETLoader file model (the bench's first judge) or the judge with heads
EVAL_CLIPS_PER_CLASS = 2
SAMPLES_PER_CLASS = 4  # generated clips per motion class in the command line's class-resemblance check


@dataclass(frozen=True)
class TrainConfig:
    family: str = "wan21"
    seed: int = 0
    steps: Optional[int] = None  # exactly one of steps / minutes
    minutes: Optional[float] = None
    batch: int = 4
    lr: float = 1e-3
    warmup: int = 50  # linear warm-up steps, then cosine decay to lr_final_fraction * lr
    lr_final_fraction: float = 0.1
    grad_clip: float = 1.0
    uncond_prob: float = 0.1
    sigma_sampling: str = "uniform"  # one of SIGMA_SAMPLINGS
    frames: int = procedural.FRAMES
    height: int = procedural.HEIGHT
    width: int = procedural.WIDTH
    prompt_tokens: int = procedural.PROMPT_TOKENS

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"train_tiny trains {FAMILIES}, not {self.family!r}")
        if self.sigma_sampling not in SIGMA_SAMPLINGS:
            raise ValueError(f"sigma_sampling must be one of {SIGMA_SAMPLINGS}, not {self.sigma_sampling!r}")
        if (self.steps is None) == (self.minutes is None):
            raise ValueError("give exactly one of steps and minutes")


@dataclass(frozen=True)
class HeadsTrainConfig(TrainConfig):
    """The judge with heads: TrainConfig's fields (the same training), its own latent size; the model is
    HEADS_MODEL_CONFIG (``model_config``)."""
    frames: int = HEADS_LATENT[0]
    height: int = HEADS_LATENT[1]
    width: int = HEADS_LATENT[2]


@dataclass
class TrainResult:
    path: str  # the safetensors file
    steps: int
    losses: list  # training loss per step
    eval_before: float  # loss on a fixed held-out batch at fixed sigmas, before and after training
    eval_after: float
    cached: bool


def is_heads(config):
    return isinstance(config, HeadsTrainConfig)


def model_config(config):
    """The WanModel config ``config`` trains: HEADS_MODEL_CONFIG for the judge with heads, else the UNETLoader file's
    ``tiny_models.WAN21_FILE_CONFIG``."""
    if is_heads(config):
        return HEADS_MODEL_CONFIG
    from devtools.harness.tiny_models import WAN21_FILE_CONFIG
    return WAN21_FILE_CONFIG


def config_hash(config):
    """Hash of everything that decides the weights: the requested config, the model config, the trainer version
    (the judge with heads also names itself, so no config of the first judge can collide with it)."""
    blob = {"config": dataclasses.asdict(config), "model": model_config(config), "version": TRAINER_VERSION}
    if is_heads(config):
        blob["judge"] = "heads"
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:12]


def file_stem(config):
    return f"freeaccel_trained_{config.family}_{'heads_' if is_heads(config) else ''}{config_hash(config)}"


def build_model(seed, unet_config=None):
    """A fresh, trainable WAN21 BaseModel (fp32, CPU) with ``unet_config`` (default: the tiny file config) and seeded
    initial weights, its gated residuals and output starting at zero (see zero_init_modulation)."""
    import comfy.supported_models
    from devtools.harness.tiny_models import WAN21_FILE_CONFIG, make_patcher
    model = make_patcher(comfy.supported_models.WAN21_T2V, unet_config or WAN21_FILE_CONFIG, seed).model
    zero_init_modulation(model.diffusion_model)
    model.diffusion_model.requires_grad_(True)  # some ComfyUI ops create their parameters frozen
    return model


def zero_init_modulation(wan):
    """adaLN-Zero, as DiT trains: zero the timestep modulation (projection and per-block offsets) and the output
    layer, so every block's gated residual starts at zero and the model starts by predicting zero velocity, instead
    of first having to unlearn the large random outputs of tiny_models' generic init."""
    with torch.no_grad():
        for param in (wan.time_projection[1].weight, wan.time_projection[1].bias, wan.head.head.weight,
                      wan.head.head.bias, wan.head.modulation, *(block.modulation for block in wan.blocks)):
            param.zero_()


def flow_matching_loss(model, clean, context, sigma, noise):
    """MSE between the velocity implied by ComfyUI's own prediction and the flow-matching target noise - clean."""
    sampling = model.model_sampling
    noisy = sampling.noise_scaling(sigma, noise, clean)
    denoised = model.apply_model(noisy, sigma, c_crossattn=context)
    velocity = (noisy - denoised) / sigma.view(-1, *([1] * (clean.ndim - 1)))
    return torch.nn.functional.mse_loss(velocity, noise - clean)


def make_rope_differentiable():
    """WanModel calls comfy_kitchen's fused RoPE op when that package is installed, and the op has no backward.
    The pack's motion-transfer guider needs the same gradient: its context manager gives the op a backward within
    the block (forward results unchanged); training runs its steps inside it."""
    return current_runtime().pack_module("nodes.integration.rope_autograd").rope_backward()


def train(config, *, progress=True):
    """Train from scratch; returns (model, losses, eval_before, eval_after). Steps must be fixed in ``config``."""
    if config.steps is None:
        raise ValueError("train() needs config.steps; trained_model_file() turns minutes into steps")
    model = build_model(config.seed, model_config(config))
    params = list(model.diffusion_model.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(config, step))
    eval_batch = _eval_batch(config, model)
    eval_before = _eval_loss(model, eval_batch)
    losses = []
    bar = _progress(config.steps, progress)
    with make_rope_differentiable():
        for step in range(config.steps):
            losses.append(_optimizer_step(config, model, params, optimizer, step))
            schedule.step()
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}", refresh=False)
            bar.update()
    bar.close()
    return model, losses, eval_before, _eval_loss(model, eval_batch)


def trained_model_file(config, out_dir=DEFAULT_OUT, *, progress=True):
    """The trained model file for ``config`` in ``out_dir``: reused when present, else trained and saved (with the
    JSON record and the loss-curve PNG). ComfyUI must be booted."""
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, file_stem(config))
    path, record_path = stem + ".safetensors", stem + ".json"
    if os.path.exists(path) and os.path.exists(record_path):
        with open(record_path) as f:
            record = json.load(f)
        return TrainResult(path, record["steps"], record["losses"], record["eval_before"], record["eval_after"], True)
    steps = config.steps if config.steps is not None else calibrate_steps(config)
    model, losses, eval_before, eval_after = train(dataclasses.replace(config, steps=steps, minutes=None),
                                                   progress=progress)
    record = {"config": dataclasses.asdict(config), "steps": steps, "threads": torch.get_num_threads(),
              "final_loss": _tail_mean(losses), "eval_before": eval_before, "eval_after": eval_after,
              "losses": losses}
    _save_weights(model, path, record)
    plot_losses(losses, stem + "_loss.png", title=f"{os.path.basename(stem)}: {steps} steps")
    with open(record_path, "w") as f:  # written last: its presence marks a complete, reusable result
        json.dump(record, f)
    return TrainResult(path, steps, losses, eval_before, eval_after, False)


def load_bench_model(base_dir, steps=DEFAULT_STEPS):
    """The bench's trained tiny WAN (default config with ``steps``) from ``base_dir``/models/diffusion_models,
    trained there first if missing, loaded through ComfyUI's UNETLoader: (TrainResult, ModelPatcher)."""
    import nodes
    result = trained_model_file(TrainConfig(steps=steps), os.path.join(base_dir, "models", "diffusion_models"))
    return result, nodes.UNETLoader().load_unet(os.path.basename(result.path), "default")[0]


def heads_patcher(path):
    """A ModelPatcher of the judge with heads holding the weights saved at ``path``: the model built from
    HEADS_MODEL_CONFIG as tiny_models builds its cases (UNETLoader would detect 1 head), the state dict loaded
    strictly (every key, no extra one)."""
    import comfy.supported_models
    import comfy.utils
    from devtools.harness.tiny_models import make_patcher
    patcher = make_patcher(comfy.supported_models.WAN21_T2V, HEADS_MODEL_CONFIG, 0)
    patcher.model.diffusion_model.load_state_dict(comfy.utils.load_torch_file(path), strict=True)
    return patcher


def load_heads_judge(out_dir=DEFAULT_OUT, steps=HEADS_DEFAULT_STEPS, *, progress=True, **changes):
    """The judge with heads (HeadsTrainConfig with ``steps`` and ``changes``) from ``out_dir``, trained there first
    if missing: (TrainResult, ModelPatcher). ComfyUI must be booted."""
    result = trained_model_file(HeadsTrainConfig(steps=steps, **changes), out_dir, progress=progress)
    return result, heads_patcher(result.path)


def calibrate_steps(config):
    """How many steps fit in ``config.minutes`` on this machine, timed on a throwaway model."""
    model = build_model(config.seed, model_config(config))
    params = list(model.diffusion_model.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.lr)
    start = None
    with make_rope_differentiable():
        for step in range(1 + CALIBRATION_STEPS):  # the first step (allocations, lazy inits) is not timed
            if step == 1:
                start = time.perf_counter()
            _optimizer_step(config, model, params, optimizer, step)
    per_step = (time.perf_counter() - start) / CALIBRATION_STEPS
    return max(1, int(config.minutes * 60 / per_step))


# ---------------------------------------------------------------------------------------------------------------
# sampling and pictures


def class_case(patcher, motion, *, frames=procedural.FRAMES, height=procedural.HEIGHT, width=procedural.WIDTH,
               tokens=procedural.PROMPT_TOKENS):
    """A tiny_models.TinyCase for a loaded trained model: an empty latent, the prompt of motion class ``motion`` as
    positive and the unconditional embedding as negative (what the bench samples per motion class)."""
    from devtools.harness.tiny_models import TinyCase
    positive = [[procedural.prompt_embedding(motion, tokens=tokens)[None], {}]]
    negative = [[procedural.uncond_embedding(tokens=tokens)[None], {}]]
    return TinyCase(patcher, torch.zeros(1, procedural.CHANNELS, frames, height, width), positive, negative,
                    "wan21", frames)


def sample_class(patcher, motion, *, seed=0, steps=20, cfg=4.0, **shape):
    """Generate one clip of ``motion`` with comfy.sample (as KSampler does), returned in the space the procedural
    clips live in: [C, F, H, W], ComfyUI's output latent mapped back through process_latent_in. ``shape``: frames,
    height, width, tokens as in class_case."""
    from devtools.harness.tiny_models import sample
    out = sample(class_case(patcher, motion, **shape), steps=steps, cfg=cfg, seed=seed)
    return patcher.model.process_latent_in(out)[0]


def latent_to_rgb(clip):
    """Fixed seeded projection of the 16 latent channels to RGB in [0, 1]: [C, F, H, W] -> [F, H, W, 3]."""
    projection = torch.randn(3, clip.shape[0], generator=torch.Generator().manual_seed(3)) / math.sqrt(clip.shape[0])
    rgb = torch.einsum("rc,cfhw->fhwr", projection, clip.float())
    return (0.5 + 0.25 * rgb).clamp(0, 1)


def plot_sample_grid(rows, path, title=""):
    """``rows``: [(label, clip [C, F, H, W])]; one row of frames per clip."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    frames = rows[0][1].shape[1]
    fig, axes = plt.subplots(len(rows), frames, figsize=(frames * 1.1, len(rows) * 1.2), squeeze=False)
    for r, (label, clip) in enumerate(rows):
        rgb = latent_to_rgb(clip)
        for f in range(frames):
            ax = axes[r][f]
            ax.imshow(rgb[f].numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if f == 0:
                ax.set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_losses(losses, path, title=""):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(losses, linewidth=0.5, alpha=0.4, label="per step")
    window = max(1, len(losses) // 50)
    smooth = [sum(losses[max(0, i - window + 1):i + 1]) / len(losses[max(0, i - window + 1):i + 1])
              for i in range(len(losses))]
    ax.plot(smooth, linewidth=1.5, label=f"mean of {window}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("flow-matching loss")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------------
# internals


def _optimizer_step(config, model, params, optimizer, step):
    loss = flow_matching_loss(model, *_training_batch(config, model, step))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
    optimizer.step()
    return loss.item()


def _lr_factor(config, step):
    if step < config.warmup:
        return (step + 1) / config.warmup
    span = max(1, config.steps - config.warmup)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, (step - config.warmup) / span)))
    return config.lr_final_fraction + (1 - config.lr_final_fraction) * cosine


def _contexts(config, labels, keep):
    prompts = torch.stack([procedural.prompt_embedding(m, tokens=config.prompt_tokens)
                           for m in procedural.MOTION_CLASSES])
    uncond = procedural.uncond_embedding(tokens=config.prompt_tokens)
    context = prompts[labels]
    return torch.where(keep.view(-1, 1, 1), context, uncond)


def _training_batch(config, model, step):
    """(clean, context, sigma, noise) of one step: a function of (seed, step) only."""
    g = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    data_seed = int(torch.randint(2 ** 62, (), generator=g))
    clean, labels = procedural.make_batch(data_seed, config.batch, frames=config.frames, height=config.height,
                                          width=config.width)
    keep = torch.rand(config.batch, generator=g) >= config.uncond_prob
    sigma = _training_sigmas(config, model.model_sampling, torch.rand(config.batch, generator=g).clamp_min(1e-3))
    noise = torch.randn(clean.shape, generator=g)
    return clean, _contexts(config, labels, keep), sigma, noise


def _training_sigmas(config, sampling, fraction):
    """Sigmas from uniform draws ``fraction`` in (0, 1]: spread evenly over (0, sigma_max] ("uniform"), or mapped
    through the model's timestep -> sigma schedule ("schedule")."""
    if config.sigma_sampling == "uniform":
        return fraction * sampling.sigma_max
    return sampling.sigma(fraction * sampling.multiplier)


def _eval_batch(config, model):
    """A fixed held-out batch: EVAL_CLIPS_PER_CLASS clips per class, conditioned, at evenly spread sigmas."""
    g = torch.Generator().manual_seed(987_654_321 + config.seed)
    classes = procedural.MOTION_CLASSES * EVAL_CLIPS_PER_CLASS
    clips = [procedural.make_clip(m, int(torch.randint(2 ** 62, (), generator=g)), frames=config.frames,
                                  height=config.height, width=config.width) for m in classes]
    clean = torch.stack(clips)
    labels = torch.tensor([procedural.MOTION_CLASSES.index(m) for m in classes])
    context = _contexts(config, labels, torch.ones(len(classes), dtype=torch.bool))
    timestep = (torch.arange(len(classes)) + 0.5) / len(classes) * model.model_sampling.multiplier
    sigma = model.model_sampling.sigma(timestep)
    return clean, context, sigma, torch.randn(clean.shape, generator=g)


def _eval_loss(model, batch):
    with torch.no_grad():
        return flow_matching_loss(model, *batch).item()


def _mean_motion(clips):
    return sum(map(procedural.mean_frame_difference, clips)) / len(clips)


def _tail_mean(losses):
    tail = losses[-max(1, len(losses) // 10):]
    return sum(tail) / len(tail)


def _save_weights(model, path, record):
    import comfy.utils
    state_dict = {k: v.detach().contiguous() for k, v in model.diffusion_model.state_dict().items()}
    metadata = {"freeaccel_config": json.dumps(record["config"]), "freeaccel_steps": str(record["steps"]),
                "freeaccel_final_loss": f"{record['final_loss']:.6f}"}
    comfy.utils.save_torch_file(state_dict, path, metadata=metadata)


class _NoBar:
    def set_postfix(self, **kwargs):
        pass

    def update(self):
        pass

    def close(self):
        pass


def _progress(total, enabled):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm
    return tqdm(total=total, desc="train", unit="step")


# ---------------------------------------------------------------------------------------------------------------
# command line


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.trained.train_tiny", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="wan21", choices=FAMILIES)
    parser.add_argument("--judge", default="file", choices=JUDGES,
                        help="file: the UNETLoader file model (the bench's judge); heads: the judge with heads "
                             f"(4 heads x 32, {HEADS_LATENT[0]} x {HEADS_LATENT[1]} x {HEADS_LATENT[2]} latents, "
                             f"default {HEADS_DEFAULT_STEPS} steps)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="training time budget, turned into a step count")
    budget.add_argument("--steps", type=int, help=f"exact number of steps (default {DEFAULT_STEPS}, the bench's)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for the weights, record and plots")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=TrainConfig.batch)
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    parser.add_argument("--sigma-sampling", default=TrainConfig.sigma_sampling, choices=SIGMA_SAMPLINGS,
                        help="how training sigmas are drawn (see above)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads")
    parser.add_argument("--comfyui", help="ComfyUI checkout (default: $COMFYUI_PATH, else ../.. of this pack)")
    parser.add_argument("--no-samples", action="store_true", help="skip the sample grid")
    args = parser.parse_args(argv)
    heads = args.judge == "heads"
    default_steps = HEADS_DEFAULT_STEPS if heads else DEFAULT_STEPS
    steps = default_steps if args.steps is None and args.minutes is None else args.steps
    config = (HeadsTrainConfig if heads else TrainConfig)(
        family=args.family, seed=args.seed, steps=steps, minutes=args.minutes, batch=args.batch, lr=args.lr,
        sigma_sampling=args.sigma_sampling)

    from devtools.harness.comfy_env import boot, find_comfyui
    comfy_path = find_comfyui(args.comfyui)
    if comfy_path is None:
        raise SystemExit("No ComfyUI found: pass --comfyui PATH or set COMFYUI_PATH.")
    boot(comfy_path, BENCH_RUNTIME)
    torch.set_num_threads(args.threads)

    started = time.perf_counter()
    result = trained_model_file(config, args.out)
    print(f"{'cached' if result.cached else 'trained'}: {result.path}")
    print(f"steps {result.steps}, final training loss (mean of last 10%) {_tail_mean(result.losses):.4f}, "
          f"held-out loss {result.eval_before:.4f} -> {result.eval_after:.4f}, "
          f"{time.perf_counter() - started:.0f} s")

    if heads:
        patcher = heads_patcher(result.path)
        wan = patcher.model.diffusion_model
        print(f"built from HEADS_MODEL_CONFIG: {len(wan.blocks)} blocks x {wan.num_heads} heads x "
              f"{wan.dim // wan.num_heads}, weights loaded from the file")
    else:
        import comfy.sd
        patcher = comfy.sd.load_diffusion_model(result.path)
        print(f"UNETLoader path: loads as {type(patcher.model).__name__} / "
              f"{type(patcher.model.model_config).__name__}")
    if not args.no_samples:
        stem = os.path.splitext(result.path)[0]
        shape = dict(frames=config.frames, height=config.height, width=config.width)
        rows = []
        for motion in procedural.MOTION_CLASSES:
            generated = [sample_class(patcher, motion, seed=s, **shape) for s in range(SAMPLES_PER_CLASS)]
            data = [procedural.make_clip(motion, 10_000 + s, **shape) for s in range(SAMPLES_PER_CLASS)]
            rows += [(f"data {motion}", data[0]), (f"gen {motion}", generated[0])]
            print(f"{motion:>9}: mean frame difference over {SAMPLES_PER_CLASS} clips: data {_mean_motion(data):.3f}, "
                  f"generated {_mean_motion(generated):.3f}")
        plot_sample_grid(rows, stem + "_samples.png", title=os.path.basename(stem))
        print(f"samples: {stem}_samples.png")


if __name__ == "__main__":
    main()
