"""Self-attention with one sparsity pattern per head over a video token grid (pure torch).

Video tokens form a frames x height x width grid, row-major from ``layout.offset`` (``kernels.local_window``'s
``VideoLayout``); tokens outside it (text of joint attention, reference tokens) stay visible as keys to every query
and attend everything as queries, on every pattern. Every pattern is a box of keys around the query, i.e. a local
window with its own radii (frames, rows, columns):

- ``dense``: every key;
- ``frame``: the query's own latent frame (radii 0, H-1, W-1): exactly within-frame attention;
- ``window``: +-``rt`` frames and a ``ry`` x ``rx`` neighbourhood (``PatternShapes.window``);
- ``temporal``: every frame, a small ``ry`` x ``rx`` neighbourhood of the query's own position
  (``PatternShapes.temporal``): the same place across frames.

So each pattern runs on ``kernels.local_window``'s tiled window: a few dense SDPA calls on gathered tiles, every query
of a tile seeing its tile grown by the radii (a superset of each query's own box; for ``frame`` the tile is the whole
frame and the box is exact). The heads that share a pattern are one such call. Other query tiles are the ones computing
the fewest pairs among those of at least ``PatternShapes.min_tile_queries`` queries: SDPA runs small query tiles at a
fraction of its speed on CPU (fp32, 12 x 128 heads, 2048 keys, per pair against dense attention: 3-4x slower at 16
queries, 2-3x at 32, 1.2-2.5x at 64, about dense speed from 128 on), so a tile keeps the extra keys of a larger box
rather than run small. Any grid runs: the tiles shift back inside the grid at the borders. Two fallbacks, each logged once per process, never an error:

- a pattern whose tiles would compute at least as many pairs as dense attention (small grids, where a tile grown by
  its radii spans the axis) runs dense;
- an attention mask that is not a per-key mask (it differs per query) runs the pattern's exact tiled mask as a
  chunked ``mask_mod`` on top of it (``kernels.attention``), slower but the same result.
"""
import functools
import itertools
import logging
import math
from dataclasses import dataclass

import torch

from .attention import attention
from .local_window import (
    VideoLayout, _tiled_axis, covers_everything, local_window_attention, tiled_window_attention_flops,
    tiled_window_mask_mod)

log = logging.getLogger(__name__)

DENSE, FRAME, WINDOW, TEMPORAL = "dense", "frame", "window", "temporal"
PATTERNS = (DENSE, FRAME, WINDOW, TEMPORAL)

# fallbacks already logged, so each (reason, pattern, grid) is reported once per process
_logged = set()


@dataclass(frozen=True)
class PatternShapes:
    """The sizes of the patterns that have one: ``window`` radii (frames, rows, columns) and ``temporal`` spatial
    radii (rows, columns), a key at most that far from its query (the temporal pattern spans every frame); and the
    fewest queries a tile may have (fewer only where the grid is smaller)."""
    window: tuple = (1, 7, 13)
    temporal: tuple = (1, 1)
    min_tile_queries: int = 128


def pattern_radii(pattern, layout, shapes):
    """The window radii (frames, rows, columns) of ``pattern`` on ``layout``, clipped to the grid (so a pattern that
    reaches every key is recognised as dense)."""
    frames, height, width = layout.frames - 1, layout.height - 1, layout.width - 1
    if pattern == DENSE:
        radii = (frames, height, width)
    elif pattern == FRAME:
        radii = (0, height, width)
    elif pattern == WINDOW:
        radii = tuple(shapes.window)
    elif pattern == TEMPORAL:
        radii = (frames,) + tuple(shapes.temporal)
    else:
        raise ValueError(f"unknown attention pattern {pattern!r}; choose one of {', '.join(PATTERNS)}")
    return tuple(min(r, limit) for r, limit in zip(radii, (frames, height, width)))


