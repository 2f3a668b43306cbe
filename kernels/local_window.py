"""Local-window attention over a video token grid (pure torch).

Each video query attends only to the keys within ``radii = (rt, ry, rx)`` of its own position: at most ``rt`` latent
frames away and at most ``ry`` rows / ``rx`` columns away in the token grid. Tokens outside the video span of the
sequence (the text of joint attention, reference tokens) stay fully visible as keys and attend everything as queries.

Two exact implementations:
- ``flex``: the window as a flex-attention ``mask_mod`` (block-sparse kernels where flex compiles, e.g. CUDA);
- ``gathered``: queries are cut into grid tiles; each tile gathers the keys of its window region (plus the non-video
  keys) and runs ordinary masked attention on that small set. Memory is bounded by processing tiles in chunks; no
  mask larger than (tile queries x region keys) is ever formed.
"""
import functools
from dataclasses import dataclass

import torch

from .attention import attention, available_backends, resolve_backend

# Most gathered key elements (tiles x keys x heads x head_dim, per batch) processed at once on the gathered path.
GATHER_CHUNK_ELEMENTS = 1 << 25
IMPLEMENTATIONS = ("auto", "flex", "gathered")


@dataclass(frozen=True)
class VideoLayout:
    """Where the video tokens sit in a sequence: a frames x height x width grid in row-major order from ``offset``."""
    frames: int
    height: int
    width: int
    offset: int = 0

    @property
    def video_len(self):
        return self.frames * self.height * self.width


def window_radii(frames, height, width):
    """Radii of a window of +-``frames`` latent frames and ``height`` x ``width`` tokens (even sizes round down)."""
    return (frames, height // 2, width // 2)


def covers_everything(layout, radii):
    """True when the window reaches every key from every query, i.e. it is plain full attention."""
    return radii[0] >= layout.frames - 1 and radii[1] >= layout.height - 1 and radii[2] >= layout.width - 1


@functools.lru_cache(maxsize=64)
def window_mask_mod(layout, radii):
    """flex-style mask_mod(b, h, q_idx, kv_idx) of the window; cached so equal windows share one object (and so
    one flex block mask)."""
    frames, height, width, offset = layout.frames, layout.height, layout.width, layout.offset
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


@functools.lru_cache(maxsize=16)
@torch.inference_mode(False)  # normal tensors: a cached plan may later index inside autograd (motion guidance)
def _tile_plan(layout, radii, tile, seq_len):
    """Query index [T, Q], key index [T, K] and mask [T, Q, K] of every tile (CPU tensors), non-video keys appended."""
    axes = [_axis_tiles(size, t, r) for size, t, r in zip((layout.frames, layout.height, layout.width), tile, radii)]
    (qf, kf, nf), (qy, ky, ny), (qx, kx, nx) = axes
    h, w = layout.height, layout.width

    def linear(f, y, x):  # [Tf, a], [Ty, b], [Tx, c] -> [Tf*Ty*Tx, a*b*c] sequence indices
        idx = (f[:, None, None, :, None, None] * h + y[None, :, None, None, :, None]) * w \
            + x[None, None, :, None, None, :]
        return idx.reshape(idx.shape[0] * idx.shape[1] * idx.shape[2], -1) + layout.offset

    query_index, key_index = linear(qf, qy, qx), linear(kf, ky, kx)
    mask = (nf[:, None, None, :, None, None, :, None, None]
            & ny[None, :, None, None, :, None, None, :, None]
            & nx[None, None, :, None, None, :, None, None, :])
    mask = mask.reshape(query_index.shape[0], query_index.shape[1], key_index.shape[1])
    other = torch.cat([torch.arange(layout.offset), torch.arange(layout.offset + layout.video_len, seq_len)])
    if other.numel():
        key_index = torch.cat([key_index, other.expand(key_index.shape[0], -1)], dim=1)
        mask = torch.cat([mask, mask.new_ones(*mask.shape[:2], other.numel())], dim=2)
    return query_index, key_index, mask, other


def default_tile(layout, radii):
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


def resolve_implementation(name, device):
    """"auto" -> flex where it compiles and runs on a CUDA device, else the gathered tiles."""
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"unknown local-window implementation {name!r}; choose one of {', '.join(IMPLEMENTATIONS)}")
    if name == "auto":
        usable = torch.device(device).type == "cuda" and available_backends(device)["flex"] is None
        return "flex" if usable else "gathered"
    return name


def local_window_attention(q, k, v, layout, radii, *, key_mask=None, implementation="auto", backend="auto",
                           tile=None, scale=None):
    """Self-attention of q, k, v [B, H, L, D] restricted to the local window of each video query -> [B, H, L, D].

    ``key_mask``: optional per-key mask broadcastable to [B, L] (bool True = may attend, or additive float), e.g. the
    text padding of joint attention; it applies on top of the window. ``backend`` is the kernels.attention backend
    the gathered tiles run on; ``tile`` overrides the query tile (frames, height, width) of the gathered path.
    """
    if q.shape[2] != k.shape[2] or q.shape[2] < layout.offset + layout.video_len:
        raise ValueError(f"local-window attention needs self-attention over the whole layout; got q {tuple(q.shape)}, "
                         f"k {tuple(k.shape)} for {layout}")
    if key_mask is not None:
        key_mask = key_mask.reshape(-1, key_mask.shape[-1])
    if resolve_implementation(implementation, q.device) == "flex":
        mask = None if key_mask is None else key_mask[:, None, None, :]
        return attention(q, k, v, backend="flex", mask=mask, mask_mod=window_mask_mod(layout, tuple(radii)),
                         scale=scale)
    return _gathered(q, k, v, layout, tuple(radii), tuple(tile) if tile else None,
                     resolve_backend(backend, q.device), scale, key_mask)


def window_attention_flops(layout, radii, heads, head_dim, seq_len=None):
    """(windowed, full) multiply-adds of q k^T plus p v for one self-attention call (batch 1)."""
    seq_len = seq_len or layout.offset + layout.video_len

    def reach(size, radius):  # sum over positions of how many positions lie within radius
        return sum(min(size - 1, p + radius) - max(0, p - radius) + 1 for p in range(size))

    video_pairs = reach(layout.frames, radii[0]) * reach(layout.height, radii[1]) * reach(layout.width, radii[2])
    other = seq_len - layout.video_len
    windowed = video_pairs + layout.video_len * other + other * seq_len
    per_pair = 2 * heads * head_dim
    return windowed * per_pair, seq_len * seq_len * per_pair

