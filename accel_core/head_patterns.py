"""Per-head sparse attention patterns for video DiTs: which pattern each (block, head) needs, chosen from attention
statistics of a few sampled query rows of one attention call (the attention itself is ``kernels.head_sparse``).

For every head, the sampled rows' attention P = softmax(q k^T * scale) over all keys is computed exactly, and for each
candidate pattern (``kernels.head_sparse.PATTERNS``: dense, within-frame, local window, temporal) the mass it keeps:
the mean over rows (and batch entries) of the sum of P over the keys that pattern keeps as the kernel runs it (its
tiled window, so never less than the exact box around each query; non-video keys always kept). A head gets the
cheapest pattern (fewest computed pairs on this grid) keeping at least ``mass_threshold``; dense keeps everything,
so every head has one. With ``rows_per_frame`` rows of every latent frame the statistics cost about
``rows / (2 * L)`` of the call's dense attention (``statistics_fraction``: 0.5 % at 480p x 21 frames, head dim 128), so they can be
taken inside the first computed step instead of in extra calibration steps; AdaSpa found a head's pattern nearly
constant across steps, so the choice is made once and reused for the run, or saved as a small JSON pattern table
and loaded later. Defaults follow the peers: the first block dense (Radial: 1 dense layer; SVG2: 3 % of layers, 1 of
WAN 1.3B's 30), the first 20 % of sampling dense (SVG2; Radial 12 of 50 steps), mass 0.9 (SVG2's top-p). Never
imports ComfyUI.
"""
import dataclasses
import json
from typing import Optional

import torch

from ..kernels.head_sparse import DENSE, PATTERNS, PatternShapes, pattern_flops, pattern_mask_mod
from ..kernels.local_window import window_radii
from .settings import range_error, setting

TABLE_FORMAT = "freeaccel head patterns"
TABLE_VERSION = 1
# most probabilities held at once while measuring (fp32 elements: batch x heads x rows x keys)
STATISTICS_CHUNK_ELEMENTS = 1 << 24


