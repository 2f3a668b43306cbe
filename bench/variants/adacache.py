"""Bench variants of FreeAccel_AdaCache (fast/slow, with and without MoReg) against ComfyUI's own step caches.

Peers are core EasyCache and LazyCache at their node defaults, applied through the core node classes. Core EasyCache
adds its cached difference to the model input in place, which corrupts fp32 (CPU) runs; "EasyCache (input cloned)"
puts a wrapper in front of it that hands EasyCache a copy of the input, so both behaviours are reported.
"""

FAMILIES = ("wan21", "flux")
STEPS = 30
TRAINED_CFG = 5.0  # the trained-model protocol of issue 15 (30 euler steps, cfg 5); tiny random models keep cfg 3
VIDEO = ("wan21", "wan22", "hunyuan_video", "ltxv", "mochi")
CORE_DEFAULTS = {"reuse_threshold": 0.2, "start_percent": 0.15, "end_percent": 0.95, "verbose": False}


def _adacache(preset, moreg=False, **settings):
    def apply(model):
        from devtools.harness.comfy_env import current_runtime  # booted before variants are applied
        runtime = current_runtime()
        adacache_settings = runtime.pack_module("accel_core.adacache").AdaCacheSettings(
            preset=preset, moreg=moreg, **settings)
        return runtime.pack_module("nodes.adacache").apply_adacache(model, adacache_settings)
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
    out = [("AdaCache slow", _adacache("slow_30")), ("AdaCache medium", _adacache("medium_30")),
           ("AdaCache fast", _adacache("fast_30"))]
    if family in VIDEO:
        out += [("AdaCache medium + MoReg", _adacache("medium_30", True)),
                ("AdaCache fast + MoReg", _adacache("fast_30", True)),
                ("AdaCache fast + MoReg (paper: fixed)", _adacache("fast_30", True, moreg_reference="fixed"))]
    out += [("EasyCache", _core("EasyCacheNode")),
            ("EasyCache (input cloned)", _core("EasyCacheNode", clone_input=True)),
            ("LazyCache", _core("LazyCacheNode"))]
    return out


# ---------------------------------------------------------------------------------------------------------------
# distance survey: what c (and MoReg's motion score) does a model produce per step? Every step is computed (k = 1).
# python -m bench.variants.adacache wan21 flux            tiny random-weight families
# python -m bench.variants.adacache --trained --moreg     the trained tiny WAN, per motion class


def step_records(case, steps=STEPS, cfg=3.0, moreg=False):
    """AdaCache's record of every computed step of ``case`` (a tiny_models.TinyCase) with a codebook that reuses
    nothing, so each distance is c at k = 1 on the unpatched trajectory."""
    from devtools.harness import tiny_models
    model = _adacache("custom", moreg, custom_codebook="1.00:1")(case.patcher)
    tiny_models.sample(case, model=model, steps=steps, cfg=cfg)
    return list(_last_run(model).steps)


def _last_run(model):
    """AdaCache's record of the last sampling run of ``model`` (a model AdaCache patched)."""
    from devtools.harness.comfy_env import current_runtime
    return current_runtime().pack_module("nodes.integration.run_state").last_run(model, "freeaccel_adacache")


# ---------------------------------------------------------------------------------------------------------------
# codebook sweep: how many steps each codebook computes and how far its output lands from the uncached run, per
# (motion class, seed) of the trained tiny WAN; this is how the presets were chosen.
# python -m bench.variants.adacache --trained --sweep [--codebooks A B ...] [--seeds 0,1] [--reuse hold,linear]

SWEEP_CODEBOOKS = ("fast_30", "0.08:5,0.16:4,0.24:3,0.32:2,0.40:1,1.00:1", "0.08:4,0.16:3,0.24:2,0.32:2,0.40:1,1.00:1",
                   "0.08:4,0.16:3,0.24:2,0.32:1,1.00:1", "medium_30", "slow_30")  # preset names or codebooks


def sweep_rows(cases, codebooks, seeds, reuse_modes, moreg_options, steps=STEPS, cfg=TRAINED_CFG):
    """One row per (codebook, reuse, moreg, case, seed): computed steps and PSNR against the uncached run."""
    import itertools
    from bench import metrics
    from devtools.harness import tiny_models
    from devtools.harness.comfy_env import current_runtime
    presets = current_runtime().pack_module("accel_core.adacache").PRESETS
    rows = []
    for (name, case), seed in itertools.product(cases, seeds):
        reference = tiny_models.sample(case, steps=steps, cfg=cfg, seed=seed)
        for codebook, reuse, moreg in itertools.product(codebooks, reuse_modes, moreg_options):
            preset = codebook if codebook in presets else "custom"
            model = _adacache(preset, custom_codebook=codebook, reuse=reuse, **moreg_settings(moreg))(case.patcher)
            output = tiny_models.sample(case, model=model, steps=steps, cfg=cfg, seed=seed)
            computed = len(_last_run(model).computed_steps)
            rows.append({"codebook": codebook, "reuse": reuse, "moreg": moreg, "case": name, "seed": seed,
                         "computed": computed, "psnr": metrics.psnr(output, reference)})
    return rows


