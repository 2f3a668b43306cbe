"""Bench variants of FreeAccel_AdaCache (fast/slow, with and without MoReg) against ComfyUI's own step caches.

Peers are core EasyCache and LazyCache at their node defaults, applied through the core node classes. Core EasyCache
adds its cached difference to the model input in place, which corrupts fp32 (CPU) runs; "EasyCache (input cloned)"
puts a wrapper in front of it that hands EasyCache a copy of the input, so both behaviours are reported.
"""
from .make_workflow import wan21_text_to_video

FAMILIES = ("wan21", "flux")
STEPS = 30
VIDEO = ("wan21", "wan22", "hunyuan_video", "ltxv", "mochi")
CORE_DEFAULTS = {"reuse_threshold": 0.2, "start_percent": 0.15, "end_percent": 0.95, "verbose": False}


def _adacache(preset, moreg):
    def apply(model):
        from .comfy_env import current_runtime  # booted before variants are applied
        runtime = current_runtime()
        settings = runtime.pack_module("accel_core.adacache").AdaCacheSettings(preset=preset, moreg=moreg)
        return runtime.pack_module("nodes.adacache").apply_adacache(model, settings)
    return apply


def _core(node_name, clone_input=False):
    def apply(model):
        from comfy_extras import nodes_easycache
        import comfy.patcher_extension
        if clone_input:
            model = model.clone()
            # registered first, so it is the outermost DIFFUSION_MODEL wrapper: EasyCache only ever sees a copy
            model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "bench_clone_input",
                                       lambda executor, x, *args, **kwargs: executor(x.clone(), *args, **kwargs))
        node = getattr(nodes_easycache, node_name)
        return node.execute(model, **CORE_DEFAULTS).result[0]
    return apply


def variants(family):
    out = [("AdaCache fast", _adacache("fast_30", False)), ("AdaCache slow", _adacache("slow_30", False))]
    if family in VIDEO:
        out += [("AdaCache fast + MoReg", _adacache("fast_30", True)),
                ("AdaCache slow + MoReg", _adacache("slow_30", True))]
    out += [("EasyCache", _core("EasyCacheNode")),
            ("EasyCache (input cloned)", _core("EasyCacheNode", clone_input=True)),
            ("LazyCache", _core("LazyCacheNode"))]
    return out


# ---------------------------------------------------------------------------------------------------------------
# example workflows (python bench/make_workflow.py --build bench.variants_adacache)

_HF = "https://huggingface.co"
_NOTE = ("**AdaCache + MoReg** reuses the whole transformer stack for several steps when the content changes slowly "
         "(measured at the middle block) and computes more often when it changes fast. The first two and last two "
         "steps always run. Presets are the official 30- and 100-step codebooks, scaled to your step count. "
         "{extra} The console reports `AdaCache: computed X of Y steps (rates ...)` after sampling.")


def _wan21(wf):
    wf.note(_NOTE.format(extra="MoReg (on here) computes more often when there is more motion between frames."),
            title="About this workflow")
    shift, positive, negative, vae = wan21_text_to_video(wf)
    cache = wf.add("FreeAccel_AdaCache", preset="fast_30", moreg=True)
    wf.link(shift, "MODEL", cache, "model")
    latent = wf.add("EmptyHunyuanLatentVideo", width=832, height=480, length=33, batch_size=1)
    wf.sample_decode_save((cache, "MODEL"), (positive, "CONDITIONING"), (negative, "CONDITIONING"),
                          (latent, "LATENT"), (vae, "VAE"),
                          dict(seed=42, steps=30, cfg=6.0, sampler_name="uni_pc", scheduler="simple", denoise=1.0),
                          "SaveWEBM", dict(filename_prefix="wan21_t2v_adacache", fps=16.0))
    wf.group("FreeAccel", [cache])


