"""Bench variants of FreeAccel_TokenPrune.

Variants: TokenPrune (default recovery: merge) with and without DSAP, with AT-EDM's plain pruning (recovery
similarity) and with local merging, against ComfyUI's core TomePatchModel at the same ratios.

Core ToMe merges self-attention queries at the full latent resolution only (its max_downsample is fixed to 1), so on
SDXL, which has no attention at that resolution, it changes nothing: its row there measures the patch overhead.
TokenPrune runs with levels = "1,2,4,8" here (every attention level the model has): the tiny models' narrow
channels make the node's "auto" level choice, tuned on the real widths, meaningless. On Flux and WAN 2.1 (no ToMe
peer) it prunes the default block range (Flux: double-stream blocks 1..3 of 4; WAN: blocks 1..2 of 4).
"""
FAMILIES = ("sd15", "sdxl", "flux", "wan21")
DIT_FAMILIES = ("flux", "wan21")
STEPS = 10
TRAINED_STEPS = 20  # the trained tiny UNets (python -m bench.run --bench --trained)
TRAINED_CFG = 5.0
# SD1.5 at 512x512 and SDXL at 1024x1024 have 64x64 and 128x128 latents.
LATENT_SIZES = {"sd15": (64, 64), "sdxl": (128, 128)}
RATIOS = (0.3, 0.5, 0.7)


def _token_prune(ratio, dsap, recovery="merge"):
    def apply(model):
        from devtools.harness.comfy_env import current_runtime  # booted before variants are applied
        runtime = current_runtime()
        settings = runtime.pack_module("accel_core.token_prune").PruneSettings(ratio=ratio, dsap=dsap,
                                                                               levels="1,2,4,8", recovery=recovery)
        return runtime.pack_module("nodes.token_prune").apply_token_prune(model, settings)
    return apply


def _core_tome(ratio):
    def apply(model):
        from comfy_extras.nodes_tomesd import TomePatchModel
        return TomePatchModel.execute(model, ratio).result[0]
    return apply


def variants(family):
    found = []
    for ratio in RATIOS:
        found.append((f"TokenPrune {ratio}", _token_prune(ratio, dsap=False)))
        found.append((f"TokenPrune {ratio} DSAP", _token_prune(ratio, dsap=True)))
        found.append((f"TokenPrune {ratio} pruning", _token_prune(ratio, dsap=False, recovery="similarity")))
        found.append((f"TokenPrune {ratio} local merge", _token_prune(ratio, dsap=False, recovery="local merge")))
        if family not in DIT_FAMILIES:  # core ToMe patches UNet self-attention only
            found.append((f"core ToMe {ratio}", _core_tome(ratio)))
    return found


def _mean(values):
    return sum(values) / len(values)


def _tome_psnr_at(points, skipped):
    """core ToMe's latent PSNR at FLOPs-skipped fraction ``skipped``, linear between its measured (skipped, PSNR)
    points; None outside their range."""
    points = sorted(points)
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= skipped <= x1 and x1 > x0:
            return y0 + (y1 - y0) * (skipped - x0) / (x1 - x0)
    return None


def equal_flops_table(title, cases):
    """Markdown: per TokenPrune variant its FLOPs skipped, latent PSNR (mean and worst over ``cases``, e.g. image
    classes x seeds), mean SSIM, and core ToMe's mean PSNR at the same FLOPs skipped (linear between ToMe's ratios)."""
    names = [r.name for r in cases[0]["results"]]
    by_name = {name: [case["results"][row] for case in cases] for row, name in enumerate(names)}
    tome = [(_mean([r.work_skipped for r in results]), _mean([r.psnr_latent for r in results]))
            for name, results in by_name.items() if name.startswith("core ToMe")]
    lines = [f"**{title}**", "",
             "| variant | FLOPs skipped | mean PSNR dB | worst PSNR dB | mean SSIM "
             "| core ToMe PSNR dB at equal FLOPs |",
             "|---|---|---|---|---|---|"]
    for name, results in by_name.items():
        if name == "baseline":
            continue
        skipped = _mean([r.work_skipped for r in results])
        psnr = _mean([r.psnr_latent for r in results])
        at_equal = _tome_psnr_at(tome, skipped) if name.startswith("TokenPrune") else None
        if name.startswith("core ToMe"):
            equal_text = "(itself)"
        elif at_equal is None:
            span = sorted(x for x, _ in tome)
            equal_text = (f"outside ToMe's range ({100 * span[0]:.0f}–{100 * span[-1]:.0f} %)" if tome
                          else "no ToMe rows")
        else:
            equal_text = f"{at_equal:.1f}"
        lines.append(f"| {name} | {100 * skipped:.1f} % | {psnr:.1f} | {min(r.psnr_latent for r in results):.1f} | "
                     f"{_mean([r.ssim_latent for r in results]):.3f} | {equal_text} |")
    return "\n".join(lines)
