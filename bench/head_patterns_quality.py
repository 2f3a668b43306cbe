"""Per-head adaptive attention against a fixed local window and a Radial-style static mask at equal attention density,
on the trained tiny WAN with heads (quality only, no timing).

    python -m bench.head_patterns_quality [--train-steps N] [--seeds 0,1,2] [--schedules 10:3,4:1]
        [--mass-thresholds 0.9] [--threads N] [--out bench/out] [--record bench/results/<name>.json]

The judge is ``bench.trained.train_tiny``'s judge with heads (``python -m bench.trained.train_tiny --judge heads``,
trained first when its file is missing: 4 blocks x 4 heads, 9 x 24 x 24 latents = 9 x 12 x 12 tokens). For every
schedule (``steps:cfg``), motion class and seed it samples, from the same noise:

- ``unpatched``: the reference;
- ``adaptive``: FreeAccel_TemporalAttnPrune mode adaptive through the node (``TemporalAttnPruneNode.execute``), its
  pattern sizes scaled to the grid (``ADAPTIVE_INPUTS``; the defaults 15 x 27 are for 30 x 52 tokens). Its attention
  density is read from the run's chosen patterns: the pairs ``kernels.head_sparse`` computes for them over the dense
  pairs, in the sparse blocks;
- ``window``: FreeAccel_LocalWindowAttention through the node, one window for every head, block and step, its size
  (frames, height, width) the one whose computed pairs (the node's tiled window) come closest to that run's adaptive
  density;
- ``radial``: a Radial-style static mask (Radial Attention's energy decay): every key of the query's own frame, and
  in a frame at distance d >= 1 a box of radii ``base >> floor(log2 d)`` rows and columns around the query's position
  (the window halves per doubling of the frame distance, at least the position itself), run as an exact boolean mask
  through SDPA by a bench-only attention handler; its base radii are the ones whose kept pairs come closest to the
  adaptive density.

All three keep block 0 dense (``DENSE_BLOCKS``) and run dense before ``START_PERCENT`` of the schedule (the adaptive
run chooses its patterns inside its first sparse step). Reported per schedule and class: the worst and median latent
PSNR of each variant against the unpatched run, each variant's density, and the per-head patterns the adaptive mode
chose (how many heads frame / window / temporal / dense, per block), with the heads' measured masses. Writes
``head_patterns_quality.json`` into ``--out``; ``--record`` also writes a run record for ``bench.results_doc``.
"""
import argparse
import dataclasses
import datetime
import functools
import json
import logging
import math
import os
import statistics
import sys
import time

import torch

DENSE_BLOCKS = 1
START_PERCENT = 0.2
# TemporalAttnPrune adaptive, scaled to the judge's 12 x 12 tokens per frame (the node's 15 x 27 window is about half
# of WAN 480p's 30 x 52): a +-1 frame, 7 x 7 window and a 3 x 3 temporal neighbourhood
ADAPTIVE_INPUTS = dict(mode="adaptive", ratio=0.5, calibration_steps=2, start_percent=START_PERCENT,
                       mass_threshold=0.9, dense_blocks=DENSE_BLOCKS, window_frames=1, window_height=7,
                       window_width=7, temporal_size=3, rows_per_frame=16, pattern_file="")
DEFAULT_SCHEDULES = "10:3,4:1"  # the trained bench's 10 steps at cfg 3, and a 4-step cfg-1 (step-distilled) run
DEFAULT_SEEDS = "0,1,2"
VARIANTS = ("adaptive", "window", "radial")
PATTERN_NAMES = ("dense", "frame", "window", "temporal")  # kernels.head_sparse.PATTERNS
RADIAL_KEY = "freeaccel_bench_radial"
RADIAL_NAME = "Radial-style static mask (bench)"


# ---------------------------------------------------------------------------------------------------------------
# the Radial-style mask (pure torch)


