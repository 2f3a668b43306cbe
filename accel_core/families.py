"""The one table of which model families each technique supports, and how it hooks them.

A family is recognised by the class name of the model's ComfyUI config (``comfy.supported_models.*``), which is
what ComfyUI itself detected from the weights. Only configs we test are listed: a subclass we have not tried (for
example Flux2) is rejected with a clear error instead of being patched blindly. This module never imports ComfyUI.
"""
from typing import Optional

# family id -> (display name, config class names, tokens: "video" | "image")
FAMILIES = {
    "wan": ("WAN 2.1 / 2.2", ("WAN21_T2V", "WAN21_I2V", "WAN21_FunControl2V", "WAN21_Vace", "WAN22_T2V"), "video"),
    "hunyuan_video": ("HunyuanVideo", ("HunyuanVideo", "HunyuanVideoI2V", "HunyuanVideoSkyreelsI2V"), "video"),
    "ltxv": ("LTX-Video", ("LTXV",), "video"),
    "mochi": ("Mochi", ("GenmoMochi",), "video"),
    "flux": ("Flux / Chroma", ("Flux", "FluxInpaint", "FluxSchnell", "Chroma"), "image"),
    "qwen_image": ("Qwen-Image", ("QwenImage",), "image"),
    "sd15": ("SD 1.5", ("SD15",), "image"),
    "sdxl": ("SDXL", ("SDXL", "SDXLRefiner"), "image"),
    "svd": ("Stable Video Diffusion", ("SVD_img2vid",), "video"),
}

_DIT_BLOCKS = 'patches_replace["dit"] block replacement'

# technique -> family -> how the node hooks that family
SUPPORT = {
    "attention_backend": {
        f: "optimized_attention_override" for f in FAMILIES
    },
    "adacache": {
        f: f"{_DIT_BLOCKS} on every block (stack residual + metric block) + OUTER_SAMPLE / CALC_COND_BATCH wrappers"
        for f in ("wan", "hunyuan_video", "ltxv", "mochi", "flux", "qwen_image")
    },
    "token_prune": {
        "sd15": "object patch on each SpatialTransformer + OUTER_SAMPLE run state (DSAP window)",
        "sdxl": "object patch on each SpatialTransformer + OUTER_SAMPLE run state (DSAP window)",
        "flux": f"{_DIT_BLOCKS} chained on a range of double-stream blocks + OUTER_SAMPLE run state (DSAP window) / "
                "APPLY_MODEL wrapper (ControlNet calls run unpruned)",
        "wan": f"{_DIT_BLOCKS} chained on a block range + OUTER_SAMPLE run state (DSAP window)",
    },
    "temporal_prune": {
        "svd": "object patch on each time_stack attention module's forward + OUTER_SAMPLE run state / APPLY_MODEL "
               "wrapper (frames per video)",
        **{f: "optimized_attention_override on joint self-attention heads + OUTER_SAMPLE run state / APPLY_MODEL "
              "wrapper (token layout)"
           for f in ("wan", "hunyuan_video", "ltxv", "mochi")},
    },
    "local_window": {
        f: "optimized_attention_override in a block and step range + APPLY_MODEL wrapper (token layout)"
        for f in ("wan", "hunyuan_video", "ltxv", "mochi")
    },
    "motion_transfer": {
        "wan": f"GUIDER; Q/K of the AMF block captured by {_DIT_BLOCKS} + an optimized_attention_override",
    },
}


class UnsupportedModelError(ValueError):
    """Raised when a technique is asked to patch a model family it does not support."""


def _config_name(model) -> str:
    config = getattr(model, "model_config", None)
    return type(config).__name__ if config is not None else type(model).__name__


def family_of(model) -> Optional[str]:
    """Family id of a ComfyUI BaseModel (by its detected config class), or None if not in the table."""
    name = _config_name(model)
    for family, (_, config_names, _) in FAMILIES.items():
        if name in config_names:
            return family
    return None


def supported_families(technique: str) -> list:
    return [FAMILIES[f][0] for f in SUPPORT[technique]]


def require_family(technique: str, model, name: Optional[str] = None) -> str:
    """The family id of ``model`` if ``technique`` supports it; otherwise an error, prefixed with ``name`` (the
    node's display name; default: the technique id), naming what is supported."""
    family = family_of(model)
    if family not in SUPPORT[technique]:
        raise UnsupportedModelError(
            f"{name or technique}: model '{_config_name(model)}' is not supported; supported families: "
            + ", ".join(supported_families(technique)))
    return family


def is_video(family: str) -> bool:
    return FAMILIES[family][2] == "video"
