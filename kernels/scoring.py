"""Statistics of the attention map P = softmax(q k^T * scale) without materialising it whole.

Both functions walk the query rows in chunks of ``chunk_size``, so at most [B, H, chunk_size, Lk] probabilities exist
at once. Softmax and sums run in fp32; results are fp32.
"""
from typing import Optional

import torch


def _probability_chunks(q, k, scale, chunk_size, rows):
    """Yield (start, stop, P rows) for the query rows ``rows`` (LongTensor) in chunks: P is [B, H, n, Lk] fp32."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    keys_t = k.float().transpose(-1, -2)
    for start in range(0, rows.numel(), chunk_size):
        stop = min(start + chunk_size, rows.numel())
        queries = q.index_select(2, rows[start:stop]).float()
        yield start, stop, (torch.matmul(queries, keys_t) * scale).softmax(dim=-1)


def _rows(q, query_index):
    if query_index is None:
        return torch.arange(q.shape[2], device=q.device)
    return query_index.to(device=q.device, dtype=torch.long)


def attention_transpose_product(q: torch.Tensor, k: torch.Tensor, weights: Optional[torch.Tensor] = None, *,
                                scale: Optional[float] = None, chunk_size: int = 1024,
                                query_index: Optional[torch.Tensor] = None, per_head: bool = False) -> torch.Tensor:
    """sum_r weights[b, r] * P[b, h, r, :] over the selected query rows r -> [B, Lk] (head mean) or [B, H, Lk].

    weights [B, Lq] (None: every row weighs 1, giving attention column sums); query_index [n] selects rows.
    """
    rows = _rows(q, query_index)
    total = q.new_zeros((q.shape[0], q.shape[1], k.shape[2]), dtype=torch.float32)
    row_weights = None if weights is None else weights.float().index_select(1, rows.to(weights.device))
    for start, stop, probs in _probability_chunks(q, k, scale, chunk_size, rows):
        if row_weights is None:
            total += probs.sum(dim=2)
        else:
            total += torch.einsum("bhnk,bn->bhk", probs, row_weights[:, start:stop].to(probs.device))
    return total if per_head else total.mean(dim=1)


def _one_hot_frames(frame, num_frames):
    """[L] frame ids (-1 = no frame) -> [L, F] fp32 membership matrix; rows of -1 ids are all zero."""
    member = frame.unsqueeze(1) == torch.arange(num_frames, device=frame.device)
    return member.float()


def frame_pair_mass(q: torch.Tensor, k: torch.Tensor, query_frame: torch.Tensor, key_frame: torch.Tensor,
                    num_frames: int, *, scale: Optional[float] = None, chunk_size: int = 1024,
                    query_index: Optional[torch.Tensor] = None) -> torch.Tensor:
    """mass[b, h, i, j]: mean over selected queries of frame i of the attention they give to keys of frame j.

    query_frame [Lq], key_frame [Lk]: frame ids in [0, F) or -1 for non-video tokens. Queries with -1 are skipped;
    keys with -1 take part in the softmax but count in no frame column. Frames without queries get zero rows.
    """
    if query_frame.numel() != q.shape[2] or key_frame.numel() != k.shape[2]:
        raise ValueError(f"frame ids must cover every token: query_frame {tuple(query_frame.shape)} for "
                         f"Lq={q.shape[2]}, key_frame {tuple(key_frame.shape)} for Lk={k.shape[2]}")
    query_frame, key_frame = query_frame.to(q.device), key_frame.to(q.device)
    rows = _rows(q, query_index)
    rows = rows[query_frame[rows] >= 0]
    key_members = _one_hot_frames(key_frame, num_frames)
    query_members = _one_hot_frames(query_frame[rows], num_frames)
    total = q.new_zeros((q.shape[0], q.shape[1], num_frames, num_frames), dtype=torch.float32)
    for start, stop, probs in _probability_chunks(q, k, scale, chunk_size, rows):
        per_query = torch.matmul(probs, key_members)  # [B, H, n, F]: each query's mass on each key frame
        total += torch.einsum("bhnj,ni->bhij", per_query, query_members[start:stop])
    counts = query_members.sum(dim=0).clamp(min=1)
    return total / counts.view(-1, 1)
