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
    "qwen_image": ("Qwen-Image / Qwen-Image-Edit", ("QwenImage",), "image"),
    "sd15": ("SD 1.5", ("SD15",), "image"),
    "sdxl": ("SDXL", ("SDXL", "SDXLRefiner"), "image"),
    "svd": ("Stable Video Diffusion", ("SVD_img2vid",), "video"),
    # the image and video DiTs of 2026 (ComfyUI 0.33)
    "flux2": ("Flux.2", ("Flux2",), "image"),
    "z_image": ("Z-Image", ("ZImage",), "image"),
    "hunyuan_image21": ("HunyuanImage 2.1", ("HunyuanImage21",), "image"),
    "kandinsky5_image": ("Kandinsky 5 image", ("Kandinsky5Image",), "image"),
    "krea2": ("Krea 2", ("Krea2",), "image"),
    "hidream": ("HiDream I1", ("HiDream",), "image"),
    "hidream_o1": ("HiDream-O1", ("HiDreamO1",), "image"),
    "chroma_radiance": ("Chroma Radiance", ("ChromaRadiance",), "image"),
    "lens": ("Lens", ("Lens",), "image"),
    "joyimage": ("JoyImage", ("JoyImage",), "image"),
    "mage_flow": ("MageFlow", ("MageFlow",), "image"),
    "sd35": ("SD 3.5", ("SD3",), "image"),
    "hunyuan_video15": ("HunyuanVideo 1.5", ("HunyuanVideo15",), "video"),
    "cogvideox": ("CogVideoX", ("CogVideoX_T2V", "CogVideoX_I2V"), "video"),
    "ltxav": ("LTX-2 (audio + video)", ("LTXAV",), "video"),
    "minimax_h3": ("MiniMax H3 (audio + video)", ("MiniMaxH3",), "video"),
    "kandinsky5": ("Kandinsky 5 video", ("Kandinsky5",), "video"),
    "cosmos_predict2": ("Cosmos Predict2", ("CosmosT2IPredict2",), "image"),
    "wan22_animate": ("Wan 2.2 Animate", ("WAN22_Animate",), "video"),
    "wan22_s2v": ("Wan 2.2 S2V", ("WAN22_S2V",), "video"),
    "wan21_humo": ("HuMo", ("WAN21_HuMo",), "video"),
    "wan22_camera": ("Wan 2.2 Fun Camera", ("WAN22_Camera",), "video"),
    "wan21_causal_ar": ("Wan CausalAR", ("WAN21_CausalAR_T2V",), "video"),
    "wan22_wandancer": ("WanDancer", ("WAN22_WanDancer",), "video"),
}

# The first ComfyUI release whose comfy.supported_models has the family's config classes (not listed: 0.3.75, the
# oldest supported). On an older ComfyUI such a model cannot be loaded, and nodes refuse it naming this version.
MIN_COMFYUI = {
    "kandinsky5_image": "0.8.0", "kandinsky5": "0.8.0", "ltxav": "0.8.0",
    "krea2": "0.33.0", "hidream_o1": "0.33.0", "lens": "0.33.0", "joyimage": "0.33.0", "mage_flow": "0.33.0",
    "cogvideox": "0.33.0", "minimax_h3": "0.33.0", "wan21_causal_ar": "0.33.0", "wan22_wandancer": "0.33.0",
}

# (technique, family) -> the first ComfyUI version whose model passes what the technique's hooks need: ComfyUI 0.3.75
# gives Wan 2.2 S2V's blocks no transformer_options (neither the dit args nor the attention calls)
NEEDS_COMFYUI = {(technique, "wan22_s2v"): "0.8.0"
                 for technique in ("adacache", "temporal_prune", "local_window", "attention_backend")}