def radial_radii(distance, base):
    """(rows, columns) radii of the Radial-style box at frame distance ``distance`` >= 1: ``base`` (rows, columns)
    halved per doubling of the distance (``base >> floor(log2 distance)``), at least 0 (the query's own position)."""
    if distance < 1:
        raise ValueError("frame distance 0 keeps the whole frame; radial_radii takes distances >= 1")
    shift = int(distance).bit_length() - 1
    return tuple(radius >> shift for radius in base)


def radial_mask(frames, height, width, base, offset=0, seq_len=None):
    """Boolean keep mask [L, L] (True = attend) of the Radial-style static mask over a frames x height x width video
    grid starting at sequence position ``offset``: every key of the query's own frame; in a frame at distance d >= 1
    the keys within ``radial_radii(d, base)`` rows and columns of the query's position. Non-video tokens attend and
    are attended everywhere."""
    video = frames * height * width
    seq_len = seq_len or offset + video
    index = torch.arange(video)
    f, y, x = index // (height * width), index // width % height, index % width
    distance = (f[:, None] - f[None, :]).abs()
    dy, dx = (y[:, None] - y[None, :]).abs(), (x[:, None] - x[None, :]).abs()
    # radii per frame distance (0: the whole frame), looked up per pair
    rows = torch.tensor([height] + [radial_radii(d, base)[0] for d in range(1, frames)])
    columns = torch.tensor([width] + [radial_radii(d, base)[1] for d in range(1, frames)])
    near = (dy <= rows[distance]) & (dx <= columns[distance])
    mask = torch.ones(seq_len, seq_len, dtype=torch.bool)
    mask[offset:offset + video, offset:offset + video] = near
    return mask


def radial_density(frames, height, width, base):
    """Kept (query, key) pairs of the video grid's Radial-style mask over all pairs, counted per axis (no mask)."""
    plane = height * width

    def kept_1d(size, radius):  # pairs (a, b) on one axis with |a - b| <= radius
        radius = min(radius, size - 1)
        return size + sum(2 * (size - d) for d in range(1, radius + 1))

    pairs = frames * plane * plane  # distance 0: the whole frame
    for d in range(1, frames):
        ry, rx = radial_radii(d, base)
        pairs += 2 * (frames - d) * kept_1d(height, ry) * kept_1d(width, rx)
    return pairs / (frames * plane) ** 2


def closest(candidates, target, key=lambda candidate: 0):
    """The (density, setting) in ``candidates`` whose density is closest to ``target``; ties by ``key(setting)``."""
    return min(candidates, key=lambda item: (abs(item[0] - target), key(item[1])))


def radial_candidates(grid):
    """(density, (rows, columns) base radii) of every base on ``grid`` (frames, height, width)."""
    frames, height, width = grid
    return [(radial_density(frames, height, width, (ry, rx)), (ry, rx))
            for ry in range(height) for rx in range(width)]


def window_candidates(grid, density):
    """(density, (frames, height, width)) of every LocalWindowAttention window on ``grid``: frames 0..F-1, odd
    sizes up to twice the grid; ``density(radii)`` -> computed pairs over dense pairs. Windows whose tiles compute
    at least the dense pairs without covering the grid are left out (the covering window is plain attention)."""
    from kernels.local_window import VideoLayout, covers_everything, window_radii
    frames, height, width = grid
    found = []
    for rt in range(frames):
        for h in range(1, 2 * height, 2):
            for w in range(1, 2 * width, 2):
                radii = window_radii(rt, h, w)
                value = density(radii)
                if value < 1 or covers_everything(VideoLayout(*grid), radii):
                    found.append((value, (rt, h, w)))
    return found


def window_preference(setting):
    """Among windows of equal density: square ones first, then +-1 frame (the adaptive window's), then smaller."""
    rt, h, w = setting
    return (abs(h - w), abs(rt - 1), h + w)