@functools.lru_cache(maxsize=64)
def pattern_tile(pattern, layout, shapes):
    """The query tile (frames, rows, columns) ``pattern`` runs with on ``layout``: one frame for ``frame`` (so it
    stays exact), else the fewest computed pairs among tiles of at least ``shapes.min_tile_queries`` queries (or the
    whole grid's count, when smaller); ties go to the larger tile."""
    sizes, radii = (layout.frames, layout.height, layout.width), pattern_radii(pattern, layout, shapes)
    if pattern == FRAME:
        return (1,) + sizes[1:]
    # per axis only the smallest tile giving each tile count: a larger one with the same count computes more pairs
    candidates = [sorted({-(-size // count) for count in range(1, size + 1)}, reverse=True) for size in sizes]
    least_queries = min(shapes.min_tile_queries, layout.video_len)
    best_pairs, best_tile = None, None
    for tile in itertools.product(*candidates):
        if math.prod(tile) < least_queries:
            continue
        pairs = math.prod(count * t * box for t, box, count in map(_tiled_axis, sizes, tile, radii))
        if best_pairs is None or pairs < best_pairs:
            best_pairs, best_tile = pairs, tile
    return best_tile


def _plan(pattern, layout, shapes, seq_len):
    """(radii, tile, tiled) of ``pattern`` on ``layout``: ``tiled`` is False where it runs dense (it reaches every
    key, or its tiles would compute no fewer pairs than dense attention)."""
    radii, tile = pattern_radii(pattern, layout, shapes), pattern_tile(pattern, layout, shapes)
    if covers_everything(layout, radii):
        return radii, tile, False
    computed, dense = tiled_window_attention_flops(layout, radii, 1, 1, seq_len, tile=tile)
    return radii, tile, computed < dense


def pattern_mask_mod(pattern, layout, shapes, seq_len=None):
    """flex-style mask_mod(b, h, q_idx, kv_idx) of the keys ``pattern`` keeps as ``head_sparse_attention`` runs it
    (its tiled window; non-video tokens always kept), or None where it runs dense."""
    radii, tile, tiled = _plan(pattern, layout, shapes, seq_len or layout.offset + layout.video_len)
    return tiled_window_mask_mod(layout, radii, tile) if tiled else None


def pattern_flops(pattern, layout, shapes, heads, head_dim, seq_len=None):
    """(computed, dense) multiply-adds of q k^T plus p v for ``heads`` heads of one self-attention call (batch 1) on
    ``pattern`` as ``head_sparse_attention`` runs it."""
    seq_len = seq_len or layout.offset + layout.video_len
    radii, tile, tiled = _plan(pattern, layout, shapes, seq_len)
    dense = seq_len * seq_len * 2 * heads * head_dim
    return tiled_window_attention_flops(layout, radii, heads, head_dim, seq_len, tile=tile)[0] if tiled else dense, \
        dense


def head_sparse_flops(head_patterns, layout, shapes, head_dim, seq_len=None):
    """(computed, dense) multiply-adds of one ``head_sparse_attention`` call (batch 1) with ``head_patterns``."""
    head_patterns = list(head_patterns)
    computed = sum(pattern_flops(pattern, layout, shapes, head_patterns.count(pattern), head_dim, seq_len)[0]
                   for pattern in set(head_patterns))
    seq_len = seq_len or layout.offset + layout.video_len
    return computed, seq_len * seq_len * 2 * len(head_patterns) * head_dim


def _log_once(key, message, *args):
    if key not in _logged:
        _logged.add(key)
        log.info(message, *args)


def _heads(x, index, all_heads):
    """x[:, index] ([B, H, L, D] -> [B, h, L, D]): the tensor itself for all heads, a view for a contiguous run."""
    if len(index) == all_heads:
        return x
    if index == list(range(index[0], index[-1] + 1)):
        return x[:, index[0]:index[-1] + 1]
    return x[:, index]


def _key_mask(mask):
    """A 4-D mask [B|1, 1, 1, Lk] that only masks keys -> [B|1, Lk]; None for any other mask."""
    return mask[:, 0, 0] if mask.shape[1] == 1 and mask.shape[2] == 1 else None


def _pattern_attention(q, k, v, layout, pattern, shapes, mask, backend, scale):
    """Attention of the heads in q, k, v [B, h, L, D] that share ``pattern``."""
    radii, tile, tiled = _plan(pattern, layout, shapes, q.shape[2])
    grid = (layout.frames, layout.height, layout.width)
    if not tiled:
        if not covers_everything(layout, radii):
            _log_once(("dense", pattern, grid, radii), "head-sparse attention: the %s pattern (radii %s) computes no "
                      "fewer pairs than dense attention on the %s grid; those heads run dense", pattern, radii, grid)
        return attention(q, k, v, backend=backend, mask=mask, scale=scale)
    if pattern == FRAME and mask is None and q.shape[2] == layout.video_len:
        # video tokens only (WAN's self-attention): frames become heads, [B, h, F*n, D] -> [B, h*F, n, D], a view of
        # contiguous rows, so nothing is gathered
        batch, heads, _, dim = q.shape
        frames = (x.reshape(batch, heads * layout.frames, -1, dim) for x in (q, k, v))
        return attention(*frames, backend=backend, scale=scale).view(q.shape)
    key_mask = None if mask is None else _key_mask(mask)
    if mask is not None and key_mask is None:
        _log_once(("mask", pattern, grid, radii), "head-sparse attention: the attention mask differs per query; the "
                  "%s pattern on the %s grid runs as an exact mask on top of it (slower)", pattern, grid)
        return attention(q, k, v, backend=backend, mask=mask, mask_mod=tiled_window_mask_mod(layout, radii, tile),
                         scale=scale)
    return local_window_attention(q, k, v, layout, radii, key_mask=key_mask, implementation="tiled",
                                  backend=backend, tile=tile, scale=scale)


def head_sparse_attention(q, k, v, layout, head_patterns, shapes=PatternShapes(), *, mask=None, backend="auto",
                          scale=None):
    """Self-attention of q, k, v [B, H, L, D] with head h restricted to ``head_patterns[h]`` -> [B, H, L, D].

    ``layout``: the ``VideoLayout`` of the video grid in the sequence. ``mask``: optional 4-D attention mask
    ([B|1, H|1, Lq|1, Lk], bool True = may attend, or additive), applied on top of every pattern. ``backend``: the
    ``kernels.attention`` backend the tiles run on. Heads with the same pattern run together; all-dense heads are
    plain attention, bit for bit.
    """
    if not isinstance(layout, VideoLayout):
        raise TypeError(f"layout must be a kernels.local_window.VideoLayout, got {type(layout).__name__}")
    heads = q.shape[1]
    head_patterns = tuple(head_patterns)
    if len(head_patterns) != heads:
        raise ValueError(f"{len(head_patterns)} head patterns for {heads} heads")
    if q.shape[2] != k.shape[2] or q.shape[2] < layout.offset + layout.video_len:
        raise ValueError(f"head-sparse attention needs self-attention over the whole layout; got q {tuple(q.shape)}, "
                         f"k {tuple(k.shape)} for {layout}")
    groups = {}  # patterns that run the same keys (e.g. a window covering the grid, and dense) run together
    for head, pattern in enumerate(head_patterns):
        radii, tile, tiled = _plan(pattern, layout, shapes, q.shape[2])
        groups.setdefault((radii, tile) if tiled else DENSE, (pattern, []))[1].append(head)
    out = None
    for pattern, index in groups.values():
        group_mask = mask if mask is None or mask.shape[1] == 1 else _heads(mask, index, heads)
        result = _pattern_attention(*(_heads(x, index, heads) for x in (q, k, v)), layout, pattern, shapes,
                                    group_mask, backend, scale)
        if len(index) == heads:
            return result
        if out is None:
            out = q.new_empty(q.shape)
        out[:, index] = result
    return out
