"""Attention motion flow (AMF) between video frames (pure torch).

For a query frame i and a target frame j, every query token of frame i attends (softmax of temperature * q k^T /
sqrt(d)) over the key tokens of frame j; its displacement is the attended key position minus its own position, in
tokens, as (dy, dx). ``hard`` uses the argmax key (reference videos), otherwise the expected position (soft-argmax,
differentiable).

Two ways per frame pair, neither ever forming the (frames x tokens)^2 map of the whole video:
- ``full_pair_flow``: the S x S map of one frame pair;
- ``window_pair_flow``: FastVMT's two-pass local search. The frame is cut into tiles; each tile centre attends over
  the whole of frame j to find its match, then all queries of the tile attend only to a window of K_j centred on that
  match (clamped inside the frame). Costs S x (tiles + window) instead of S x S.
"""
import math
from typing import Optional

import torch


def _grid_positions(height, width, device):
    """[S, 2] (row, col) of every token of a frame, row-major, float."""
    rows = torch.arange(height, device=device).repeat_interleave(width)
    cols = torch.arange(width, device=device).repeat(height)
    return torch.stack([rows, cols], dim=-1).float()


def _attended_positions(logits, key_positions, hard):
    """Attended (row, col) per query from logits [..., Q, n] and key positions [..., n, 2] (shared by the Q queries)."""
    if hard:
        best = logits.argmax(dim=-1, keepdim=True)
        expanded = key_positions.unsqueeze(-3).expand(*logits.shape, 2)
        return torch.gather(expanded, -2, best.unsqueeze(-1).expand(*best.shape, 2)).squeeze(-2)
    return torch.matmul(logits.softmax(dim=-1), key_positions.to(logits.dtype))


def full_pair_flow(q_i: torch.Tensor, k_j: torch.Tensor, height: int, width: int, *, temperature: float = 1.0,
                   hard: bool = False) -> torch.Tensor:
    """Displacement [S, 2] of each query token of frame i (q_i [S, D]) to frame j (k_j [S, D]) over the full frame."""
    positions = _grid_positions(height, width, q_i.device)
    logits = torch.matmul(q_i, k_j.transpose(0, 1)) * (temperature / math.sqrt(q_i.shape[-1]))
    return _attended_positions(logits, positions, hard) - positions.to(logits.dtype)


def _tiles(size, tile):
    """Tile starts along one axis (the last tile may be partial) and, per tile, its centre position."""
    starts = torch.arange(0, size, tile)
    centres = starts + (torch.clamp(size - starts, max=tile) // 2)
    return starts, centres


def window_pair_flow(q_i: torch.Tensor, k_j: torch.Tensor, height: int, width: int, *, tile: tuple = (3, 4),
                     window: tuple = (21, 21), temperature: float = 1.0, hard: bool = False) -> tuple:
    """Two-pass local-window flow of frame i to frame j.

    Returns (flow [S, 2], window_key_means [tiles, D]); the second is the mean key vector of each tile's window (used by
    FastVMT's window-tracking loss). Displacements are absolute (window origin plus position in the window minus the
    query position), not window-local.
    """
    device, dim = q_i.device, q_i.shape[-1]
    scale = temperature / math.sqrt(dim)
    ty, tx = min(tile[0], height), min(tile[1], width)
    wy, wx = min(window[0], height), min(window[1], width)
    row_starts, row_centres = _tiles(height, ty)
    col_starts, col_centres = _tiles(width, tx)
    n_rows, n_cols = len(row_starts), len(col_starts)
    positions = _grid_positions(height, width, device)

    # pass 1: each tile centre searches the whole of frame j
    centre_index = (row_centres[:, None] * width + col_centres[None, :]).reshape(-1).to(device)
    centre_logits = torch.matmul(q_i[centre_index], k_j.transpose(0, 1)) * scale
    match = _attended_positions(centre_logits, positions, hard).detach()
    top = (match[:, 0].round().long() - wy // 2).clamp(0, height - wy)
    left = (match[:, 1].round().long() - wx // 2).clamp(0, width - wx)

    # pass 2: the tile's queries attend to the window around the match
    win_rows = top[:, None, None] + torch.arange(wy, device=device)[None, :, None]
    win_cols = left[:, None, None] + torch.arange(wx, device=device)[None, None, :]
    window_index = (win_rows * width + win_cols).reshape(len(top), wy * wx)
    window_positions = torch.stack([win_rows.expand(-1, wy, wx), win_cols.expand(-1, wy, wx)], dim=-1)
    window_positions = window_positions.reshape(len(top), wy * wx, 2).float()
    keys = k_j[window_index]  # [tiles, window, D]

    # queries of each tile (a partial tile repeats its last row / column; those slots are not read back)
    slot_rows = (row_starts[:, None] + torch.arange(ty)).clamp(max=height - 1)
    slot_cols = (col_starts[:, None] + torch.arange(tx)).clamp(max=width - 1)
    tile_queries = (slot_rows[:, None, :, None] * width + slot_cols[None, :, None, :]).reshape(n_rows * n_cols, -1)
    tile_queries = tile_queries.to(device)
    logits = torch.matmul(q_i[tile_queries], keys.transpose(1, 2)) * scale  # [tiles, ty*tx, window]
    attended = _attended_positions(logits, window_positions, hard)  # [tiles, ty*tx, 2]

    # read each token's result back from its own tile and slot
    rows, cols = positions[:, 0].long(), positions[:, 1].long()
    tile_of = (rows // ty) * n_cols + cols // tx
    slot_of = (rows % ty) * tx + cols % tx
    flow = attended[tile_of, slot_of] - positions.to(attended.dtype)
    return flow, keys.mean(dim=1)


def frame_pairs(num_frames: int, span: Optional[int] = None) -> list:
    """(i, j) frame pairs: j in [i, i + span) when ``span`` is given (FastVMT), else all F^2 ordered pairs (DiTFlow)."""
    if span is None:
        return [(i, j) for i in range(num_frames) for j in range(num_frames)]
    return [(i, j) for i in range(num_frames) for j in range(i, min(num_frames, i + span))]


def motion_flow(q: torch.Tensor, k: torch.Tensor, height: int, width: int, pairs: list, *, temperature: float = 1.0,
                hard: bool = False, tile: Optional[tuple] = None, window: Optional[tuple] = None) -> tuple:
    """AMF of a video: q, k [F, S, D] -> (flows [P, S, 2], {(i, j): window_key_means} for windowed pairs).

    With ``window`` given, same-frame pairs use the full frame and the others the two-pass local window (FastVMT);
    without it every pair uses the full frame (DiTFlow).
    """
    flows, window_means = [], {}
    for i, j in pairs:
        if window is None or i == j:
            flows.append(full_pair_flow(q[i], k[j], height, width, temperature=temperature, hard=hard))
        else:
            flow, means = window_pair_flow(q[i], k[j], height, width, tile=tile, window=window,
                                           temperature=temperature, hard=hard)
            flows.append(flow)
            window_means[(i, j)] = means
    return torch.stack(flows), window_means