def tiled_window_density(grid, radii):
    """Computed pairs of LocalWindowAttention's tiled window (its default tile) over dense pairs, on ``grid``: 1 for
    a window covering the grid (the node runs plain attention), else the tiles' pairs (above 1 where the tiles
    compute more than dense attention would)."""
    from kernels.local_window import VideoLayout, covers_everything, tiled_window_attention_flops
    layout = VideoLayout(*grid)
    if covers_everything(layout, radii):
        return 1.0
    computed, dense = tiled_window_attention_flops(layout, radii, 1, 1)
    return computed / dense


def adaptive_density(patterns, grid, shapes, head_dim, head_sparse_flops):
    """Computed pairs over dense pairs of the sparse blocks' heads under ``patterns`` {block: (pattern per head)}."""
    from kernels.local_window import VideoLayout
    layout = VideoLayout(*grid)
    computed = dense = 0
    for block_patterns in patterns.values():
        c, d = head_sparse_flops(block_patterns, layout, shapes, head_dim)
        computed, dense = computed + c, dense + d
    return computed / dense if dense else 1.0


# ---------------------------------------------------------------------------------------------------------------
# the Radial-style mask as a bench-only attention handler (booted ComfyUI)


@dataclasses.dataclass(frozen=True)
class RadialSettings:
    base_rows: int
    base_columns: int
    dense_blocks: int = DENSE_BLOCKS
    start_percent: float = START_PERCENT
    end_percent: float = 1.0

    def error(self):
        if min(self.base_rows, self.base_columns) < 0:
            return "base radii must be at least 0"
        return None


def _radial_apply_model(pack, family, settings, executor, x, t, c_concat, c_crossattn, control, transformer_options,
                        **conds):
    base_model = executor.class_obj
    window = pack["steps"].SigmaWindow(base_model.model_sampling, settings.start_percent, settings.end_percent)
    if window.contains(pack["steps"].call_sigma(t)):
        layout, _ = pack["families"].token_layout(family, base_model, x, c_crossattn, conds)
        doubles = len(pack["families"].double_blocks(family, base_model.diffusion_model))
        transformer_options = dict(transformer_options, **{RADIAL_KEY: pack["token_layout"].ModelCall(layout, doubles)})
    return executor(x, t, c_concat, c_crossattn, control, transformer_options, **conds)


@functools.lru_cache(maxsize=8)
def _cached_radial_mask(grid, base, offset, seq_len):
    return radial_mask(*grid, base, offset, seq_len)


def _radial_attention(settings, call):
    model_call = call.options.get(RADIAL_KEY)
    layout = model_call.layout if model_call is not None else None
    if layout is None or call.query_length != call.key_length or not layout.matches(call.query_length):
        return call.next()
    block = model_call.block_number(model_call.site(call.options))
    if not layout.full_grid or block < settings.dense_blocks:
        return call.next()
    grid = (layout.frames, layout.height, layout.width)
    mask = _cached_radial_mask(grid, (settings.base_rows, settings.base_columns),
                               layout.prefix_for(call.query_length), call.query_length).to(call.q.device)
    if call.mask is not None:
        mask = mask & call.mask if call.mask.dtype == torch.bool else \
            call.mask.masked_fill(~mask, float("-inf"))
    return torch.nn.functional.scaled_dot_product_attention(call.q, call.k, call.v, attn_mask=mask)


def _radial_technique(runtime):
    pack = {name: runtime.pack_module(f"nodes.integration.{name}") for name in ("steps", "families", "token_layout")}
    install = runtime.pack_module("nodes.integration.install")

    def _install(installer, settings, family):
        import comfy.patcher_extension
        installer.wrapper(comfy.patcher_extension.WrappersMP.APPLY_MODEL,
                          functools.partial(_radial_apply_model, pack, family, settings))
        installer.attention(functools.partial(_radial_attention, settings))

    return install, install.technique(RADIAL_KEY, RADIAL_NAME, RadialSettings, _install, support="local_window")


