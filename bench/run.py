"""FreeAccel headless runner and benchmark (run from the pack folder with ComfyUI's Python).

    python -m bench.run --workflow workflows/wan21_t2v_adacache.json          # run a bundled workflow (real weights)
    python -m bench.run --workflow workflows/wan21_t2v_adacache.json --tiny   # same graph with tiny random models
    python -m bench.run --bench --tiny                                        # a quick representative subset
    python -m bench.run --bench --tiny --full                                 # every technique on every family
    python -m bench.run --bench --workflow workflows/flux_adacache.json       # real weights: as given vs unpatched
    python -m bench.run --bench --trained                                     # tiny models trained on procedural data
    python -m bench.run --bench --real-shapes                                 # real widths, heads and token counts

ComfyUI comes from --comfyui, $COMFYUI_PATH, or the ComfyUI this pack is installed in (``../..``). Tiny runs use their
own ComfyUI base directory (bench/runtime) so nothing is written into the user's model folders.
"""
import argparse
import importlib
import json
import logging
import os
import sys
import time

from bench import benchmark
from devtools.harness.comfy_env import BENCH_RUNTIME, PACK_ROOT, boot, find_comfyui

log = logging.getLogger("freeaccel.bench")

# technique -> bench module (bench/variants/<technique>.py); each module gives FAMILIES, STEPS and variants(family),
# optionally FRAMES (latent frames for video families), LATENT_SIZES ({family: (height, width)} of the latent) and CFG.
TECHNIQUES = {
    "attention_backend": "variants.attention_backend",
    "adacache": "variants.adacache",
    "token_prune": "variants.token_prune",
    "temporal_prune": "variants.temporal_prune",
    "local_window": "variants.local_window",
}
# --bench --tiny without --full, --techniques or --families: one representative family per technique, chosen so that
# a newcomer's first run takes minutes, not the half hour of the full set (TokenPrune's UNets at 512²/1024²-equivalent
# latents alone take over 20 minutes).
QUICK = (("attention_backend", "wan21"), ("adacache", "wan21"), ("adacache", "flux"), ("temporal_prune", "wan21"),
         ("token_prune", "wan21"), ("local_window", "wan21"))
TRAINED_FAMILIES = ("wan21", "sd15", "sdxl")  # families with a trained tiny model (--trained)
TRAINED_UNET_TECHNIQUES = ("token_prune",)  # the trained UNets exist for TokenPrune's comparison with core ToMe
VIDEO_FAMILIES = ("wan21", "wan22", "hunyuan_video", "ltxv", "mochi", "svd")
DEFAULT_OUT = os.path.join(PACK_ROOT, "bench", "out")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui", help="ComfyUI checkout (default: $COMFYUI_PATH, else ../.. of this pack)")
    parser.add_argument("--workflow", help="a UI-format workflow JSON (e.g. one in workflows/)")
    parser.add_argument("--bench", action="store_true", help="benchmark instead of a single run")
    parser.add_argument("--tiny", action="store_true", help="tiny random-weight models (no downloads needed)")
    parser.add_argument("--trained", action="store_true",
                        help="with --bench: tiny models trained on procedural data (trained once, cached by their "
                             "config): WAN 2.1 clips per motion class; SD1.5- and SDXL-layout UNets (TokenPrune) per "
                             "image class")
    parser.add_argument("--real-shapes", action="store_true",
                        help="with --bench: the real-shape benchmark (bench/real_shapes.py); the other options are "
                             "its own: python -m bench.real_shapes --help")
    parser.add_argument("--train-steps", type=int, default=None,
                        help="training steps for --trained (default: the DEFAULT_STEPS of bench.trained.train_tiny "
                             "and train_tiny_unet)")
    parser.add_argument("--techniques", default="",
                        help=f"comma-separated, for --bench --tiny (default: all of {', '.join(TECHNIQUES)})")
    parser.add_argument("--families", default="", help="restrict --bench --tiny to these tiny families")
    parser.add_argument("--full", action="store_true",
                        help="--bench --tiny: every technique on every family (without it, and without --techniques "
                             "or --families, a quick subset: " + ", ".join(f"{t}/{f}" for t, f in QUICK) + ")")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: each technique's own)")
    parser.add_argument("--seeds", default="0", help="--trained: comma-separated noise seeds, each run per motion "
                                                     "class (default: 0)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per variant (median is reported)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for bench.json and bench.png")
    parser.add_argument("--verbose", action="store_true", help="show ComfyUI's and the techniques' logs")
    args = parser.parse_args(argv)
    if not args.bench and not args.workflow:
        parser.error("give --workflow, --bench, or both")
    if args.trained and (args.workflow or not args.bench):
        parser.error("--trained goes with --bench and without --workflow")
    args.tiny = args.tiny or args.trained  # trained tiny models live in the bench's own ComfyUI base directory
    return args