# What an install puts on the patched clone. Wrappers are named by ComfyUI's WrappersMP value; the per-call hooks
# are added to the options of single model calls, not to the model. tests/comfy/test_support_table.py installs every
# technique on a tiny model of every family below and checks that it registers exactly these.
DIT_BLOCKS = 'patches_replace["dit"] block replacements'
ATTENTION = "optimized_attention_override handler"
OBJECT_PATCHES = "object patches"  # e.g. of each block's forward, where a model has no dit block hook
OPTION = "transformer_options entry"
OUTER_SAMPLE, CALC_COND_BATCH, APPLY_MODEL = "outer_sample", "calc_cond_batch", "apply_model"
PER_CALL_MIDDLE_PATCH = "middle_patch (per model call)"
PER_CALL_ATTENTION = "optimized_attention_override handler (per model call)"

_VIDEO_DITS = ("wan", "hunyuan_video", "ltxv", "mochi")
# the video DiTs of 2026 whose joint self-attention the attention techniques reach with a known token layout
_VIDEO_DITS_2026 = ("hunyuan_video15", "wan22_animate", "wan22_s2v", "wan21_humo", "wan22_camera", "wan22_wandancer",
                    "ltxav", "cogvideox", "kandinsky5", "minimax_h3")
# AdaCache's route per family: the dit block replacements, or (models without a dit hook for their blocks) object
# patches of each block's forward, with an APPLY_MODEL wrapper that hands the run to them
_DIT_CACHE = frozenset({DIT_BLOCKS, OUTER_SAMPLE, CALC_COND_BATCH})
_FORWARD_CACHE = frozenset({OBJECT_PATCHES, OUTER_SAMPLE, CALC_COND_BATCH, APPLY_MODEL})
FORWARD_ROUTE = ("z_image", "kandinsky5_image", "krea2", "hidream", "cogvideox", "kandinsky5", "cosmos_predict2")
_UNET_TOKEN_PRUNE = frozenset({OBJECT_PATCHES, OUTER_SAMPLE, PER_CALL_MIDDLE_PATCH, PER_CALL_ATTENTION})

# technique -> family -> the hooks its install registers there (with the default settings)
SUPPORT = {
    # SD 3.5's MMDiT-X passes attention masks the backends do not take yet
    "attention_backend": {f: frozenset({ATTENTION, OPTION}) for f in FAMILIES if f != "sd35"},
    "adacache": {f: _FORWARD_CACHE if f in FORWARD_ROUTE else _DIT_CACHE
                 for f in FAMILIES if f not in ("sd15", "sdxl", "svd")},
    "token_prune": {
        "sd15": _UNET_TOKEN_PRUNE,
        "sdxl": _UNET_TOKEN_PRUNE,
        "flux": frozenset({DIT_BLOCKS, OUTER_SAMPLE, APPLY_MODEL}),  # APPLY_MODEL: ControlNet calls run unpruned
        "flux2": frozenset({DIT_BLOCKS, OUTER_SAMPLE, APPLY_MODEL}),
        "wan": frozenset({DIT_BLOCKS, OUTER_SAMPLE}),
    },
    "temporal_prune": {
        "svd": frozenset({OBJECT_PATCHES, OUTER_SAMPLE, APPLY_MODEL}),
        **{f: frozenset({ATTENTION, OUTER_SAMPLE, APPLY_MODEL}) for f in (*_VIDEO_DITS, *_VIDEO_DITS_2026)},
    },
    "local_window": {f: frozenset({ATTENTION, APPLY_MODEL}) for f in (*_VIDEO_DITS, *_VIDEO_DITS_2026)},
    "motion_transfer": {"wan": frozenset({DIT_BLOCKS, ATTENTION})},  # on the GUIDER's model
}


