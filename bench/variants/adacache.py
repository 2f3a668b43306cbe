"""Bench variants of FreeAccel_AdaCache (fast/slow, with and without MoReg) against ComfyUI's own step caches.

Peers are core EasyCache and LazyCache at their node defaults, applied through the core node classes. Core EasyCache
adds its cached difference to the model input in place, which corrupts fp32 (CPU) runs; "EasyCache (input cloned)"
puts a wrapper in front of it that hands EasyCache a copy of the input, so both behaviours are reported.
"""

FAMILIES = ("wan21", "flux")
STEPS = 30
VIDEO = ("wan21", "wan22", "hunyuan_video", "ltxv", "mochi")
CORE_DEFAULTS = {"reuse_threshold": 0.2, "start_percent": 0.15, "end_percent": 0.95, "verbose": False}


def _adacache(preset, moreg):
    def apply(model):
        from devtools.harness.comfy_env import current_runtime  # booted before variants are applied
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


# ---------------------------------------------------------------------------------------------------------------
# distance survey: what c (and MoReg's motion score) does a model produce per step? Every step is computed (k = 1).
# python -m bench.variants.adacache wan21 flux            tiny random-weight families
# python -m bench.variants.adacache --trained --moreg     the trained tiny WAN, per motion class


def step_records(case, steps=STEPS, cfg=3.0, moreg=False):
    """AdaCache's record of every computed step of ``case`` (a tiny_models.TinyCase) with a codebook that reuses
    nothing, so each distance is c at k = 1 on the unpatched trajectory."""
    from devtools.harness import tiny_models
    from devtools.harness.comfy_env import current_runtime
    runtime = current_runtime()
    settings = runtime.pack_module("accel_core.adacache").AdaCacheSettings(
        preset="custom", custom_codebook="1.00:1", moreg=moreg)
    model = runtime.pack_module("nodes.adacache").apply_adacache(case.patcher, settings)
    tiny_models.sample(case, model=model, steps=steps, cfg=cfg)
    return list(runtime.pack_module("nodes.integration.run_state").last_run(model, "freeaccel_adacache").steps)


def _trained_cases(runtime, motions):
    from bench.trained.train_tiny import class_case, load_bench_model
    patcher = load_bench_model(runtime.base_dir)[1]
    return [(f"trained wan21, {motion}", class_case(patcher, motion)) for motion in motions]


def main(argv=None):
    import argparse
    import tempfile
    from bench.trained import procedural
    from devtools.harness.comfy_env import BENCH_RUNTIME, boot, find_comfyui
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
        from devtools.harness import tiny_models  # imports ComfyUI: after boot
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