# ---------------------------------------------------------------------------------------------------------------
# the bench


@dataclasses.dataclass
class Context:
    runtime: object
    patcher: object
    trained: object
    grid: tuple
    head_dim: int
    radial: tuple  # (install module, technique)


def _node_output(output):
    return output.args[0] if hasattr(output, "args") else output[0]


def _variant_models(ctx, adaptive_inputs):
    prune = ctx.runtime.pack_module("nodes.temporal_prune")
    return prune, _node_output(prune.TemporalAttnPruneNode.execute(ctx.patcher, **adaptive_inputs))


def _local_window(ctx, window):
    local = ctx.runtime.pack_module("nodes.local_window")
    frames, height, width = window
    return _node_output(local.LocalWindowAttentionNode.execute(
        ctx.patcher, frames=frames, height=height, width=width, start_block=DENSE_BLOCKS, end_block=-1,
        start_percent=START_PERCENT, end_percent=1.0, implementation="auto"))


def _radial(ctx, base):
    install, technique = ctx.radial
    return install.apply(technique, ctx.patcher, RadialSettings(*base))


def run_clip(ctx, motion, seed, steps, cfg, adaptive_inputs, radial_table, window_table):
    """One clip: the four samples and what each variant computed."""
    from bench import metrics
    from bench.trained.train_tiny import class_case
    from devtools.harness import tiny_models

    frames, height, width = ctx.grid
    case = class_case(ctx.patcher, motion, frames=frames, height=height * 2, width=width * 2)

    def sample(model):
        return tiny_models.sample(case, model=model, steps=steps, cfg=cfg, seed=seed)

    reference = sample(ctx.patcher)
    prune, adaptive_model = _variant_models(ctx, adaptive_inputs)
    started = time.perf_counter()
    adaptive_out = sample(adaptive_model)
    seconds = time.perf_counter() - started
    summary = ctx.runtime.pack_module("nodes.integration.run_state").last_run(adaptive_model, prune.KEY)
    shapes = prune.TemporalPruneSettings(**adaptive_inputs).head_patterns.shapes
    flops = ctx.runtime.pack_module("kernels.head_sparse").head_sparse_flops
    density = adaptive_density(summary["patterns"], ctx.grid, shapes, ctx.head_dim, flops)
    window_density, window = closest(window_table, density, window_preference)
    radial_density_, base = closest(radial_table, density, lambda b: (abs(b[0] - b[1]), b))
    outputs = {"adaptive": adaptive_out, "window": sample(_local_window(ctx, window)),
               "radial": sample(_radial(ctx, base))}
    trace = {str(block): masses.tolist() for block, masses in summary["trace"].items()}
    return {
        "motion": motion, "seed": seed, "steps": steps, "cfg": cfg,
        "psnr": {name: metrics.psnr(out, reference) for name, out in outputs.items()},
        "density": {"adaptive": density, "window": window_density, "radial": radial_density_},
        "window": list(window), "radial_base": list(base), "adaptive_seconds": seconds,
        "patterns": {str(block): list(p) for block, p in summary["patterns"].items()},
        "counts": summary["counts"], "decision_step": summary["decision_step"],
        "dense_steps": summary["dense_steps"], "total_steps": summary["steps"], "masses": trace,
    }


def summarise(clips, blocks, heads):
    """Per (schedule, threshold) and class: worst / median PSNR and densities per variant; pattern statistics."""
    groups = {}
    for clip in clips:
        groups.setdefault((clip["steps"], clip["cfg"], clip["mass_threshold"]), []).append(clip)
    summaries = []
    for (steps, cfg, threshold), group in groups.items():
        classes = {}
        for motion in dict.fromkeys(clip["motion"] for clip in group):
            members = [clip for clip in group if clip["motion"] == motion]
            classes[motion] = _class_summary(members)
        summaries.append({"steps": steps, "cfg": cfg, "mass_threshold": threshold, "clips": len(group),
                          "classes": classes, "all": _class_summary(group),
                          "patterns": pattern_statistics(group, blocks, heads)})
    return summaries


