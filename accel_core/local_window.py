"""LocalWindowAttention's settings and the decisions that need no ComfyUI: the window's radii and which blocks it
applies in (the window attention itself is ``kernels.local_window``)."""
from dataclasses import dataclass

from ..kernels.local_window import IMPLEMENTATIONS, window_radii


@dataclass(frozen=True)
class LocalWindowSettings:
    """The node's settings; ``error()`` is the one check behind prompt validation and ``apply_local_window``."""
    frames: int = 3
    height: int = 15
    width: int = 27
    start_block: int = 0
    end_block: int = -1
    start_percent: float = 0.0
    end_percent: float = 1.0
    implementation: str = "auto"

    def error(self):
        """The message for invalid settings, or None when they are valid."""
        if self.start_percent > self.end_percent:
            return f"start_percent ({self.start_percent}) must not exceed end_percent ({self.end_percent})"
        if self.end_block != -1 and self.end_block < self.start_block:
            return f"end_block ({self.end_block}) must be -1 (last block) or at least start_block ({self.start_block})"
        if self.implementation not in IMPLEMENTATIONS:
            return f"implementation must be one of {', '.join(IMPLEMENTATIONS)} (got {self.implementation!r})"
        return None

    @property
    def radii(self):
        """(frames, rows, columns) a key may lie away from its query."""
        return window_radii(self.frames, self.height, self.width)

    def covers_block(self, block):
        """True when the window applies in global block number ``block`` (0-based)."""
        return self.start_block <= block and (self.end_block == -1 or block <= self.end_block)