def _flux(wf):
    wf.note(_NOTE.format(extra="MoReg is for video models and stays off for Flux."), title="About this workflow")
    unet = wf.add("UNETLoader", unet_name="flux1-dev.safetensors")
    wf.model_file(unet, "flux1-dev.safetensors",
                  f"{_HF}/black-forest-labs/FLUX.1-dev/resolve/main/flux1-dev.safetensors", "diffusion_models")
    clip = wf.add("DualCLIPLoader", clip_name1="clip_l.safetensors", clip_name2="t5xxl_fp16.safetensors",
                  type="flux")
    wf.model_file(clip, "clip_l.safetensors",
                  f"{_HF}/comfyanonymous/flux_text_encoders/resolve/main/clip_l.safetensors", "text_encoders")
    wf.model_file(clip, "t5xxl_fp16.safetensors",
                  f"{_HF}/comfyanonymous/flux_text_encoders/resolve/main/t5xxl_fp16.safetensors", "text_encoders")
    vae = wf.add("VAELoader", vae_name="ae.safetensors")
    wf.model_file(vae, "ae.safetensors", f"{_HF}/black-forest-labs/FLUX.1-dev/resolve/main/ae.safetensors", "vae")
    positive = wf.add("CLIPTextEncode", text="a lighthouse on a rocky coast at sunset, detailed, photographic")
    wf.link(clip, "CLIP", positive, "clip")
    guidance = wf.add("FluxGuidance", guidance=3.5)
    wf.link(positive, "CONDITIONING", guidance, "conditioning")
    negative = wf.add("ConditioningZeroOut")
    wf.link(positive, "CONDITIONING", negative, "conditioning")
    cache = wf.add("FreeAccel_AdaCache", preset="fast_30", moreg=False)
    wf.link(unet, "MODEL", cache, "model")
    latent = wf.add("EmptySD3LatentImage", width=1024, height=1024, batch_size=1)
    wf.sample_decode_save((cache, "MODEL"), (guidance, "CONDITIONING"), (negative, "CONDITIONING"),
                          (latent, "LATENT"), (vae, "VAE"),
                          dict(seed=42, steps=30, cfg=1.0, sampler_name="euler", scheduler="simple", denoise=1.0),
                          "SaveImage", dict(filename_prefix="flux_adacache"))
    wf.group("FreeAccel", [cache])


WORKFLOWS = {"wan21_t2v_adacache.json": _wan21, "flux_adacache.json": _flux}


# ---------------------------------------------------------------------------------------------------------------
# distance survey: what c (and MoReg's motion score) does a model produce per step? Every step is computed (k = 1).
# python -m bench.variants_adacache wan21 flux            tiny random-weight families
# python -m bench.variants_adacache --trained --moreg     the trained tiny WAN, per motion class


def step_records(case, steps=STEPS, cfg=3.0, moreg=False):
    """AdaCache's record of every computed step of ``case`` (a tiny_models.TinyCase) with a codebook that reuses
    nothing, so each distance is c at k = 1 on the unpatched trajectory."""
    from . import tiny_models
    from .comfy_env import current_runtime
    runtime = current_runtime()
    settings = runtime.pack_module("accel_core.adacache").AdaCacheSettings(
        preset="custom", custom_codebook="1.00:1", moreg=moreg)
    model = runtime.pack_module("nodes.adacache").apply_adacache(case.patcher, settings)
    tiny_models.sample(case, model=model, steps=steps, cfg=cfg)
    return list(runtime.pack_module("nodes.integration.run_state").last_run(model, "freeaccel_adacache").steps)


def _trained_cases(runtime, motions):
    from .train_tiny import class_case, load_bench_model
    patcher = load_bench_model(runtime.base_dir)[1]
    return [(f"trained wan21, {motion}", class_case(patcher, motion)) for motion in motions]


def main(argv=None):
    import argparse
    import tempfile
    from . import procedural
    from .comfy_env import BENCH_RUNTIME, boot, find_comfyui
    parser = argparse.ArgumentParser(description="AdaCache distance survey (every step computed)")
    parser.add_argument("targets", nargs="*", help="tiny random-weight families; with --trained: motion classes "
                                                   "(default: all)")
    parser.add_argument("--trained", action="store_true", help="the bench's trained tiny WAN 2.1")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--moreg", action="store_true", help="also print MoReg's motion score per step")
    args = parser.parse_args(argv)
    if args.trained:
        runtime = boot(find_comfyui(), BENCH_RUNTIME)
        cases = _trained_cases(runtime, args.targets or procedural.MOTION_CLASSES)
    else:
        if not args.targets:
            parser.error("name the tiny families to survey")
        boot(find_comfyui(), tempfile.mkdtemp(prefix="freeaccel-adacache-"))
        from . import tiny_models  # imports ComfyUI: after boot
        cases = [(family, tiny_models.build(family)) for family in args.targets]
    for name, case in cases:
        records = step_records(case, args.steps, moreg=args.moreg)
        distances = [r.distance for r in records if r.distance is not None]
        ordered = sorted(distances)
        print(f"{name}: {len(distances)} distances, min {ordered[0]:.4f}, median {ordered[len(ordered) // 2]:.4f}, "
              f"max {ordered[-1]:.4f}")
        print("  per step:", " ".join(f"{d:.3f}" for d in distances))
        if args.moreg:
            print("  motion:  ", " ".join(f"{r.motion:.3f}" for r in records if r.motion is not None))


if __name__ == "__main__":
    main()
