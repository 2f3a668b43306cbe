"""Bench and example workflow of FreeAccel_MotionTransferGuider.

- ``motion_transfer_timings()``: ``fastvmt`` vs ``ditflow`` on tiny WAN in one process: wall time of each run and
  the AMF losses of the guidance (``python -m bench.variants_motion_transfer``).
- ``WORKFLOWS``: ``python bench/make_workflow.py --build bench.variants_motion_transfer``.
"""
import statistics
import time

from .make_workflow import wan21_loaders

FRAMES = 9  # latent frames of the tiny case


# --- fastvmt vs ditflow ----------------------------------------------------------------------------------------


def moving_reference(latent_shape, seed=5):
    """A reference latent whose content moves one latent column per frame (deterministic)."""
    import torch
    _, channels, frames, height, width = latent_shape
    plane = torch.randn(1, channels, height, width + frames, generator=torch.Generator().manual_seed(seed))
    return torch.stack([plane[..., t:t + width] for t in range(frames)], dim=2)


def motion_transfer_timings(frames=FRAMES, steps=8, guided_steps=3, iterations=10, denoise=0.75, height=24,
                            width=32, seed=0, repeats=3):
    """Sample tiny WAN with the guider in each mode (SDEdit start from the reference, as the workflow does).

    Runs are interleaved (plain, fastvmt, ditflow, plain, ...) ``repeats`` times; times are medians. Returns {mode:
    {"seconds", "guidance_seconds", "first_losses", "last_losses", "final_loss"}} plus "plain_seconds" (guided_steps
    = 0; guidance_seconds = seconds - plain_seconds), "speedup" (ditflow / fastvmt wall time of the whole run) and
    "guidance_speedup" (the same for the guidance alone). Losses are each mode's own objective (fastvmt: its frame
    pairs and windows plus the tracking term; ditflow: all pairs, full frames), per guided step: first and last real
    iteration.
    """
    import torch
    import comfy.samplers
    from comfy_extras import nodes_custom_sampler as custom

    from . import tiny_models
    from .comfy_env import current_runtime

    case = tiny_models.build("wan21", frames=frames, height=height, width=width)
    reference = moving_reference(case.latent.shape)
    runtime = current_runtime()
    settings_class = runtime.pack_module("accel_core.motion_transfer").MotionTransferSettings
    motion_transfer_guider = runtime.pack_module("nodes.motion_guider").motion_transfer_guider

    def run(mode, guided):
        settings = settings_class(cfg=5.0, mode=mode, guided_steps=guided, iterations=iterations)
        guider = motion_transfer_guider(case.patcher, case.positive, case.negative, {"samples": reference}, settings)
        sigmas = custom.BasicScheduler.execute(case.patcher, "simple", steps, denoise).result[0]
        start = time.perf_counter()
        with torch.inference_mode():
            custom.SamplerCustomAdvanced.execute(custom.Noise_RandomNoise(seed), guider,
                                                 comfy.samplers.sampler_object("euler"), sigmas,
                                                 {"samples": reference})
        return time.perf_counter() - start, getattr(guider, "loss_history", [])

    run("fastvmt", 0)  # warm-up
    times, histories = {"plain": [], "fastvmt": [], "ditflow": []}, {}
    for _ in range(repeats):
        times["plain"].append(run("fastvmt", 0)[0])
        for mode in ("fastvmt", "ditflow"):
            seconds, histories[mode] = run(mode, guided_steps)
            times[mode].append(seconds)
    results = {"plain_seconds": statistics.median(times["plain"])}
    for mode in ("fastvmt", "ditflow"):
        seconds, history = statistics.median(times[mode]), histories[mode]
        results[mode] = {"seconds": seconds, "guidance_seconds": seconds - results["plain_seconds"],
                         "first_losses": [h[0] for h in history],
                         "last_losses": [h[-1] for h in history], "final_loss": history[-1][-1]}
    results["speedup"] = results["ditflow"]["seconds"] / results["fastvmt"]["seconds"]
    results["guidance_speedup"] = results["ditflow"]["guidance_seconds"] / results["fastvmt"]["guidance_seconds"]
    return results