def start(args):
    comfy_path = find_comfyui(args.comfyui)
    if comfy_path is None:
        raise SystemExit("No ComfyUI found: pass --comfyui PATH, set COMFYUI_PATH, or run this from "
                         "<ComfyUI>/custom_nodes/<this pack>.")
    base_dir = BENCH_RUNTIME if args.tiny else comfy_path
    runtime = boot(comfy_path, base_dir)
    from devtools.harness import tiny_nodes
    tiny_nodes.register()
    return runtime


def load_prompt(path):
    import nodes
    from devtools.workflows.ui_format import node_schemas_from_comfy, validate_workflow, workflow_to_prompt
    with open(path) as f:
        ui = json.load(f)
    schemas = node_schemas_from_comfy(nodes.NODE_CLASS_MAPPINGS)
    errors = validate_workflow(ui, schemas)
    if errors:
        raise SystemExit(f"{path} is not a valid workflow:\n  " + "\n  ".join(errors))
    return workflow_to_prompt(ui, schemas)


def workflow_prompt(runtime, args):
    """The --workflow file as an API prompt, rewired to tiny models under --tiny."""
    prompt = load_prompt(args.workflow)
    if args.tiny:
        from devtools.harness.tiny_workflow import tiny_prompt
        prompt = tiny_prompt(prompt, runtime.base_dir)
    return prompt


def run_workflow(runtime, args):
    prompt = workflow_prompt(runtime, args)
    start_time = time.perf_counter()
    outputs = runtime.execute(prompt)
    elapsed = time.perf_counter() - start_time
    print(f"{args.workflow}: executed {len(prompt)} nodes in {elapsed:.2f} s")
    for node_id, ui in outputs.items():
        for kind, items in ui.items():
            names = [item.get("filename", item) if isinstance(item, dict) else item for item in items]
            print(f"  node {node_id} {kind}: {names}")
    return outputs


def _tiny_cases(args):
    """(technique, module, family) triples selected by --techniques / --families / --full (--trained: the families
    with a trained tiny model, TRAINED_FAMILIES)."""
    quick = not (args.full or args.trained or args.techniques or args.families)
    wanted_families = {f for f in args.families.split(",") if f}
    if args.trained:
        wanted_families = (wanted_families or set(TRAINED_FAMILIES)) & set(TRAINED_FAMILIES)
    for technique in [t for t in (args.techniques or ",".join(TECHNIQUES)).split(",") if t]:
        if technique not in TECHNIQUES:
            raise SystemExit(f"unknown technique {technique!r}; known: {', '.join(TECHNIQUES)}")
        module = importlib.import_module(f".{TECHNIQUES[technique]}", __package__)
        for family in module.FAMILIES:
            if quick and (technique, family) not in QUICK:
                continue
            if args.trained and family != "wan21" and technique not in TRAINED_UNET_TECHNIQUES:
                continue
            if not wanted_families or family in wanted_families:
                yield technique, module, family


def _run_case(technique, module, family, case, steps, title, args, extra=None, seed=0, cfg=None):
    from tqdm import tqdm
    from devtools.harness import tiny_models

    cfg = getattr(module, "CFG", 3.0) if cfg is None else cfg
    variants = [(benchmark.BASELINE, case.patcher)]
    variants += [(name, apply(case.patcher)) for name, apply in module.variants(family)]

    def sample_fn(model):
        return tiny_models.sample(case, model=model, steps=steps, cfg=cfg, seed=seed)

    title = f"{title}: {steps} steps, cfg {cfg}, latent {tuple(case.latent.shape)}"
    with tqdm(total=len(variants) * (args.repeats + 1), desc=f"{technique}/{family}", leave=False) as bar:
        results = benchmark.run_variants(sample_fn, variants, repeats=args.repeats, progress=bar)
    print(benchmark.format_table(title, results) + "\n", flush=True)
    return {"title": title, "technique": technique, "family": family, "steps": steps, "cfg": cfg, "seed": seed,
            "latent_shape": list(case.latent.shape), "results": results, **(extra or {})}


def bench_trained(runtime, args):
    """Every selected technique's variants on the trained tiny models: the WAN once per motion class, the UNets
    (TokenPrune) once per image class."""
    from bench.trained.train_tiny import DEFAULT_STEPS, load_bench_model

    selected = list(_tiny_cases(args))
    if not selected:
        raise SystemExit(f"no selected technique benchmarks a trained family ({', '.join(TRAINED_FAMILIES)})")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    cases = []
    wan = None
    for technique, module, family in selected:
        if family != "wan21":
            cases += _bench_trained_unet(technique, module, family, seeds, args)
            continue
        wan = wan or load_bench_model(runtime.base_dir, args.train_steps or DEFAULT_STEPS)
        cases += _bench_trained_wan(technique, module, family, seeds, args, *wan)
    return cases


