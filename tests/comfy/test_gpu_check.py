"""bench.gpu_check's real-shape plan and one measured group, in a real ComfyUI on the CPU."""
import math

import torch

from bench import gpu_check

USABLE_ON_GPU = {"sdpa": None, "flash": None, "xformers": "xformers does not import", "sage": None}


def test_plan_covers_every_model_dtype_and_usable_backend_at_real_shapes(comfy_rt):
    groups = gpu_check.plan(2, USABLE_ON_GPU)
    assert [group.name for group in groups[:4]] == ["wan21 21x30x52 bf16 sdpa", "sdxl 1024x1024 bf16 sdpa",
                                                    "flux 1024x1024 bf16 sdpa", "wan21 21x30x52 bf16 flash"]
    assert {(g.dtype, g.backend) for g in groups} == {(d, b) for d in ("bf16", "fp16")
                                                      for b in ("sdpa", "flash", "sage")}
    wan, sdxl, flux = groups[:3]
    assert wan.shape.latent == (1, 16, 21, 60, 104)  # 480p: 21 x 30 x 52 tokens
    assert (wan.shape.unet_config["num_layers"], wan.shape.unet_config["dim"]) == (30, 1536)
    assert sdxl.shape.latent == (1, 4, 128, 128)
    assert (flux.shape.unet_config["hidden_size"], flux.shape.unet_config["depth"],
            flux.shape.unet_config["depth_single_blocks"]) == (3072, 2, 2)
    # a model is built once per dtype: its first group carries the build estimate, later backends do not
    later_wan = groups[3]
    assert math.isclose(wan.estimate_s - later_wan.estimate_s,
                        gpu_check.parameters(wan.shape) * gpu_check.BUILD_S_PER_PARAMETER)
    assert all(group.estimate_s > 0 for group in groups)


def test_technique_variants_run_on_the_backend_model(comfy_rt):
    names = [variant.name for variant in gpu_check.technique_variants("sdxl")]
    assert names == ["TokenPrune 0.5", "TokenPrune 0.5 DSAP", "TokenPrune 0.5 pruning", "core ToMe 0.5"]
    assert {variant.technique for variant in gpu_check.technique_variants("wan21")} == set(gpu_check.TECHNIQUES)


def test_measure_group_rows_at_a_tiny_shape(comfy_rt):
    from bench import real_shapes

    group = gpu_check.Group("flux", "bf16", "sdpa", gpu_check.real_shape("flux", tiny=True))
    case = real_shapes.build(group.shape, torch.float32)
    try:
        rows = gpu_check.measure_group(group, case, repeats=1)
    finally:
        del case
        real_shapes.free_models()
    assert [row["variant"] for row in rows] == ["unpatched", "unpatched, ComfyUI attention", "TokenPrune 0.5",
                                                "AdaCache forced reuse (custom 1000:3)"]
    assert [row["steps"] for row in rows] == [1, 1, 1, 6]
    assert all(row["error"] is None and row["seconds_per_call"] > 0 for row in rows)
    assert rows[0]["speedup"] == 1.0
    assert all(math.isnan(row["peak_mb"]) for row in rows)  # GPU memory only
