"""Local-window attention over a video token grid (pure torch).

Video tokens form a frames x height x width grid, row-major from ``layout.offset``. Tokens outside that span (the
text of joint attention, reference tokens) stay fully visible as keys and attend everything as queries. Two windows:

- the exact window: each video query sees the video keys within ``radii = (rt, ry, rx)`` of its own position (at
  most ``rt`` latent frames, ``ry`` rows and ``rx`` columns away). ``window_mask_mod`` is its mask.
- the tiled window (after Sliding Tile Attention, Hao AI Lab 2025): the grid is cut into query tiles ``(tf, ty, tx)``
  starting at position 0 on each axis (the last tile of an axis may be shorter). Every query of a tile sees the same
  box of video keys: along each axis of size ``n``, the ``R = min(n, t + 2 r)`` consecutive positions starting at
  ``clamp(tile_start - r, 0, n - R)``; that is its tile grown by the radius on both sides, slid back inside the grid
  at the borders so the box keeps its size. It contains the exact window of every query of the tile (and at most
  ``t - 1`` positions more per side, more at the borders). ``tiled_window_mask_mod`` is its mask.

Implementations:
- ``tiled`` (the tiled window; what "auto" picks on every device): every tile is a dense, unmasked attention over its
  key box plus the non-video keys. A strip (one row tile x one column tile, through all frames) is gathered once,
  frame-major, so the key boxes of its frame tiles are overlapping contiguous slices of it; strips fold into the head
  dimension and each run of frame tiles is one attention call over views of them. The cost is close to dense
  attention over the pairs it computes (``tiled_window_attention_flops``), and no mask is formed except a per-key
  ``key_mask``. With ``backend="flex"`` it runs instead as one flex call with the tiled mask as a block mask.
- ``gathered`` (the exact window): query tiles gather their key region and run masked attention on it.
- ``flex`` (the exact window): the mask_mod as a flex-attention block mask.
A window that covers everything (``covers_everything``) is plain attention, bit for bit, on every implementation.
"""
import functools
import itertools
import math
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch

from .attention import attention, resolve_backend

# Most gathered key elements processed at once: tiles x keys x heads x head_dim per batch element on the gathered
# path, batch x heads x strips x keys x head_dim on the tiled path.
GATHER_CHUNK_ELEMENTS = 1 << 25
IMPLEMENTATIONS = ("auto", "flex", "gathered", "tiled")
# The tile planner charges every computed (query, key) pair 1 + SMALL_TILE_COST / (queries per tile): SDPA runs small
# query tiles less efficiently (2-core CPU, bf16, 12 x 128 heads, per-pair time against 512-query tiles: ~1.7x at 16
# queries, ~1.3x at 64, ~1.1x at 128).
SMALL_TILE_COST = 16


@dataclass(frozen=True)
class VideoLayout:
    """Where the video tokens sit in a sequence: a frames x height x width grid in row-major order from ``offset``."""
    frames: int
    height: int
    width: int
    offset: int = 0

    @property
    def video_len(self) -> int:
        return self.frames * self.height * self.width