def _run_per_class(technique, module, family, class_cases, seeds, steps, args, naming, extra):
    """_run_case on each (class label, case) of ``class_cases`` and each seed, then the summary per class. ``naming``:
    (the class column of the case records, the class kind and the inputs in titles), e.g. ("motion", "motion class",
    "clips")."""
    key, class_kind, what = naming
    cfg = getattr(module, "TRAINED_CFG", None)
    per_class = [_run_case(technique, module, family, case, steps,
                           f"{technique} on trained tiny {family}, {label} {what}"
                           + (f", seed {seed}" if len(seeds) > 1 else ""), args,
                           {key: label if len(seeds) == 1 else f"{label} s{seed}", **extra}, seed=seed, cfg=cfg)
                 for label, case in class_cases for seed in seeds]
    title = f"{technique} on trained tiny {family}, {steps} steps, cfg {per_class[0]['cfg']:g}"
    print(benchmark.format_summary(f"{title}, per {class_kind}", per_class, key) + "\n", flush=True)
    return per_class, title


def _bench_trained_wan(technique, module, family, seeds, args, trained, patcher):
    from bench.trained import procedural
    from bench.trained.train_tiny import class_case

    class_cases = [(motion, class_case(patcher, motion)) for motion in procedural.MOTION_CLASSES]
    return _run_per_class(technique, module, family, class_cases, seeds, args.steps or module.STEPS, args,
                          ("motion", "motion class", "clips"), {"model_file": os.path.basename(trained.path)})[0]


def _bench_trained_unet(technique, module, family, seeds, args):
    """``module``'s variants on the trained tiny UNet of ``family`` (bench.trained.train_tiny_unet), once per image
    class and seed; for TokenPrune also the comparison with core ToMe at equal FLOPs."""
    import dataclasses

    from bench.trained import procedural, train_tiny_unet

    config = train_tiny_unet.UnetTrainConfig(family=family, steps=args.train_steps or train_tiny_unet.DEFAULT_STEPS)
    trained, _ = train_tiny_unet.trained_case(config)
    class_cases = []
    for shapes in procedural.IMAGE_CLASSES:
        positive, negative = train_tiny_unet.class_conditioning(trained, shapes)
        class_cases.append((shapes, dataclasses.replace(trained, positive=positive, negative=negative)))
    steps = args.steps or getattr(module, "TRAINED_STEPS", module.STEPS)
    per_class, title = _run_per_class(technique, module, family, class_cases, seeds, steps, args,
                                      ("image_class", "image class", "images"), {"train_steps": config.steps})
    if hasattr(module, "equal_flops_table"):
        print(module.equal_flops_table(f"{title}: over {len(per_class)} images (classes x seeds)", per_class) + "\n",
              flush=True)
    return per_class


def bench_tiny(args):
    from devtools.harness import tiny_models

    selected = list(_tiny_cases(args))
    if not selected:
        raise SystemExit("nothing selected to benchmark")
    cases = []
    for technique, module, family in selected:
        steps = args.steps or module.STEPS
        overrides = {}
        if getattr(module, "FRAMES", None) and family in VIDEO_FAMILIES:
            overrides["frames"] = module.FRAMES
        if family in getattr(module, "LATENT_SIZES", {}):
            overrides["height"], overrides["width"] = module.LATENT_SIZES[family]
        case = tiny_models.build(family, **overrides)
        cases.append(_run_case(technique, module, family, case, steps, f"{technique} on tiny {family}", args))
    return cases


def bench_workflow(runtime, args):
    from tqdm import tqdm
    from bench.workflow_bench import WorkflowBench

    workflow_bench = WorkflowBench(runtime, workflow_prompt(runtime, args))
    variants = workflow_bench.variants()
    weights = "tiny random weights" if args.tiny else "real weights"
    title = f"{os.path.basename(args.workflow)} ({weights}): FreeAccel nodes as given vs bypassed"
    with tqdm(total=len(variants) * (args.repeats + 1), desc="workflow", leave=False) as bar:
        results = benchmark.run_variants(workflow_bench.sample, variants, repeats=args.repeats,
                                         decode_fn=workflow_bench.decode_fn(), progress=bar)
    print(benchmark.format_table(title, results) + "\n", flush=True)
    return [{"title": title, "workflow": args.workflow, "results": results}]


def write_report(cases, args):
    os.makedirs(args.out, exist_ok=True)
    json_path = os.path.join(args.out, "bench.json")
    png_path = os.path.join(args.out, "bench.png")
    payload = {"command": "python -m bench.run " + " ".join(sys.argv[1:]), "repeats": args.repeats,
               "cases": [dict(case, results=[r.as_json() for r in case["results"]]) for case in cases]}
    with open(json_path, "w") as f:
        json.dump(payload, f, indent=2)
    benchmark.plot(cases, png_path)
    print(f"wrote {json_path} and {png_path}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--real-shapes" in argv:
        from bench import real_shapes
        return real_shapes.main([a for a in argv if a not in ("--real-shapes", "--bench")])
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    runtime = start(args)
    if not args.verbose:
        logging.getLogger().setLevel(logging.WARNING)
    if not args.bench:
        run_workflow(runtime, args)
        return 0
    if args.workflow:
        cases = bench_workflow(runtime, args)
    elif args.trained:
        cases = bench_trained(runtime, args)
    else:
        cases = bench_tiny(args)
    write_report(cases, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
