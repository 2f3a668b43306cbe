"""Bench variants of FreeAccel_TemporalAttnPrune.

Variants: ratios 0.25 / 0.5 / 0.75 in both modes, against the unpatched model (``--tiny``: SVD and WAN 2.1 with at
least 9 latent frames).
"""

FAMILIES = ("svd", "wan21")
FRAMES = 9  # latent frames of the tiny cases
STEPS = 10
RATIOS = (0.25, 0.5, 0.75)
MODES = ("identity", "skip")
START_PERCENT = 0.1
CALIBRATION_STEPS = 2


def _with(ratio, mode):
    def apply(model):
        from devtools.harness.comfy_env import current_runtime  # booted before variants are applied
        runtime = current_runtime()
        settings = runtime.pack_module("accel_core.temporal_prune").TemporalPruneSettings(
            ratio=ratio, mode=mode, start_percent=START_PERCENT, calibration_steps=CALIBRATION_STEPS)
        return runtime.pack_module("nodes.temporal_prune").apply_temporal_prune(model, settings)
    return apply


def variants(family):
    return [(f"TemporalAttnPrune {mode} {ratio:g}", _with(ratio, mode)) for mode in MODES for ratio in RATIOS]


