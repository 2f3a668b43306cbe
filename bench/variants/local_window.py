"""Bench variants of FreeAccel_LocalWindowAttention: a few window sizes against the unpatched model (run by
``python -m bench.run --bench --tiny --techniques local_window``: wall time, attention FLOPs, PSNR).
"""
FAMILIES = ("wan21", "hunyuan_video", "ltxv", "mochi")
FRAMES = 9  # latent frames of the tiny cases
STEPS = 10
# (frames, height, width) of the window: from nearly everything down to a small neighbourhood
WINDOWS = ((2, 5, 7), (1, 3, 5), (0, 3, 3))


def _with_window(frames, height, width):
    def apply(model):
        from devtools.harness.comfy_env import current_runtime  # booted before variants are applied
        runtime = current_runtime()
        settings = runtime.pack_module("accel_core.local_window").LocalWindowSettings(
            frames=frames, height=height, width=width)
        return runtime.pack_module("nodes.local_window").apply_local_window(model, settings)
    return apply


def variants(family):
    return [(f"LocalWindow +-{f} frames {h}x{w}", _with_window(f, h, w)) for f, h, w in WINDOWS]