def _finite(value):
    return value if math.isfinite(value) else 999.0


def _class_summary(members):
    out = {}
    for name in VARIANTS:
        psnrs = [_finite(clip["psnr"][name]) for clip in members]
        densities = [clip["density"][name] for clip in members]
        out[name] = {"worst": min(psnrs), "median": statistics.median(psnrs),
                     "density_median": statistics.median(densities), "density_min": min(densities),
                     "density_max": max(densities)}
    out["goal_met"] = all(out["adaptive"]["worst"] >= out[other]["worst"] for other in ("window", "radial"))
    return out


def pattern_statistics(clips, blocks, heads):
    """{block: {"counts": {pattern: heads over all clips}, "heads": [{pattern: clips} per head],
    "mean_mass": [[mass per pattern] per head]}} of the sparse blocks."""
    stats = {}
    for block in range(blocks):
        key = str(block)
        chosen = [clip["patterns"][key] for clip in clips if key in clip["patterns"]]
        if not chosen:
            continue
        per_head = [{p: sum(1 for table in chosen if table[h] == p) for p in PATTERN_NAMES if
                     any(table[h] == p for table in chosen)} for h in range(heads)]
        counts = {p: sum(table.count(p) for table in chosen) for p in PATTERN_NAMES}
        masses = [clip["masses"][key] for clip in clips if key in clip.get("masses", {})]
        mean_mass = None
        if masses:  # masses: [pattern][head]
            mean_mass = [[statistics.fmean(m[p][h] for m in masses) for p in range(len(PATTERN_NAMES))]
                         for h in range(heads)]
        stats[key] = {"runs": len(chosen), "counts": counts, "heads": per_head, "mean_mass": mean_mass}
    return stats


def _fmt(value):
    return "inf" if value >= 999 else f"{value:.1f}"


def format_summary(summary):
    lines = [f"{summary['steps']} steps, cfg {summary['cfg']:g}, mass_threshold {summary['mass_threshold']:g}: "
             f"{summary['clips']} clips; latent PSNR against the unpatched run, worst / median (density)"]
    header = f"{'class':>9s} " + " ".join(f"{name:>24s}" for name in VARIANTS) + "  goal"
    lines += [header, "-" * len(header)]
    for motion, row in list(summary["classes"].items()) + [("all", summary["all"])]:
        cells = [f"{_fmt(row[n]['worst']):>6s} / {_fmt(row[n]['median']):>6s} ({row[n]['density_median']:.3f})"
                 for n in VARIANTS]
        lines.append(f"{motion:>9s} " + " ".join(f"{cell:>24s}" for cell in cells)
                     + f"  {'met' if row['goal_met'] else 'missed'}")
    lines.append("adaptive patterns per block (heads over all clips; per head the patterns chosen):")
    for block, stats in summary["patterns"].items():
        counts = ", ".join(f"{p} {n}" for p, n in stats["counts"].items() if n)
        per_head = "; ".join("/".join(f"{p} {n}" for p, n in head.items()) for head in stats["heads"])
        lines.append(f"  block {block}: {counts}  [{per_head}]")
    return "\n".join(lines)


def _parse_schedules(text):
    schedules = []
    for part in text.split(","):
        steps, cfg = part.split(":")
        schedules.append((int(steps), float(cfg)))
    return schedules


