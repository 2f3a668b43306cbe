"""Train tiny REAL ComfyUI UNets of the SD1.5 and SDXL layouts on procedural still images, so that token-pruning
quality can be compared on a model whose attention maps have structure (random weights give noise maps).

    python -m bench.trained.train_tiny_unet [--family sd15|sdxl] [--steps N] [--threads N]

The models are ``devtools.harness.tiny_models``' SD1.5 layout (attention at downsample 1 and 2, one transformer block
per stage, 32 channels, 2 heads) and SDXL layout (attention at 2 and 4 only, linear proj_in, pooled + size
conditioning), built with ComfyUI's own classes (supported_models -> get_model -> ModelPatcher). Data: 32 x 32 x 4
latents of ``procedural.make_image`` in IMAGE_CLASSES (discs, squares, mixed), each conditioned on its class prompt
(or, with probability ``uncond_prob``, the unconditional embedding). Loss: ComfyUI's own prediction through
``BaseModel.apply_model`` at a sigma of the model's schedule (a uniform timestep), compared as (noisy - denoised) /
sigma against (noisy - clean) / sigma: the noise, i.e. the usual eps objective of these EPS models.

The trained weights are cached by a hash of the config in the bench runtime (``<stem>.pt`` and ``<stem>.json``) and
loaded into a freshly built model of the same layout: ComfyUI's UNETLoader detection does not recognise these
reduced-width configs as SD1.5 / SDXL, so the bench builds the model itself. Deterministic for a config and thread
count.
"""
import argparse
import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass

import torch

from bench.trained import procedural
from bench.trained.train_tiny import _lr_factor, _progress, _tail_mean, plot_losses
from devtools.harness.comfy_env import BENCH_RUNTIME

TRAINER_VERSION = 1  # bump when the code changes what a config produces
FAMILIES = ("sd15", "sdxl")
DEFAULT_STEPS = 1200  # about 13 min (SD1.5 layout) and 8 min (SDXL layout) on 2 CPU cores
DEFAULT_OUT = os.path.join(BENCH_RUNTIME, "models", "freeaccel_trained_unets")
PROMPT_TOKENS = 8
SIZE = 32  # latent side: the SD1.5 layout's full-resolution attention then has 1024 tokens


@dataclass(frozen=True)
class UnetTrainConfig:
    family: str = "sd15"
    seed: int = 0
    steps: int = DEFAULT_STEPS
    batch: int = 8
    lr: float = 1e-3
    warmup: int = 50
    lr_final_fraction: float = 0.1
    grad_clip: float = 1.0
    uncond_prob: float = 0.1
    size: int = SIZE

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"train_tiny_unet trains {FAMILIES}, not {self.family!r}")


def build_case(family, seed=0, size=SIZE):
    """A tiny_models.TinyCase of ``family`` at a size x size latent (its conditioning is replaced per class)."""
    from devtools.harness import tiny_models
    return tiny_models.build(family, height=size, width=size, seed=seed)


def class_conditioning(case, shapes):
    """(positive, negative) CONDITIONING of image class ``shapes`` for ``case``: the class prompt and the
    unconditional embedding at the model's context width; SDXL also gets a fixed pooled vector and the sizes."""
    dim = case.positive[0][0].shape[-1]
    extra = {key: value for key, value in case.positive[0][1].items() if key != "pooled_output"}
    if case.family == "sdxl":
        pooled = case.positive[0][1]["pooled_output"]
        extra = dict(extra, pooled_output=torch.zeros_like(pooled))
    positive = [[procedural.image_prompt_embedding(shapes, tokens=PROMPT_TOKENS, dim=dim)[None], dict(extra)]]
    negative = [[procedural.uncond_embedding(tokens=PROMPT_TOKENS, dim=dim)[None], dict(extra)]]
    return positive, negative


def _model_kwargs(case, model, batch):
    """Extra apply_model inputs: attention on torch SDPA (ComfyUI's CPU default, sub-quadratic attention, trains
    about 3x slower here; the forward results agree up to float rounding) and SDXL's adm vector ``y`` as sampling
    builds it from the class conditioning."""
    from devtools.harness.comfy_env import current_runtime
    attention = current_runtime().pack_module("nodes.integration.attention")
    patcher = attention.set_attention_backend(case.patcher.clone(), "sdpa")
    kwargs = {"transformer_options": patcher.model_options["transformer_options"]}
    if case.family == "sdxl":
        y = model.encode_adm(**class_conditioning(case, procedural.IMAGE_CLASSES[0])[0][0][1])
        kwargs["y"] = y.expand(batch, -1)
    return kwargs


