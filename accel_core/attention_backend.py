"""FreeAccel_AttentionBackend's setting: which attention implementation one model runs on."""
from dataclasses import dataclass
from typing import Optional

from .settings import range_error, setting

COMFY_DEFAULT = "comfy_default"
CHOICES = ("auto", "sdpa", "xformers", "flex", "sage", COMFY_DEFAULT)


@dataclass(frozen=True)
class AttentionBackendSettings:
    """The node's setting; ``error()`` checks the choice (whether this machine can run it is checked by the node)."""
    backend: str = setting(
        "auto", "auto: xformers on CUDA when installed, else PyTorch SDPA. sdpa: torch scaled_dot_product_attention. "
                "xformers / sage: CUDA only, when installed. flex: torch flex_attention (falls back to SDPA, with a "
                "warning, where this torch cannot run it). comfy_default: ComfyUI's globally selected attention.",
        options=CHOICES)

    def error(self) -> Optional[str]:
        """The message for an unknown choice, or None."""
        return range_error(self)
