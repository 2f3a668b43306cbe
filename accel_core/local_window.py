"""LocalWindowAttention's settings and the decisions that need no ComfyUI: the window's radii and which blocks it
applies in (the window attention itself is ``kernels.local_window``)."""
from dataclasses import dataclass
from typing import Optional

from ..kernels.local_window import IMPLEMENTATIONS, window_radii
from .settings import range_error, setting


@dataclass(frozen=True)
class LocalWindowSettings:
    """The node's settings, in input order; ``error()`` is the one check behind prompt validation and
    ``apply_local_window``."""
    frames: int = setting(3, "Each query sees keys at most this many latent frames before and after it.",
                          minimum=0, maximum=256)
    height: int = setting(15, "Window height in tokens (latent rows / patch size), centred on the query; an even size "
                              "grows to the next odd one (6 -> 7).", minimum=1, maximum=1024)
    width: int = setting(27, "Window width in tokens (latent columns / patch size), centred on the query; an even "
                             "size grows to the next odd one.", minimum=1, maximum=1024)
    start_block: int = setting(0, "First transformer block (0-based) that uses the window. HunyuanVideo numbers its "
                                  "single-stream blocks after the double-stream ones.",
                               minimum=0, maximum=1000, advanced=True)
    end_block: int = setting(-1, "Last transformer block that uses the window; -1 = the last block.",
                             minimum=-1, maximum=1000, advanced=True)
    start_percent: float = setting(0.0, "Sampling progress where the window starts. Early steps set the layout: raise "
                                        "this to keep them at full attention.", minimum=0.0, maximum=1.0, step=0.01)
    end_percent: float = setting(1.0, "Sampling progress where the window ends.", minimum=0.0, maximum=1.0, step=0.01)
    implementation: str = setting(
        "auto", "auto = tiled (fast): queries are grouped in grid tiles and every query of a tile sees the same box of "
                "keys, its tile grown by the window radius on each side (a superset of each query's own window, slid "
                "inside the grid at the borders); each tile is one dense attention call. gathered / flex: exactly "
                "each query's own window, slower (gathered: masked tiles on any device; flex: torch flex_attention "
                "block masks).", options=IMPLEMENTATIONS, advanced=True)

    def error(self) -> Optional[str]:
        """The message for invalid settings, or None when they are valid."""
        if self.start_percent > self.end_percent:
            return f"start_percent ({self.start_percent}) must not exceed end_percent ({self.end_percent})"
        if self.end_block != -1 and self.end_block < self.start_block:
            return f"end_block ({self.end_block}) must be -1 (last block) or at least start_block ({self.start_block})"
        if self.implementation not in IMPLEMENTATIONS:
            return f"implementation must be one of {', '.join(IMPLEMENTATIONS)} (got {self.implementation!r})"
        return range_error(self)

    @property
    def radii(self) -> tuple:
        """(frames, rows, columns) a key may lie away from its query."""
        return window_radii(self.frames, self.height, self.width)

    def covers_block(self, block: int) -> bool:
        """True when the window applies in global block number ``block`` (0-based)."""
        return self.start_block <= block and (self.end_block == -1 or block <= self.end_block)