def main():
    import argparse
    import json
    import tempfile

    from .comfy_env import boot, find_comfyui

    parser = argparse.ArgumentParser(prog="python -m bench.variants_motion_transfer",
                                     description=motion_transfer_timings.__doc__)
    parser.add_argument("--comfyui", help="ComfyUI checkout (default: $COMFYUI_PATH)")
    parser.add_argument("--frames", type=int, default=FRAMES)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--guided-steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--height", type=int, default=24, help="latent height (tokens = height / 2)")
    parser.add_argument("--width", type=int, default=32, help="latent width (tokens = width / 2)")
    args = parser.parse_args()
    boot(find_comfyui(args.comfyui), tempfile.mkdtemp(prefix="freeaccel_motion_"))
    import comfy.utils
    import torch
    comfy.utils.PROGRESS_BAR_ENABLED = False
    torch.set_num_threads(1)  # tiny models gain nothing from threads; on a shared CPU spin-waits dominate
    print(json.dumps(motion_transfer_timings(frames=args.frames, steps=args.steps, guided_steps=args.guided_steps,
                                             repeats=args.repeats, height=args.height, width=args.width), indent=2))


# --- example workflow (UI format) ------------------------------------------------------------------------------

_NOTE = (
    "**Motion Transfer Guider (FastVMT)** transfers the motion of a reference video to a new prompt, training-free. "
    "At the first `guided_steps` steps it optimises the latent (AdamW, `iterations` per step) so that the attention "
    "motion flow of block `amf_block` matches the reference's; `fastvmt` mode compares each frame with its next "
    "`temporal_span`-1 frames through a local search window and reuses gradients (`recompute_every`), `ditflow` is "
    "the unaccelerated baseline.\n\n"
    "Put a video named `reference.mp4` into ComfyUI's `input` folder (or pick another in **Load Video**). It is cut "
    "to 33 frames (ImageFromBatch), resized to 832x480 and VAE-encoded; that latent is both the motion reference and "
    "the SDEdit start: BasicScheduler `denoise` 0.75 noises it to the first guided step, as FastVMT does. The "
    "reference and the output must have the same length and size.")


def _wan21_motion_transfer(wf):
    wf.note(_NOTE, title="About this workflow")
    unet, clip, vae = wan21_loaders(wf)
    shift = wf.add("ModelSamplingSD3", shift=7.0)
    wf.link(unet, "MODEL", shift, "model")

    positive = wf.add("CLIPTextEncode", text="a red fox running through fresh snow, tracking shot")
    negative = wf.add("CLIPTextEncode", text="blurry, static, low quality, distorted")
    empty = wf.add("CLIPTextEncode", title="Reference prompt (empty)", text="")
    for encode in (positive, negative, empty):
        wf.link(clip, "CLIP", encode, "clip")

    video = wf.add("LoadVideo", file="reference.mp4")
    components = wf.add("GetVideoComponents")
    wf.link(video, "VIDEO", components, "video")
    frames = wf.add("ImageFromBatch", batch_index=0, length=33)
    wf.link(components, "images", frames, "image")
    resize = wf.add("ImageScale", upscale_method="bilinear", width=832, height=480, crop="center")
    wf.link(frames, "IMAGE", resize, "image")
    encode = wf.add("VAEEncode")
    wf.link(resize, "IMAGE", encode, "pixels")
    wf.link(vae, "VAE", encode, "vae")

    guider = wf.add("FreeAccel_MotionTransferGuider", cfg=5.8, mode="fastvmt", guided_steps=10, iterations=10)
    wf.link(shift, "MODEL", guider, "model")
    wf.link(positive, "CONDITIONING", guider, "positive")
    wf.link(negative, "CONDITIONING", guider, "negative")
    wf.link(encode, "LATENT", guider, "reference")
    wf.link(empty, "CONDITIONING", guider, "reference_conditioning")
    noise = wf.add("RandomNoise", noise_seed=42)
    sampler = wf.add("KSamplerSelect", sampler_name="euler")
    sigmas = wf.add("BasicScheduler", scheduler="simple", steps=50, denoise=0.75)
    wf.link(shift, "MODEL", sigmas, "model")
    sample = wf.add("SamplerCustomAdvanced")
    wf.link(noise, "NOISE", sample, "noise")
    wf.link(guider, "GUIDER", sample, "guider")
    wf.link(sampler, "SAMPLER", sample, "sampler")
    wf.link(sigmas, "SIGMAS", sample, "sigmas")
    wf.link(encode, "LATENT", sample, "latent_image")
    decode = wf.add("VAEDecode")
    wf.link(sample, "output", decode, "samples")
    wf.link(vae, "VAE", decode, "vae")
    save = wf.add("SaveAnimatedWEBP", filename_prefix="wan21_motion_transfer", fps=16.0)
    wf.link(decode, "IMAGE", save, "images")
    wf.group("FreeAccel", [guider])


WORKFLOWS = {"wan21_motion_transfer.json": _wan21_motion_transfer}

if __name__ == "__main__":
    main()