# What a user of a family must know beyond the table (docs/support.md)
NOTES = {
    "z_image": "blocks reached through their forward (no dit hook); the main layers' stream is [text, image]",
    "kandinsky5_image": "its dit hook is broken in ComfyUI 0.8 / 0.33 (TypeError), so blocks are reached through "
                        "their forward",
    "kandinsky5": "as Kandinsky 5 image",
    "hidream_o1": "AdaCache's dit hook turns off HiDream-O1's text K/V cache: computed steps recompute the text",
    "sd35": "no DIFFUSION_MODEL wrapper (AdaCache does not need one); MMDiT-X masks are not taken by the attention "
            "backends yet",
    "ltxav": "audio has its own AdaCache distance; the attention techniques touch the video self-attention only",
    "hunyuan_video15": "the attention techniques: as HunyuanVideo (the video tokens before the text)",
    "minimax_h3": "audio has its own AdaCache distance (rows of the packed sequence by modality); the attention "
                  "techniques window or prune the video rows (last in the sequence), the others stay dense",
    "wan22_s2v": "ComfyUI 0.3.75 gives its blocks no transformer_options: needs 0.8.0",
    "wan21_causal_ar": "its frame-by-frame mode calls its blocks directly: AdaCache then reuses nothing and says so",
    "cosmos_predict2": "blocks reached through their forward; the stream is [B, T, H, W, D]",
}

TECHNIQUE_NAMES = {"attention_backend": "Attention Backend", "adacache": "AdaCache", "token_prune": "TokenPrune",
                   "temporal_prune": "TemporalAttnPrune", "local_window": "Local Window", "motion_transfer": "Motion Transfer"}
_HOOK_LABELS = ((DIT_BLOCKS, "dit blocks"), (OBJECT_PATCHES, "object patches"), (ATTENTION, "attention override"))


def support_markdown() -> str:
    """The support table of docs/support.md: per family, how each technique hooks it (its main hook), the ComfyUI
    it needs and what else to know."""
    techniques = list(SUPPORT)
    header = ["Family", "ComfyUI config", "From ComfyUI", *(TECHNIQUE_NAMES[t] for t in techniques), "Notes"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for family, (name, configs, _) in FAMILIES.items():
        cells = [name, ", ".join(f"`{c}`" for c in configs), MIN_COMFYUI.get(family, "0.3.75")]
        for technique in techniques:
            hooks = SUPPORT[technique].get(family)
            if hooks is None:
                cells.append("—")
                continue
            label = " + ".join(text for hook, text in _HOOK_LABELS if hook in hooks) or "UNet stages"
            needed = NEEDS_COMFYUI.get((technique, family))
            cells.append(label + (f" (≥ {needed})" if needed else ""))
        cells.append(NOTES.get(family, ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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


def _version(text: str) -> tuple:
    return tuple(int(part) for part in text.split("."))


def minimum_comfyui(technique: str, family: str) -> Optional[str]:
    """The oldest ComfyUI on which ``technique`` can serve ``family`` (None: every supported version)."""
    return NEEDS_COMFYUI.get((technique, family)) or MIN_COMFYUI.get(family)


def require_family(technique: str, model, name: Optional[str] = None, comfyui: Optional[tuple] = None) -> str:
    """The family id of ``model`` if ``technique`` supports it (on ComfyUI version ``comfyui``, a tuple; None: not
    checked); otherwise an error, prefixed with ``name`` (the node's display name; default: the technique id),
    naming what is supported or the ComfyUI version needed."""
    family = family_of(model)
    if family not in SUPPORT[technique]:
        raise UnsupportedModelError(
            f"{name or technique}: model '{_config_name(model)}' is not supported; supported families: "
            + ", ".join(supported_families(technique)))
    needed = minimum_comfyui(technique, family)
    if comfyui is not None and needed is not None and comfyui < _version(needed):
        raise UnsupportedModelError(
            f"{name or technique}: {FAMILIES[family][0]} needs ComfyUI >= {needed} (this is "
            f"{'.'.join(map(str, comfyui))}); update ComfyUI")
    return family


def is_video(family: str) -> bool:
    return FAMILIES[family][2] == "video"