def record(payload):
    """A bench.results_doc run record of ``payload``: per schedule, one row per variant."""
    judge = payload["judge"]
    rows = []
    for summary in payload["summaries"]:
        classes = list(summary["classes"])
        model = (f"trained tiny WAN 2.1 with heads ({judge['blocks']} blocks x {judge['heads']} heads, "
                 f"{judge['steps']} training steps), {summary['steps']} steps, cfg {summary['cfg']:g}, "
                 f"{summary['clips'] // len(classes)} seeds per motion class: " + " / ".join(classes))
        for name, technique, setting in (
                ("adaptive", "temporal_prune",
                 f"adaptive, mass {summary['mass_threshold']:g}, window +-1 frame 7x7, temporal 3, dense block 0, "
                 f"start 0.2"),
                ("window", "temporal_prune", "comparison: Local Window Attention at the adaptive run's density"),
                ("radial", "temporal_prune", "comparison: Radial-style static mask at the adaptive run's density")):
            cells = [summary["classes"][m][name] for m in classes]
            quality = "worst " + " / ".join(_fmt(c["worst"]) for c in cells) + " dB, median " + \
                " / ".join(_fmt(c["median"]) for c in cells) + " dB"
            work = "attention density " + " / ".join(f"{c['density_median']:.3f}" for c in cells) + \
                " (median per class, sparse blocks and steps)"
            rows.append({"technique": technique, "family": "wan21", "model": model, "setting": setting,
                         "baseline": "unpatched", "speedup": None, "quality": quality, "work": work})
    return {"command": payload["command"], "machine": "2-core AVX2 CPU, fp32", "comfyui": payload["comfyui"],
            "date": datetime.date.today().isoformat(),
            "protocol": "Quality only (no timing): latent PSNR of each variant against the unpatched run from the "
                        "same noise, worst and median over the seeds of each motion class; each fixed window and "
                        "static mask sized per clip to that clip's adaptive density.",
            "rows": rows, "notes": record_notes(payload)}


