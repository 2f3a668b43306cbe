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

# What an install puts on the patched clone. Wrappers are named by ComfyUI's WrappersMP value; the per-call hooks
# are added to the options of single model calls, not to the model. tests/comfy/test_support_table.py installs every
# technique on a tiny model of every family below and checks that it registers exactly these.
DIT_BLOCKS = 'patches_replace["dit"] block replacements'
ATTENTION = "optimized_attention_override handler"
OBJECT_PATCHES = "object patches"
OPTION = "transformer_options entry"
OUTER_SAMPLE, CALC_COND_BATCH, APPLY_MODEL = "outer_sample", "calc_cond_batch", "apply_model"
PER_CALL_MIDDLE_PATCH = "middle_patch (per model call)"
PER_CALL_ATTENTION = "optimized_attention_override handler (per model call)"

_VIDEO_DITS = ("wan", "hunyuan_video", "ltxv", "mochi")
_UNET_TOKEN_PRUNE = frozenset({OBJECT_PATCHES, OUTER_SAMPLE, PER_CALL_MIDDLE_PATCH, PER_CALL_ATTENTION})

# technique -> family -> the hooks its install registers there (with the default settings)
SUPPORT = {
    "attention_backend": {f: frozenset({ATTENTION, OPTION}) for f in FAMILIES},
    "adacache": {f: frozenset({DIT_BLOCKS, OUTER_SAMPLE, CALC_COND_BATCH})
                 for f in (*_VIDEO_DITS, "flux", "qwen_image")},
    "token_prune": {
        "sd15": _UNET_TOKEN_PRUNE,
        "sdxl": _UNET_TOKEN_PRUNE,
        "flux": frozenset({DIT_BLOCKS, OUTER_SAMPLE, APPLY_MODEL}),  # APPLY_MODEL: ControlNet calls run unpruned
        "wan": frozenset({DIT_BLOCKS, OUTER_SAMPLE}),
    },
    "temporal_prune": {
        "svd": frozenset({OBJECT_PATCHES, OUTER_SAMPLE, APPLY_MODEL}),
        **{f: frozenset({ATTENTION, OUTER_SAMPLE, APPLY_MODEL}) for f in _VIDEO_DITS},
    },
    "local_window": {f: frozenset({ATTENTION, APPLY_MODEL}) for f in _VIDEO_DITS},
    "motion_transfer": {"wan": frozenset({DIT_BLOCKS, ATTENTION})},  # on the GUIDER's model
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