def window_radii(frames: int, height: int, width: int) -> tuple:
    """Radii of a window of +-``frames`` latent frames and ``height`` x ``width`` tokens (even sizes round down)."""
    return (frames, height // 2, width // 2)


def covers_everything(layout: VideoLayout, radii: tuple) -> bool:
    """True when the window reaches every key from every query, i.e. it is plain full attention."""
    return radii[0] >= layout.frames - 1 and radii[1] >= layout.height - 1 and radii[2] >= layout.width - 1


@functools.lru_cache(maxsize=64)
def window_mask_mod(layout: VideoLayout, radii: tuple) -> Callable:
    """flex-style mask_mod(b, h, q_idx, kv_idx) of the window; cached so equal windows share one object (and so
    one flex block mask)."""
    height, width, offset = layout.height, layout.width, layout.offset
    n, plane = layout.video_len, layout.height * layout.width
    rt, ry, rx = radii

    def mask_mod(b, h, q_idx, kv_idx):
        qv, kv = q_idx - offset, kv_idx - offset
        q_video = (qv >= 0) & (qv < n)
        k_video = (kv >= 0) & (kv < n)
        near = ((qv // plane - kv // plane).abs() <= rt) \
            & ((qv // width % height - kv // width % height).abs() <= ry) \
            & ((qv % width - kv % width).abs() <= rx)
        return ~q_video | ~k_video | near

    return mask_mod


def _axis_tiles(size, tile, radius):
    """Per-axis plan: query positions [T, t], region key positions [T, R] and the within-radius flags [T, t, R].

    Tiles start every ``tile`` positions; the last one is shifted back inside the axis (its overlap with the previous
    tile is computed twice with identical keys, which is harmless). The key region is the tile grown by ``radius`` on
    both sides, shifted inside the axis so every tile has the same region length.
    """
    tile = min(tile, size)
    region = min(size, tile + 2 * radius)
    starts = torch.arange(0, size, tile).clamp(max=size - tile)
    queries = starts[:, None] + torch.arange(tile)
    region_starts = (starts - radius).clamp(min=0, max=size - region)
    keys = region_starts[:, None] + torch.arange(region)
    near = (queries[:, :, None] - keys[:, None, :]).abs() <= radius
    return queries, keys, near


def _grid_index(layout, f, y, x):
    """Per-axis tile positions [Tf, a], [Ty, b], [Tx, c] -> sequence indices [Tf*Ty*Tx, a*b*c] (tiles and positions
    in row-major order)."""
    idx = (f[:, None, None, :, None, None] * layout.height + y[None, :, None, None, :, None]) * layout.width \
        + x[None, None, :, None, None, :]
    return idx.reshape(idx.shape[0] * idx.shape[1] * idx.shape[2], -1) + layout.offset


def _other_positions(layout, seq_len):
    """Sequence positions of the non-video tokens (before and after the video span)."""
    return torch.cat([torch.arange(layout.offset), torch.arange(layout.offset + layout.video_len, seq_len)])


@functools.lru_cache(maxsize=16)
@torch.inference_mode(False)  # normal tensors: a cached plan may later index inside autograd (motion guidance)
def _tile_plan(layout, radii, tile, seq_len):
    """Query index [T, Q], key index [T, K] and mask [T, Q, K] of every tile (CPU tensors), non-video keys appended."""
    axes = [_axis_tiles(size, t, r) for size, t, r in zip((layout.frames, layout.height, layout.width), tile, radii)]
    (qf, kf, nf), (qy, ky, ny), (qx, kx, nx) = axes
    query_index, key_index = _grid_index(layout, qf, qy, qx), _grid_index(layout, kf, ky, kx)
    mask = (nf[:, None, None, :, None, None, :, None, None]
            & ny[None, :, None, None, :, None, None, :, None]
            & nx[None, None, :, None, None, :, None, None, :])
    mask = mask.reshape(query_index.shape[0], query_index.shape[1], key_index.shape[1])
    other = _other_positions(layout, seq_len)
    if other.numel():
        key_index = torch.cat([key_index, other.expand(key_index.shape[0], -1)], dim=1)
        mask = torch.cat([mask, mask.new_ones(*mask.shape[:2], other.numel())], dim=2)
    return query_index, key_index, mask, other


def default_tile(layout: VideoLayout, radii: tuple) -> tuple:
    """Query tile per axis: one frame, and about one radius (at least 4 tokens) in height and width."""
    return (1, min(layout.height, max(4, radii[1])), min(layout.width, max(4, radii[2])))


def _tile_mask(window, key_mask, key_index, batch, dtype):
    """[B*n, 1, Q, K] mask of n tiles: the window ([n, Q, K] bool), and the per-key mask [B, Lk] when given."""
    n, queries, keys = window.shape
    if key_mask is None:
        return window[None].expand(batch, -1, -1, -1).reshape(batch * n, 1, queries, keys)
    per_key = key_mask.expand(batch, -1)[:, key_index][:, :, None, :]  # [B, n, 1, K]
    if key_mask.dtype == torch.bool:
        combined = window[None] & per_key
    else:
        combined = torch.where(window[None], per_key.to(dtype), float("-inf"))
    return combined.reshape(batch * n, 1, queries, keys)


def _gathered(q, k, v, layout, radii, tile, backend, scale, key_mask):
    batch, heads, seq_len, dim = q.shape
    query_index, key_index, mask, other = (
        t.to(q.device) for t in _tile_plan(layout, radii, tile or default_tile(layout, radii), seq_len))
    out = torch.empty_like(q)
    tiles, per_tile = key_index.shape
    step = max(1, GATHER_CHUNK_ELEMENTS // (per_tile * heads * dim))
    for start in range(0, tiles, step):
        qi, ki, m = query_index[start:start + step], key_index[start:start + step], mask[start:start + step]
        n = qi.shape[0]
        # [B, H, n, t, D] -> [B*n, H, t, D]: tiles become batch entries of one masked attention call
        qt = q[:, :, qi].permute(0, 2, 1, 3, 4).reshape(batch * n, heads, qi.shape[1], dim)
        kt = k[:, :, ki].permute(0, 2, 1, 3, 4).reshape(batch * n, heads, ki.shape[1], dim)
        vt = v[:, :, ki].permute(0, 2, 1, 3, 4).reshape(batch * n, heads, ki.shape[1], dim)
        mt = _tile_mask(m, key_mask, ki, batch, q.dtype)
        ot = attention(qt, kt, vt, backend=backend, mask=mt, scale=scale)
        out[:, :, qi.reshape(-1)] = ot.reshape(batch, n, heads, qi.shape[1], dim).permute(0, 2, 1, 3, 4).flatten(2, 3)
    if other.numel():  # non-video queries see the whole sequence
        mask = None if key_mask is None else key_mask.expand(batch, -1)[:, None, None, :]
        out[:, :, other] = attention(q[:, :, other], k, v, backend=backend, mask=mask, scale=scale)
    return out


# ---------------------------------------------------------------------------------------------------------------
# The tiled window


def _tiled_axis(size, tile, radius):
    """(tile, key box length, tile count) along one axis of ``size`` positions; the tile is clipped to the axis."""
    tile = min(tile, size)
    return tile, min(size, tile + 2 * radius), -(-size // tile)


@functools.lru_cache(maxsize=64)
def tiled_window_tile(layout: VideoLayout, radii: tuple) -> tuple:
    """Default query tile (tf, ty, tx) of the tiled window: the least estimated cost (computed pairs, small tiles
    charged ``SMALL_TILE_COST`` extra). It depends only on the grid and the radii, so the window does too."""
    sizes = (layout.frames, layout.height, layout.width)
    # per axis only the smallest tile giving each tile count: a larger one with the same count computes more pairs;
    # largest first, so ties go to fewer, larger tiles
    candidates = [sorted({-(-size // count) for count in range(1, size + 1)}, reverse=True) for size in sizes]
    best_cost, best_tile = None, None
    for tile in itertools.product(*candidates):
        axes = [_tiled_axis(size, t, r) for size, t, r in zip(sizes, tile, radii)]
        queries = math.prod(t for t, _, _ in axes)
        cost = math.prod(count * t * box for t, box, count in axes) * (1 + SMALL_TILE_COST / queries)
        if best_cost is None or cost < best_cost:
            best_cost, best_tile = cost, tile
    return best_tile


@functools.lru_cache(maxsize=64)
def tiled_window_mask_mod(layout: VideoLayout, radii: tuple, tile: tuple) -> Callable:
    """flex-style mask_mod(b, h, q_idx, kv_idx) of the tiled window with query tile ``tile`` (module docstring);
    cached so equal windows share one object (and so one flex block mask)."""
    offset, n, height, width = layout.offset, layout.video_len, layout.height, layout.width
    axes = [(size, radius) + _tiled_axis(size, t, radius)[:2]
            for size, t, radius in zip((layout.frames, layout.height, layout.width), tile, radii)]

    def coordinates(video_idx):
        return video_idx // (height * width), video_idx // width % height, video_idx % width

    def mask_mod(b, h, q_idx, kv_idx):
        qv, kv = q_idx - offset, kv_idx - offset
        q_video = (qv >= 0) & (qv < n)
        k_video = (kv >= 0) & (kv < n)
        in_box = q_video & k_video
        for (size, radius, t, box), qc, kc in zip(axes, coordinates(qv), coordinates(kv)):
            box_start = (qc // t * t - radius).clamp(min=0, max=size - box)  # own tile's start, grown, slid inside
            in_box = in_box & (kc >= box_start) & (kc < box_start + box)
        return ~q_video | ~k_video | in_box

    return mask_mod


@functools.lru_cache(maxsize=16)
@torch.inference_mode(False)  # normal tensors: a cached plan may later index inside autograd (motion guidance)
def _tiled_plan(layout, radii, tile, seq_len):
    """CPU plan of the tiled window, organised by strips: a strip is one (row tile, column tile) through all frames.

    Returns (strip_queries [S, F*ty*tx], strip_keys [S, F*Ry*Rx], frame_calls, token_slot, other): the sequence
    indices of each strip's queries and key box, frame-major; the attention calls covering a strip's frame tiles, each
    ``(count, query_start, query_length, query_step, key_start, key_length, key_step)`` in strip rows (``count``
    windows; window i has the queries from ``query_start + i * query_step`` and the keys from
    ``key_start + i * key_step``); for each video token (row-major), its row in all strips' call outputs laid end to
    end; the non-video positions.

    Every computed tile is full: an axis's shorter last tile is computed shifted back to end at the border. Its key
    box is the shorter tile's own (both clamp to the box ending at the border), and the tokens it shares with the
    previous tile read their result from that previous tile, so each token gets exactly its own tile's window.
    """
    starts, boxes, own_tile, tiles, box_sizes = [], [], [], [], []
    for size, t, radius in zip((layout.frames, layout.height, layout.width), tile, radii):
        t, box, count = _tiled_axis(size, t, radius)
        tile_starts = torch.arange(count) * t
        starts.append(tile_starts.clamp(max=size - t))
        boxes.append((tile_starts - radius).clamp(min=0, max=size - box))
        own_tile.append(torch.arange(size) // t)
        tiles.append(t)
        box_sizes.append(box)
    all_frames = torch.arange(layout.frames)[None, :]
    strip_queries = _grid_index(layout, all_frames, starts[1][:, None] + torch.arange(tiles[1]),
                                starts[2][:, None] + torch.arange(tiles[2]))
    strip_keys = _grid_index(layout, all_frames, boxes[1][:, None] + torch.arange(box_sizes[1]),
                             boxes[2][:, None] + torch.arange(box_sizes[2]))

    # frame tiles -> calls, in frames: (count, first query frame, query frames per window, first key frame, step)
    frame_starts, frame_boxes, tf = starts[0].tolist(), boxes[0].tolist(), tiles[0]
    calls, call_of_tile, i = [], [], 0
    while i < len(frame_starts):
        j = i
        while j + 1 < len(frame_starts) and frame_boxes[j + 1] == frame_boxes[i]:
            j += 1
        if j > i:  # tiles sharing one key box: one window holding all their query frames
            calls.append((1, frame_starts[i], frame_starts[j] + tf - frame_starts[i], frame_boxes[i], tf))
        else:  # key boxes sliding with the tiles, up to a tile that starts a shared box
            while (j + 1 < len(frame_starts) and frame_starts[j + 1] - frame_starts[j] == tf
                   and frame_boxes[j + 1] - frame_boxes[j] == tf
                   and (j + 2 == len(frame_starts) or frame_boxes[j + 2] != frame_boxes[j + 1])):
                j += 1
            calls.append((j - i + 1, frame_starts[i], tf, frame_boxes[i], tf))
        call_of_tile += [len(calls) - 1] * (j - i + 1)
        i = j + 1
    # each call outputs its query frames in order, from frame query_start on
    frame_rows = [count * length for count, _, length, _, _ in calls]
    call_row = torch.tensor([0] + frame_rows[:-1]).cumsum(0)
    first_frame = torch.tensor([first for _, first, _, _, _ in calls])
    frame_call = torch.tensor(call_of_tile)[own_tile[0]]
    frame_row = call_row[frame_call] + torch.arange(layout.frames) - first_frame[frame_call]  # [F] in a strip's rows

    plane_queries, plane_keys = tiles[1] * tiles[2], box_sizes[1] * box_sizes[2]
    row_tiles, column_tiles = own_tile[1], own_tile[2]
    strip = row_tiles[:, None] * len(starts[2]) + column_tiles[None, :]
    slot = ((torch.arange(layout.height) - starts[1][row_tiles])[:, None] * tiles[2]
            + (torch.arange(layout.width) - starts[2][column_tiles])[None, :])
    token_slot = (strip[None] * sum(frame_rows) + frame_row[:, None, None]) * plane_queries + slot[None]
    frame_calls = [(count, query_start * plane_queries, length * plane_queries, step * plane_queries,
                    key_start * plane_keys, box_sizes[0] * plane_keys, step * plane_keys)
                   for count, query_start, length, key_start, step in calls]
    return strip_queries, strip_keys, frame_calls, token_slot.flatten(), _other_positions(layout, seq_len)


def _windows(rows, start, length, step, count):
    """Views [count, N, length, ...] of ``rows`` [N, L, ...]: window i is rows[:, start + i * step:][:, :length]."""
    if count == 1:
        return rows[None, :, start:start + length]
    span = rows[:, start:start + (count - 1) * step + length]
    return span.unfold(1, length, step).movedim(-1, 2).transpose(0, 1)


def _per_window(rows, strips, count):
    """[B, H, T, ...] -> [count, B*H*strips, T, ...]: the same rows (non-video keys) for every strip and window."""
    rows = rows[:, :, None].expand(-1, -1, strips, *rows.shape[2:]).flatten(0, 2)
    return rows[None].expand(count, *rows.shape)


def _gather_rows(x, index, buffer):
    """x[:, :, index] ([B, H, n, D]), written into the front of the flat ``buffer`` when one is given."""
    if buffer is None:
        return x.index_select(2, index)
    shape = (x.shape[0], x.shape[1], index.numel(), x.shape[3])
    return torch.index_select(x, 2, index, out=buffer[:math.prod(shape)].view(shape))


def _tiled(q, k, v, layout, radii, tile, backend, scale, key_mask):
    """The tiled window. Strips are gathered a chunk at a time and folded into the head dimension; each frame call is
    one dense attention over overlapping windows of them (views, so video keys are not copied per tile; non-video keys
    are appended by copying). Few, large calls matter on CPU: every parallel op waits for all its threads, which
    costs milliseconds when other work holds a core."""
    batch, heads, seq_len, dim = q.shape
    strip_queries, strip_keys, frame_calls, token_slot, other = _tiled_plan(layout, radii, tile, seq_len)
    token_slot, other = token_slot.to(q.device), other.to(q.device)
    if key_mask is not None:
        key_mask = key_mask.expand(batch, -1)
        key_mask = key_mask if key_mask.dtype == torch.bool else key_mask.to(q.dtype)
    other_k, other_v = k[:, :, other], v[:, :, other]
    other_mask = None if key_mask is None else key_mask[:, other]
    strips, keys_per_strip = strip_keys.shape
    step = max(1, GATHER_CHUNK_ELEMENTS // (batch * heads * keys_per_strip * dim))
    # Without autograd one buffer per gathered tensor serves every chunk: first writes to fresh memory fault page by
    # page, which on CPU costs several times the copy itself. With autograd each chunk is kept for the backward pass.
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    buffers = [None] * 3 if needs_grad else [
        q.new_empty(batch * heads * step * rows * dim) for rows in (strip_queries.shape[1], keys_per_strip,
                                                                     keys_per_strip)]
    chunks = []
    for first in range(0, strips, step):
        query_index = strip_queries[first:first + step].flatten().to(q.device)
        key_index = strip_keys[first:first + step].flatten().to(q.device)
        n = batch * heads * min(step, strips - first)
        # [B, H, S, rows, D] -> [B*H*S, rows, D]: the strips become extra heads
        chunk_q, chunk_k, chunk_v = (_gather_rows(x, index, buffer).reshape(n, -1, dim) for x, index, buffer in
                                     zip((q, k, v), (query_index, key_index, key_index), buffers))
        chunk_mask = None if key_mask is None else \
            key_mask[:, None, key_index].expand(-1, heads, -1).reshape(n, keys_per_strip)
        outs = []
        for count, q_start, q_length, q_step, k_start, k_length, k_step in frame_calls:
            call_q = _windows(chunk_q, q_start, q_length, q_step, count)
            call_k = _windows(chunk_k, k_start, k_length, k_step, count)
            call_v = _windows(chunk_v, k_start, k_length, k_step, count)
            mask = None if key_mask is None else _windows(chunk_mask, k_start, k_length, k_step, count)
            if other.numel():
                per_strip = n // (batch * heads)
                call_k = torch.cat([call_k, _per_window(other_k, per_strip, count)], dim=2)
                call_v = torch.cat([call_v, _per_window(other_v, per_strip, count)], dim=2)
                if mask is not None:
                    other_rows = other_mask[:, None].expand(-1, heads, -1)
                    mask = torch.cat([mask, _per_window(other_rows, per_strip, count)], dim=2)
            mask = None if mask is None else mask[:, :, None, :]
            out = attention(call_q, call_k, call_v, backend=backend, mask=mask, scale=scale)
            outs.append(out.transpose(0, 1).reshape(batch, heads, -1, count * q_length, dim))
        chunks.append(torch.cat(outs, dim=3))
    video = torch.cat(chunks, dim=2).flatten(2, 3).index_select(2, token_slot)
    if not other.numel():
        return video
    # non-video queries see the whole sequence
    mask = None if key_mask is None else key_mask[:, None, None, :]
    text = attention(q[:, :, other], k, v, backend=backend, mask=mask, scale=scale)
    before = layout.offset
    return torch.cat([text[:, :, :before], video, text[:, :, before:]], dim=2)


def resolve_implementation(name: str, device: Union[str, torch.device]) -> str:
    """"auto" -> "tiled" on every device (the same window everywhere); other names are checked and kept."""
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"unknown local-window implementation {name!r}; choose one of {', '.join(IMPLEMENTATIONS)}")
    return "tiled" if name == "auto" else name


def local_window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: VideoLayout, radii: tuple, *,
                           key_mask: Optional[torch.Tensor] = None, implementation: str = "auto",
                           backend: str = "auto", tile: Optional[tuple] = None,
                           scale: Optional[float] = None) -> torch.Tensor:
    """Self-attention of q, k, v [B, H, L, D] restricted to the local window of each video query -> [B, H, L, D].

    ``key_mask``: optional per-key mask broadcastable to [B, L] (bool True = may attend, or additive float), e.g. the
    text padding of joint attention; it applies on top of the window. ``backend`` is the kernels.attention backend
    the tiles run on; on the tiled path a (usable) "flex" runs the tiled window as one flex block-mask call instead.
    ``tile`` overrides the query tile (frames, height, width) of the tiled and gathered paths; on the tiled path it
    is part of the window (default ``tiled_window_tile``).
    """
    if q.shape[2] != k.shape[2] or q.shape[2] < layout.offset + layout.video_len:
        raise ValueError(f"local-window attention needs self-attention over the whole layout; got q {tuple(q.shape)}, "
                         f"k {tuple(k.shape)} for {layout}")
    radii = tuple(radii)
    if key_mask is not None:
        key_mask = key_mask.reshape(-1, key_mask.shape[-1])
    implementation = resolve_implementation(implementation, q.device)
    key_mask_4d = None if key_mask is None else key_mask[:, None, None, :]
    if covers_everything(layout, radii):  # plain attention, bit for bit (a tile would reorder the keys)
        return attention(q, k, v, backend=backend, mask=key_mask_4d, scale=scale)
    if implementation == "flex":
        return attention(q, k, v, backend="flex", mask=key_mask_4d, mask_mod=window_mask_mod(layout, radii),
                         scale=scale)
    backend = resolve_backend(backend, q.device)
    if implementation == "gathered":
        return _gathered(q, k, v, layout, radii, tuple(tile) if tile else None, backend, scale, key_mask)
    tile = tuple(tile) if tile else tiled_window_tile(layout, radii)
    if backend == "flex":
        return attention(q, k, v, backend="flex", mask=key_mask_4d, mask_mod=tiled_window_mask_mod(layout, radii, tile),
                         scale=scale)
    return _tiled(q, k, v, layout, radii, tile, backend, scale, key_mask)


def window_attention_flops(layout: VideoLayout, radii: tuple, heads: int, head_dim: int,
                           seq_len: Optional[int] = None) -> tuple:
    """(windowed, full) multiply-adds of q k^T plus p v for one self-attention call (batch 1)."""
    seq_len = seq_len or layout.offset + layout.video_len

    def reach(size, radius):  # sum over positions of how many positions lie within radius
        return sum(min(size - 1, p + radius) - max(0, p - radius) + 1 for p in range(size))

    video_pairs = reach(layout.frames, radii[0]) * reach(layout.height, radii[1]) * reach(layout.width, radii[2])
    other = seq_len - layout.video_len
    windowed = video_pairs + layout.video_len * other + other * seq_len
    per_pair = 2 * heads * head_dim
    return windowed * per_pair, seq_len * seq_len * per_pair



def tiled_window_attention_flops(layout: VideoLayout, radii: tuple, heads: int, head_dim: int,
                                 seq_len: Optional[int] = None, tile: Optional[tuple] = None) -> tuple:
    """(computed, full) multiply-adds of q k^T plus p v for one tiled-window self-attention call (batch 1): every
    computed tile's queries times its keys (a shifted-back last tile recomputes its overlap), plus the non-video
    queries over the whole sequence."""
    seq_len = seq_len or layout.offset + layout.video_len
    tile = tuple(tile) if tile else tiled_window_tile(layout, radii)
    axes = [_tiled_axis(size, t, r) for size, t, r in zip((layout.frames, layout.height, layout.width), tile, radii)]
    computed_queries = math.prod(count * t for t, _, count in axes)
    box = math.prod(box for _, box, _ in axes)
    other = seq_len - layout.video_len
    per_pair = 2 * heads * head_dim
    return (computed_queries * (box + other) + other * seq_len) * per_pair, seq_len * seq_len * per_pair
