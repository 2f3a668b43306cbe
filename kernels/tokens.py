"""Per-batch token selection: gather a subset of tokens, write them back, choose which to keep.

Index tensors are LongTensor [B, K] of positions along dim 1 of the token tensor; rows must not repeat a position.
"""
import torch


def _batch_rows(index):
    return torch.arange(index.shape[0], device=index.device).unsqueeze(1)


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x [B, L, ...], index [B, K] -> [B, K, ...] with out[b, k] = x[b, index[b, k]]."""
    return x[_batch_rows(index), index]


def scatter_tokens(base: torch.Tensor, index: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """New tensor equal to ``base`` [B, L, ...] except out[b, index[b, k]] = values[b, k]; ``base`` is untouched."""
    out = base.clone()
    out[_batch_rows(index), index] = values.to(out.dtype)
    return out


def topk_keep_index(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """scores [B, L] -> [B, keep] positions of the ``keep`` highest scores per row, ascending by position."""
    return scores.topk(keep, dim=1).indices.sort(dim=1).values


def complement_index(index: torch.Tensor, length: int) -> torch.Tensor:
    """index [B, K] (distinct positions per row) -> [B, length - K]: the positions in [0, length) missing from
    each row, ascending."""
    kept = torch.zeros(index.shape[0], length, dtype=torch.bool, device=index.device)
    kept.scatter_(1, index, True)
    # a stable sort puts the missing positions first, in order; unlike boolean indexing it needs no host sync
    order = torch.sort(kept.to(torch.uint8), dim=1, stable=True).indices
    return order[:, :length - index.shape[1]]