@dataclasses.dataclass(frozen=True)
class HeadPatternSettings:
    """The technique's settings, in input order; ``error()`` is the one check behind prompt validation and the
    apply function."""
    mass_threshold: float = setting(
        0.9, "Attention mass a head's pattern must keep (measured on sampled query rows in the first computed step): "
             "each head gets the cheapest of within-frame, local window, temporal and dense that keeps at least "
             "this fraction. 1 keeps every head dense.", minimum=0.5, maximum=1.0, step=0.01)
    dense_blocks: int = setting(1, "The first this many transformer blocks stay dense (their heads are not measured).",
                                minimum=0, maximum=1000)
    start_percent: float = setting(
        0.2, "Sampling progress where the sparse patterns start; earlier steps run dense. The patterns are chosen in "
             "the first computed step either way, so no step is spent only measuring.",
        minimum=0.0, maximum=1.0, step=0.01)
    window_frames: int = setting(1, "Local window pattern: keys at most this many latent frames before and after "
                                    "the query.", minimum=0, maximum=256, advanced=True)
    window_height: int = setting(15, "Local window pattern: window height in tokens, centred on the query (an even "
                                     "size grows to the next odd one).", minimum=1, maximum=1024, advanced=True)
    window_width: int = setting(27, "Local window pattern: window width in tokens, centred on the query (an even "
                                    "size grows to the next odd one).", minimum=1, maximum=1024, advanced=True)
    temporal_size: int = setting(3, "Temporal pattern: every latent frame, a square of this many tokens around the "
                                    "query's own position (odd; an even size grows to the next odd one).",
                                 minimum=1, maximum=1024, advanced=True)
    rows_per_frame: int = setting(16, "Query rows sampled per latent frame to measure each head (evenly spaced).",
                                  minimum=1, maximum=1024, advanced=True)

    def error(self) -> Optional[str]:
        """The message for invalid settings, or None when they are valid."""
        if not 0.0 < self.mass_threshold <= 1.0:
            return f"mass_threshold must be above 0 and at most 1, got {self.mass_threshold}"
        return range_error(self)

    @property
    def shapes(self):
        """The pattern sizes as ``kernels.head_sparse`` takes them."""
        frames, rows, columns = window_radii(self.window_frames, self.window_height, self.window_width)
        return PatternShapes(window=(frames, rows, columns), temporal=(self.temporal_size // 2,) * 2)

    def sparse_block(self, block):
        """True when global block number ``block`` (0-based) may run sparse patterns."""
        return block >= self.dense_blocks


def sampled_rows(layout, rows_per_frame, seq_len=None):
    """Sequence positions of ``rows_per_frame`` evenly spaced video queries of every latent frame, ascending."""
    from .temporal_prune import frame_ids, sample_queries  # here: temporal_prune's settings import this module
    seq_len = seq_len or layout.offset + layout.video_len
    ids = frame_ids(layout.offset, layout.frames, layout.height * layout.width,
                    seq_len - layout.offset - layout.video_len)
    return sample_queries(ids, rows_per_frame)


def statistics_fraction(layout, rows_per_frame, head_dim, seq_len=None):
    """Multiply-adds of ``pattern_masses`` over those of the call's dense attention (q k^T plus p v), per head: the
    sampled rows' q k^T, plus one pass over their probabilities per sparse pattern."""
    seq_len = seq_len or layout.offset + layout.video_len
    rows = min(rows_per_frame, layout.height * layout.width) * layout.frames
    return rows * (head_dim + len(PATTERNS) - 1) / (2 * seq_len * head_dim)


def _axis_masks(mask_mod, layout, rows):
    """Per-axis keep masks [n, F], [n, H], [n, W] (fp32) of the box ``mask_mod`` keeps for each query row: the
    tiled window's box is a product of one interval per axis holding the query's own coordinate, so the mask along
    the three lines through the query gives each interval."""
    frames, height, width, offset = layout.frames, layout.height, layout.width, layout.offset
    video = rows - offset
    f, y, x = (video // (height * width))[:, None], (video // width % height)[:, None], (video % width)[:, None]
    f_all, y_all, x_all = (torch.arange(size, device=rows.device)[None] for size in (frames, height, width))
    lines = ((f_all * height + y) * width + x, (f * height + y_all) * width + x, (f * height + y) * width + x_all)
    return [mask_mod(0, 0, rows[:, None], offset + line).float() for line in lines]


def pattern_masses(q, k, layout, shapes, rows, *, scale=None, key_mask=None):
    """[len(PATTERNS), H] fp32: for each pattern (PATTERNS order) and head, the attention mass the pattern keeps,
    averaged over the query ``rows`` (sequence positions of video tokens) and the batch.

    q, k [B, H, L, D] of a self-attention over ``layout``; ``key_mask``: optional per-key mask broadcastable to
    [B, L] (bool True = may attend, or additive), part of the softmax as in the attention itself.
    """
    batch, heads, seq_len, _ = q.shape
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    rows = rows.to(device=q.device, dtype=torch.long)
    video = slice(layout.offset, layout.offset + layout.video_len)
    mask_mods = [pattern_mask_mod(pattern, layout, shapes, seq_len) for pattern in PATTERNS]
    bias = None
    if key_mask is not None:
        key_mask = key_mask.reshape(-1, seq_len).to(q.device)
        bias = (torch.zeros(key_mask.shape, device=q.device).masked_fill(~key_mask, float("-inf"))
                if key_mask.dtype == torch.bool else key_mask.float())
        bias = bias[:, None, None, :]
    kept = torch.zeros(len(PATTERNS), heads, device=q.device)
    sparse = [index for index, mask_mod in enumerate(mask_mods) if mask_mod is not None]
    keys_t = k.float().transpose(-1, -2)
    chunk = max(1, STATISTICS_CHUNK_ELEMENTS // (batch * heads * seq_len))
    for start in range(0, rows.numel(), chunk):
        chunk_rows = rows[start:start + chunk]
        n = chunk_rows.numel()
        kept += n * batch  # every row's probabilities sum to 1: what a dense pattern keeps
        if not sparse:
            continue
        logits = torch.matmul(q.index_select(2, chunk_rows).float() * scale, keys_t)  # [B, H, n, L]
        probs = (logits if bias is None else logits + bias).softmax(dim=-1)
        # per (row, batch entry, head): the video keys in each sparse pattern's box, reduced axis by axis (columns
        # for all patterns at once, with a column of ones for the whole video's mass; then rows and frames per
        # pattern, on data W times smaller), plus the non-video keys every pattern keeps
        grid = probs[..., video].permute(2, 0, 1, 3).reshape(n, -1, layout.width)  # [n, B*H*F*Hh, W]
        masks = [_axis_masks(mask_mods[index], layout, chunk_rows) for index in sparse]
        columns = torch.stack([along_x for _, _, along_x in masks] + [torch.ones_like(masks[0][2])], dim=2)
        by_rows = torch.bmm(grid, columns)  # [n, B*H*F*Hh, patterns + 1]
        others = 1 - by_rows[..., -1].reshape(n, batch, heads, -1).sum(dim=-1)
        for column, (index, (along_f, along_y, _)) in enumerate(zip(sparse, masks)):
            mass = torch.bmm(by_rows[..., column].reshape(n, -1, layout.height), along_y[:, :, None])
            mass = torch.bmm(mass.view(n, -1, layout.frames), along_f[:, :, None]).view(n, batch, heads)
            kept[index] += (mass + others).sum(dim=(0, 1)) - n * batch
    return kept / (batch * rows.numel())


def pattern_costs(layout, shapes, seq_len=None):
    """{pattern: computed multiply-adds per head} of one call on ``layout``, as ``kernels.head_sparse`` runs it."""
    return {pattern: pattern_flops(pattern, layout, shapes, 1, 1, seq_len)[0] for pattern in PATTERNS}


def choose_patterns(masses, costs, threshold):
    """Per head (columns of ``masses`` [len(PATTERNS), H]), the cheapest pattern by ``costs`` whose mass is at least
    ``threshold``; equal costs go to dense (it runs as plain attention). Returns a tuple of pattern names. A threshold
    of 1 gives every head dense (only dense keeps all the mass; rounding cannot let a sparse pattern through)."""
    if threshold >= 1.0:
        return (DENSE,) * masses.shape[1]
    order = sorted(range(len(PATTERNS)), key=lambda i: (costs[PATTERNS[i]], PATTERNS[i] != DENSE))
    chosen = []
    for head_masses in masses.t().tolist():
        chosen.append(next((PATTERNS[i] for i in order if head_masses[i] >= threshold or PATTERNS[i] == DENSE)))
    return tuple(chosen)


def decide_patterns(q, k, layout, settings, *, scale=None, key_mask=None):
    """(patterns per head, masses [len(PATTERNS), H]) for one self-attention call's q, k [B, H, L, D] on
    ``layout`` under ``settings``: the statistics of ``settings.rows_per_frame`` sampled rows per frame."""
    shapes = settings.shapes
    with torch.no_grad():
        masses = pattern_masses(q, k, layout, shapes, sampled_rows(layout, settings.rows_per_frame, q.shape[2]),
                                scale=scale, key_mask=key_mask)
    return choose_patterns(masses, pattern_costs(layout, shapes, q.shape[2]), settings.mass_threshold), masses


class PatternTable:
    """The chosen pattern of every (block, head), with the pattern sizes and threshold they were chosen under and
    the grid they were measured on; saved as, and loaded from, a small JSON file."""

    def __init__(self, shapes, mass_threshold, grid=None, blocks=None):
        self.shapes, self.mass_threshold = shapes, float(mass_threshold)
        self.grid = None if grid is None else tuple(grid)
        self.blocks = {} if blocks is None else {int(block): tuple(patterns) for block, patterns in blocks.items()}

    def patterns(self, block):
        """The patterns of ``block``'s heads, or None when it has none (not decided yet, or dense)."""
        return self.blocks.get(block)

    def record(self, block, patterns, grid=None):
        """Set ``block``'s head patterns (measured on ``grid``, frames x height x width, when given)."""
        unknown = sorted(set(patterns) - set(PATTERNS))
        if unknown:
            raise ValueError(f"unknown attention patterns {unknown}; choose from {', '.join(PATTERNS)}")
        self.blocks[int(block)] = tuple(patterns)
        if grid is not None:
            self.grid = tuple(grid)

    def counts(self):
        """{pattern: number of heads with it} over every block, in PATTERNS order."""
        return {pattern: sum(patterns.count(pattern) for patterns in self.blocks.values()) for pattern in PATTERNS}

    def to_json(self):
        return json.dumps({
            "format": TABLE_FORMAT, "version": TABLE_VERSION, "mass_threshold": self.mass_threshold,
            "window": list(self.shapes.window), "temporal": list(self.shapes.temporal),
            "min_tile_queries": self.shapes.min_tile_queries, "grid": None if self.grid is None else list(self.grid),
            "blocks": {str(block): list(patterns) for block, patterns in sorted(self.blocks.items())},
        }, indent=1)

    @classmethod
    def from_json(cls, text, source="pattern table"):
        """The table in ``text``; ValueError naming ``source`` when it is not one this version reads."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{source} is not JSON ({err})") from None
        if not isinstance(data, dict) or data.get("format") != TABLE_FORMAT:
            raise ValueError(f"{source} is not a FreeAccel head pattern table (no \"format\": \"{TABLE_FORMAT}\")")
        if data.get("version") != TABLE_VERSION:
            raise ValueError(f"{source} has version {data.get('version')!r}; this FreeAccel reads version "
                             f"{TABLE_VERSION}")
        try:
            shapes = PatternShapes(window=tuple(int(r) for r in data["window"]),
                                   temporal=tuple(int(r) for r in data["temporal"]),
                                   min_tile_queries=int(data["min_tile_queries"]))
            table = cls(shapes, float(data["mass_threshold"]), data.get("grid"))
            for block, patterns in data["blocks"].items():
                if not isinstance(patterns, list):
                    raise ValueError(f"block {block} has {patterns!r}, not a list of patterns")
                table.record(int(block), patterns)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{source} is malformed: {err}") from None
        return table

    def save(self, path):
        with open(path, "w", encoding="utf-8") as file:
            file.write(self.to_json())

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as file:
            return cls.from_json(file.read(), source=str(path))



WAIT, DECIDE, SPARSE = "wait", "decide", "sparse"  # a step's phase: dense, the first sparse step, a later one


class AdaptiveRun:
    """One sampling run of the per-head patterns: the step phases and the pattern table.

    A step is one distinct sigma seen by the model (cond and uncond calls of a step share it). Steps before
    ``start_sigma`` run dense (WAIT). The first computed step at or after it is the DECIDE step: each block's heads
    are measured on that block's first self-attention call of the step and that very call already runs with the
    chosen patterns, so no step is spent only measuring; every later call and step (SPARSE) reuses the table. A
    ``table`` loaded from a pattern file replaces the measuring, unless it was made under other pattern sizes,
    another threshold or on another grid (``mismatch`` then says why, and the run measures as without one).
    """

    def __init__(self, settings: HeadPatternSettings, start_sigma, table: Optional[PatternTable] = None):
        self.settings = settings
        self.start_sigma = float(start_sigma)
        self.loaded = table
        self.table = PatternTable(settings.shapes, settings.mass_threshold)
        self.mismatch = None      # why a loaded table was not used
        self.phase = WAIT
        self.steps = 0            # computed steps so far
        self.dense_steps = 0      # of them, before start_sigma
        self.decision_step = None  # 1-based computed step the patterns were chosen (or first used) in
        self.trace = {}           # block -> masses [len(PATTERNS), H] of the blocks measured in this run
        self.dense_blocks = set()  # blocks seen that stay dense by setting
        self._sigma = None
        self._checked = table is None

    def begin_forward(self, sigma) -> str:
        """Call once per model call with its sigma; returns the phase of that call."""
        sigma = float(sigma)
        if sigma != self._sigma:
            self._sigma = sigma
            self.steps += 1
            if sigma > self.start_sigma:
                self.phase = WAIT
                self.dense_steps += 1
            elif self.decision_step is None:
                self.phase, self.decision_step = DECIDE, self.steps
            else:
                self.phase = SPARSE
        return self.phase

    @property
    def from_file(self) -> bool:
        """True while the patterns come from the loaded table."""
        return self.loaded is not None and self.mismatch is None

    def _check(self, grid):
        self._checked = True
        table, settings = self.loaded, self.settings
        if table.shapes != settings.shapes or table.mass_threshold != float(settings.mass_threshold):
            self.mismatch = (f"it was chosen with mass_threshold {table.mass_threshold:g}, window radii "
                             f"{tuple(table.shapes.window)} and temporal radii {tuple(table.shapes.temporal)}; these "
                             f"settings give {float(settings.mass_threshold):g}, {tuple(settings.shapes.window)} and "
                             f"{tuple(settings.shapes.temporal)}")
        elif table.grid is not None and tuple(table.grid) != tuple(grid):
            self.mismatch = f"it was measured on a {_grid_text(table.grid)} grid, this run has {_grid_text(grid)}"

    def patterns(self, block, heads, grid, measure):
        """The patterns of global block ``block``'s ``heads`` heads on ``grid`` (frames, height, width), or None
        for a block that stays dense by setting. ``measure()`` -> (patterns, masses) is called for a block the
        table does not have yet (its first call from the DECIDE step on)."""
        if not self.settings.sparse_block(block):
            self.dense_blocks.add(block)
            return None
        if not self._checked:
            self._check(grid)
        if self.from_file:
            found = self.loaded.patterns(block)
            if found is not None and len(found) != heads:
                self.mismatch = f"block {block} has {len(found)} heads there, {heads} in this model"
            elif found is not None:
                return found
        found = self.table.patterns(block)
        if found is None:
            found, masses = measure()
            self.table.record(block, found, grid)
            self.trace[block] = masses
        return found

    @property
    def chosen(self) -> PatternTable:
        """The table in force: the loaded one, or the one measured in this run."""
        if self.from_file:
            merged = PatternTable(self.loaded.shapes, self.loaded.mass_threshold, self.loaded.grid, self.loaded.blocks)
            for block, patterns in self.table.blocks.items():  # blocks the file did not have, measured here
                merged.record(block, patterns)
            return merged
        return self.table

    def summary(self) -> dict:
        table = self.chosen
        return {"patterns": dict(table.blocks), "counts": table.counts(), "heads": sum(table.counts().values()),
                "dense_blocks": sorted(self.dense_blocks), "steps": self.steps, "dense_steps": self.dense_steps,
                "decision_step": self.decision_step, "source": "file" if self.from_file else "measured",
                "mismatch": self.mismatch, "measured_blocks": sorted(self.trace), "trace": dict(self.trace)}


def _grid_text(grid):
    return " x ".join(str(size) for size in grid)