def moreg_settings(text):
    """AdaCacheSettings keywords for a sweep's MoReg option: "off", or reference[:exponent[:normaliser]]
    (e.g. fixed, run_minimum:4)."""
    if text == "off":
        return {"moreg": False}
    reference, *numbers = text.split(":")
    names = ("moreg_exponent", "moreg_normaliser")
    return {"moreg": True, "moreg_reference": reference, **{name: float(n) for name, n in zip(names, numbers)}}


def format_sweep(rows, steps=STEPS):
    """Per (codebook, reuse, moreg): step ratio (steps / mean computed), worst and median PSNR, worst per case."""
    import statistics
    groups = {}
    for row in rows:
        groups.setdefault((row["codebook"], row["reuse"], row["moreg"]), []).append(row)
    case_names = list(dict.fromkeys(row["case"] for row in rows))
    lines = ["| codebook | reuse | MoReg | step ratio | worst dB | median dB | " + " | ".join(
        f"worst dB {name}" for name in case_names) + " |", "|---" * (6 + len(case_names)) + "|"]
    for (codebook, reuse, moreg), group in groups.items():
        values = [row["psnr"] for row in group]
        per_case = [min(row["psnr"] for row in group if row["case"] == name) for name in case_names]
        ratio = steps / statistics.mean(row["computed"] for row in group)
        lines.append(f"| {codebook} | {reuse} | {moreg} | {ratio:.2f}x | {min(values):.1f} | "
                     f"{statistics.median(values):.1f} | " + " | ".join(f"{v:.1f}" for v in per_case) + " |")
    return "\n".join(lines)


def _trained_cases(runtime, motions):
    from bench.trained.train_tiny import class_case, load_bench_model
    patcher = load_bench_model(runtime.base_dir)[1]
    return [(f"trained wan21, {motion}", class_case(patcher, motion)) for motion in motions]


def main(argv=None):
    import argparse
    import tempfile
    from bench.trained import procedural
    from devtools.harness.comfy_env import BENCH_RUNTIME, boot, find_comfyui
    parser = argparse.ArgumentParser(description="AdaCache distance survey (every step computed) and codebook sweep")
    parser.add_argument("targets", nargs="*", help="tiny random-weight families; with --trained: motion classes "
                                                   "(default: all)")
    parser.add_argument("--trained", action="store_true", help="the bench's trained tiny WAN 2.1")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--moreg", action="store_true", help="also print MoReg's motion score per step")
    parser.add_argument("--sweep", action="store_true",
                        help="instead of the survey: computed steps and PSNR vs the uncached run per codebook")
    parser.add_argument("--codebooks", nargs="+", default=SWEEP_CODEBOOKS,
                        help="--sweep: codebooks (threshold:rate lists) or preset names to try")
    parser.add_argument("--seeds", default="0,1", help="--sweep: noise seeds per case (default: 0,1)")
    parser.add_argument("--reuse", default="hold,linear", help="--sweep: reuse modes (default: hold,linear)")
    parser.add_argument("--sweep-moreg", default="off,fixed,run_minimum",
                        help="--sweep: comma-separated MoReg options, each off or reference[:exponent[:normaliser]] "
                             "(default: off,fixed,run_minimum)")
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
    if args.sweep:
        rows = sweep_rows(cases, args.codebooks, [int(s) for s in args.seeds.split(",")], args.reuse.split(","),
                          args.sweep_moreg.split(","), args.steps)
        print(format_sweep(rows, args.steps))
        return
    for name, case in cases:
        records = step_records(case, args.steps, TRAINED_CFG if args.trained else 3.0, moreg=args.moreg)
        distances = [r.distance for r in records if r.distance is not None]
        ordered = sorted(distances)
        print(f"{name}: {len(distances)} distances, min {ordered[0]:.4f}, median {ordered[len(ordered) // 2]:.4f}, "
              f"max {ordered[-1]:.4f}")
        print("  per step:", " ".join(f"{d:.3f}" for d in distances))
        if args.moreg:
            print("  motion:  ", " ".join(f"{r.motion:.3f}" for r in records if r.motion is not None))


if __name__ == "__main__":
    main()
