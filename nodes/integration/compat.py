"""Every difference between the ComfyUI versions FreeAccel supports (0.3.75 through 0.33.x), in one place.

- Advanced inputs: the V3 inputs of ``comfy_api.v0_0_2`` accept ``advanced=True`` (the frontend folds those inputs
  away) from ComfyUI 0.33 on; 0.3.75 and 0.8.0 reject the keyword, so ``input_options`` passes it only where the
  installed io takes it.

- Block info: WAN writes ``block_index`` / ``block_type`` / ``total_blocks`` into ``transformer_options`` while it
  runs its blocks only from ComfyUI 0.5.0 on (ComfyUI PR #10845). Flux, HunyuanVideo and Qwen-Image do in every
  supported version, LTX-Video and Mochi in none (nodes count their attention calls there). ``report_block_info``
  derives it for WAN on older versions, so state keyed on the block is the same on every version.
"""
import functools
import inspect
import logging
from typing import Optional

import comfyui_version
from comfy_api.v0_0_2 import io
from comfy.model_patcher import ModelPatcher

from .blocks import chain_block_replacement, has_block_replacement
from .families import double_blocks

log = logging.getLogger(__name__)

MINIMUM_VERSION = (0, 3, 75)
WAN_BLOCK_INFO_SINCE = (0, 5, 0)
BLOCK_INFO_OWNER = "freeaccel_block_info"


def parse_version(text: Optional[str]) -> Optional[tuple]:
    """"0.3.75" -> (0, 3, 75); anything unparsable -> None."""
    try:
        return tuple(int(part) for part in text.split(".")[:3])
    except (AttributeError, ValueError):
        return None


def version_text(version: tuple) -> str:
    return ".".join(map(str, version))


# None (a checkout without a release number) is treated as the newest ComfyUI.
VERSION = parse_version(getattr(comfyui_version, "__version__", None))


def at_least(version: tuple) -> bool:
    return VERSION is None or VERSION >= version


def warn_if_unsupported() -> None:
    if not at_least(MINIMUM_VERSION):
        log.warning("FreeAccel is tested on ComfyUI %s and newer; this is ComfyUI %s. Please update ComfyUI.",
                    version_text(MINIMUM_VERSION), version_text(VERSION))


# the io of this ComfyUI takes advanced=... on its inputs (every widget input shares Input.__init__'s keywords)
ADVANCED_INPUTS = "advanced" in inspect.signature(io.Input.__init__).parameters


def input_options(advanced: bool) -> dict:
    """Keyword arguments marking a V3 input advanced where this ComfyUI supports it (none elsewhere)."""
    return {"advanced": True} if advanced and ADVANCED_INPUTS else {}


def _report_block(index, total, args, run_block):
    options = args["transformer_options"]
    options["block_index"], options["block_type"], options["total_blocks"] = index, "double", total
    return run_block(args)


def report_block_info(model: ModelPatcher, family: str) -> None:
    """Make ``model`` (a cloned ModelPatcher of ``family``) report the running block in ``transformer_options`` where
    this ComfyUI does not: a dit replacement on every WAN block before ComfyUI 0.5.0, else nothing."""
    if not family.startswith("wan") or at_least(WAN_BLOCK_INFO_SINCE):  # WAN and its 2026 variants
        return
    total = len(double_blocks(family, model.get_model_object("diffusion_model")))
    for index in range(total):
        if not has_block_replacement(model, "double_block", index, BLOCK_INFO_OWNER):
            chain_block_replacement(model, "double_block", index, functools.partial(_report_block, index, total),
                                    BLOCK_INFO_OWNER)
