"""Bench variants of FreeAccel_TokenPrune.

Variants: TokenPrune with and without DSAP against ComfyUI's core TomePatchModel at the same ratios.

Core ToMe merges self-attention queries at the full latent resolution only (its max_downsample is fixed to 1), so on
SDXL, which has no attention at that resolution, it changes nothing: its row there measures the patch overhead.
TokenPrune runs with levels = "1,2,4,8" here (every attention level the model has): the tiny models' narrow
channels make the node's "auto" level choice, tuned on the real widths, meaningless. On Flux and WAN 2.1 (no ToMe
peer) it prunes the default block range (Flux: double-stream blocks 1..3 of 4; WAN: blocks 1..2 of 4).
"""
FAMILIES = ("sd15", "sdxl", "flux", "wan21")
DIT_FAMILIES = ("flux", "wan21")
STEPS = 10
# SD1.5 at 512x512 and SDXL at 1024x1024 have 64x64 and 128x128 latents.
LATENT_SIZES = {"sd15": (64, 64), "sdxl": (128, 128)}
RATIOS = (0.3, 0.5, 0.7)


def _token_prune(ratio, dsap):
    def apply(model):
        from devtools.harness.comfy_env import current_runtime  # booted before variants are applied
        runtime = current_runtime()
        settings = runtime.pack_module("accel_core.token_prune").PruneSettings(ratio=ratio, dsap=dsap,
                                                                               levels="1,2,4,8")
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
        if family not in DIT_FAMILIES:  # core ToMe patches UNet self-attention only
            found.append((f"core ToMe {ratio}", _core_tome(ratio)))
    return found