def eps_loss(model, clean, context, sigma, noise, **kwargs):
    sampling = model.model_sampling
    noisy = sampling.noise_scaling(sigma, noise, clean)
    denoised = model.apply_model(noisy, sigma, c_crossattn=context, **kwargs)
    scale = sigma.view(-1, 1, 1, 1)
    return torch.nn.functional.mse_loss((noisy - denoised) / scale, (noisy - clean) / scale)


def _training_batch(config, model, step, dim):
    g = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    labels = torch.randint(len(procedural.IMAGE_CLASSES), (config.batch,), generator=g)
    seeds = torch.randint(2 ** 62, (config.batch,), generator=g)
    clean = torch.stack([procedural.make_image(int(s), channels=4, height=config.size, width=config.size,
                                               shapes=procedural.IMAGE_CLASSES[label])
                         for label, s in zip(labels.tolist(), seeds.tolist())])
    prompts = torch.stack([procedural.image_prompt_embedding(c, tokens=PROMPT_TOKENS, dim=dim)
                           for c in procedural.IMAGE_CLASSES])
    keep = torch.rand(config.batch, generator=g) >= config.uncond_prob
    context = torch.where(keep.view(-1, 1, 1), prompts[labels],
                          procedural.uncond_embedding(tokens=PROMPT_TOKENS, dim=dim))
    timestep = torch.rand(config.batch, generator=g) * (model.model_sampling.num_timesteps - 1)
    sigma = model.model_sampling.sigma(timestep)
    return clean, context, sigma, torch.randn(clean.shape, generator=g)


def train(config, *, progress=True):
    """(case with the trained model, losses): trained from tiny_models' initial weights."""
    case = build_case(config.family, config.seed, config.size)
    model = case.patcher.model
    model.diffusion_model.requires_grad_(True)
    with torch.no_grad():  # start by predicting zero noise instead of tiny_models' large random output
        model.diffusion_model.out[-1].weight.zero_()
        model.diffusion_model.out[-1].bias.zero_()
    params = list(model.diffusion_model.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(config, step))
    dim = case.positive[0][0].shape[-1]
    kwargs = _model_kwargs(case, model, config.batch)
    losses = []
    bar = _progress(config.steps, progress)
    for step in range(config.steps):
        loss = eps_loss(model, *_training_batch(config, model, step, dim), **kwargs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}", refresh=False)
        bar.update()
    bar.close()
    model.diffusion_model.requires_grad_(False)
    return case, losses


def _stem(config, out_dir):
    blob = json.dumps({"config": dataclasses.asdict(config), "version": TRAINER_VERSION}, sort_keys=True)
    return os.path.join(out_dir, f"freeaccel_trained_{config.family}_{hashlib.sha256(blob.encode()).hexdigest()[:12]}")


def trained_case(config, out_dir=DEFAULT_OUT, *, progress=True):
    """(TinyCase holding the trained model, record dict): loaded from ``out_dir`` when cached, else trained there."""
    os.makedirs(out_dir, exist_ok=True)
    stem = _stem(config, out_dir)
    if os.path.exists(stem + ".pt") and os.path.exists(stem + ".json"):
        case = build_case(config.family, config.seed, config.size)
        case.patcher.model.diffusion_model.load_state_dict(torch.load(stem + ".pt", weights_only=True))
        with open(stem + ".json") as f:
            return case, dict(json.load(f), cached=True)
    started = time.perf_counter()
    case, losses = train(config, progress=progress)
    record = {"config": dataclasses.asdict(config), "threads": torch.get_num_threads(), "losses": losses,
              "final_loss": _tail_mean(losses), "seconds": time.perf_counter() - started}
    torch.save(case.patcher.model.diffusion_model.state_dict(), stem + ".pt")
    plot_losses(losses, stem + "_loss.png", title=f"{os.path.basename(stem)}: {config.steps} steps")
    with open(stem + ".json", "w") as f:  # written last: its presence marks a complete result
        json.dump(record, f)
    return case, dict(record, cached=False)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.trained.train_tiny_unet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="sd15", choices=FAMILIES)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads")
    parser.add_argument("--comfyui", help="ComfyUI checkout (default: $COMFYUI_PATH)")
    args = parser.parse_args(argv)
    from devtools.harness.comfy_env import boot, find_comfyui
    comfy_path = find_comfyui(args.comfyui)
    if comfy_path is None:
        raise SystemExit("No ComfyUI found: pass --comfyui PATH or set COMFYUI_PATH.")
    boot(comfy_path, BENCH_RUNTIME)
    torch.set_num_threads(args.threads)
    _, record = trained_case(UnetTrainConfig(family=args.family, seed=args.seed, steps=args.steps))
    print(f"{args.family}: {'cached' if record['cached'] else 'trained'}, {len(record['losses'])} steps, final loss "
          f"(mean of last 10%) {record['final_loss']:.4f}, first {record['losses'][0]:.4f}, {record['seconds']:.0f} s")


if __name__ == "__main__":
    main()
