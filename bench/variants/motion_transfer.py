"""Bench of FreeAccel_MotionTransferGuider (its example workflow: devtools/workflows/motion_transfer.py).

- ``motion_transfer_timings()``: ``fastvmt`` vs ``ditflow`` on tiny WAN in one process: wall time of each run and
  the AMF losses of the guidance (``python -m bench.variants.motion_transfer``).
"""
import statistics
import time


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

    from devtools.harness import tiny_models
    from devtools.harness.comfy_env import current_runtime

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

    from devtools.harness.comfy_env import boot, find_comfyui

    parser = argparse.ArgumentParser(prog="python -m bench.variants.motion_transfer",
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


if __name__ == "__main__":
    main()