def record_notes(payload):
    """One note per summary: which classes met the goal, the worst clips over all classes, the heads' patterns."""
    notes = []
    for summary in payload["summaries"]:
        met = [m for m, row in summary["classes"].items() if row["goal_met"]]
        missed = [m for m, row in summary["classes"].items() if not row["goal_met"]]
        every = summary["all"]
        blocks = "; ".join(
            f"block {block}: " + ", ".join(f"{p} {n}" for p, n in stats["counts"].items() if n)
            for block, stats in summary["patterns"].items())
        notes.append(
            f"{summary['steps']} steps, cfg {summary['cfg']:g}, mass_threshold {summary['mass_threshold']:g}: the goal "
            f"\"at equal attention density, the adaptive pattern's worst clip >= the fixed window's and the static "
            f"mask's\" is {'met' if every['goal_met'] else 'missed'}"
            f"{' (trivially: every head stayed dense)' if every['adaptive']['density_min'] >= 1 else ''} over all "
            f"{summary['clips']} clips (worst {_fmt(every['adaptive']['worst'])} dB adaptive, "
            f"{_fmt(every['window']['worst'])} dB window, {_fmt(every['radial']['worst'])} dB static mask; median "
            f"densities {every['adaptive']['density_median']:.3f} / {every['window']['density_median']:.3f} / "
            f"{every['radial']['density_median']:.3f}); per class met in "
            f"{', '.join(met) or 'none'}, missed in {', '.join(missed) or 'none'}. Heads per pattern over the "
            f"{summary['clips']} runs (block 0 dense by setting): {blocks}.")
    return notes


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.head_patterns_quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui", help="ComfyUI checkout (default: $COMFYUI_PATH, else ../.. of this pack)")
    parser.add_argument("--train-steps", type=int, default=None,
                        help="the judge's training steps (default: train_tiny.HEADS_DEFAULT_STEPS)")
    parser.add_argument("--seeds", default=DEFAULT_SEEDS, help="noise seeds per motion class")
    parser.add_argument("--schedules", default=DEFAULT_SCHEDULES, help="comma-separated steps:cfg")
    parser.add_argument("--mass-thresholds", default=str(ADAPTIVE_INPUTS["mass_threshold"]),
                        help="comma-separated mass_threshold values of the adaptive mode")
    parser.add_argument("--classes", default="", help="motion classes (default: all)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads")
    parser.add_argument("--out", default=os.path.join("bench", "out"), help="folder for head_patterns_quality.json")
    parser.add_argument("--record", help="also write a bench.results_doc run record here")
    parser.add_argument("--verbose", action="store_true", help="show ComfyUI's and the techniques' logs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")

    from devtools.harness.comfy_env import BENCH_RUNTIME, boot, find_comfyui
    comfy_path = find_comfyui(args.comfyui)
    if comfy_path is None:
        raise SystemExit("No ComfyUI found: pass --comfyui PATH or set COMFYUI_PATH.")
    runtime = boot(comfy_path, BENCH_RUNTIME)
    if not args.verbose:
        logging.getLogger().setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    from bench.trained import procedural, train_tiny

    started = time.perf_counter()
    trained, patcher = train_tiny.load_heads_judge(steps=args.train_steps or train_tiny.HEADS_DEFAULT_STEPS)
    wan = patcher.model.diffusion_model
    frames, height, width = train_tiny.HEADS_LATENT
    grid = (frames, height // 2, width // 2)
    ctx = Context(runtime, patcher, trained, grid, wan.dim // wan.num_heads, _radial_technique(runtime))
    window_table = window_candidates(grid, functools.partial(tiled_window_density, grid))
    radial_table = radial_candidates(grid)
    classes = [c for c in args.classes.split(",") if c] or list(procedural.MOTION_CLASSES)
    seeds = [int(s) for s in args.seeds.split(",")]
    clips = []
    for threshold in (float(t) for t in args.mass_thresholds.split(",")):
        inputs = dict(ADAPTIVE_INPUTS, mass_threshold=threshold)
        for steps, cfg in _parse_schedules(args.schedules):
            for motion in classes:
                for seed in seeds:
                    clip = run_clip(ctx, motion, seed, steps, cfg, inputs, radial_table, window_table)
                    clip["mass_threshold"] = threshold
                    clips.append(clip)
                    print(f"{steps} steps cfg {cfg:g} mass {threshold:g} {motion:>9s} seed {seed}: "
                          + ", ".join(f"{n} {clip['psnr'][n]:.1f} dB ({clip['density'][n]:.3f})" for n in VARIANTS)
                          + f"; window {tuple(clip['window'])}, radial base {tuple(clip['radial_base'])}; "
                          + ", ".join(f"{p} {n}" for p, n in clip["counts"].items() if n), flush=True)
    summaries = summarise(clips, len(wan.blocks), wan.num_heads)
    for summary in summaries:
        print("\n" + format_summary(summary))
    import comfyui_version  # every supported ComfyUI has it (nodes.integration.compat reads it too)
    payload = {
        "command": "python -m bench.head_patterns_quality " + " ".join(sys.argv[1:] if argv is None else argv),
        "comfyui": getattr(comfyui_version, "__version__", None), "threads": args.threads,
        "seconds": time.perf_counter() - started, "grid": list(grid), "adaptive_inputs": ADAPTIVE_INPUTS,
        "judge": {"file": os.path.basename(trained.path), "steps": trained.steps, "blocks": len(wan.blocks),
                  "heads": wan.num_heads, "head_dim": wan.dim // wan.num_heads,
                  "final_loss": train_tiny._tail_mean(trained.losses), "eval_before": trained.eval_before,
                  "eval_after": trained.eval_after},
        "summaries": summaries, "clips": clips,
    }
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "head_patterns_quality.json")
    with open(path, "w") as f:
        json.dump(payload, f, indent=1)
    print(f"\nwrote {path} ({payload['seconds']:.0f} s)")
    if args.record:
        with open(args.record, "w", encoding="utf-8") as f:
            f.write(json.dumps(record(payload), indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.record} (review it, then python -m bench.results_doc)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
