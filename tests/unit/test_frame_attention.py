import pytest
import torch

from freeaccel.kernels.attention import attention
from freeaccel.kernels.frame_attention import frame_attention


def _qkv(batch, heads, length, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, heads, length, dim, generator=g) for _ in range(3))


def _block_diagonal(ids):
    """Dense reference mask: same frame, or either side a non-video token."""
    q, k = ids.view(-1, 1), ids.view(1, -1)
    return (q == k) | (k < 0) | (q < 0)


def _reference(q, k, v, ids, extra=None):
    mask = _block_diagonal(ids).view(1, 1, len(ids), len(ids))
    if extra is None:
        return attention(q, k, v, backend="math", mask=mask)
    return attention(q, k, v, backend="math", mask=torch.where(mask, extra, float("-inf")))


@pytest.mark.parametrize("ids", [
    [0, 0, 0, 1, 1, 1, 2, 2, 2],                                   # video only
    [0, 0, 1, 1, 2, 2, -1, -1, -1],                                # text after the video (Mochi, HunyuanVideo)
    [-1, -1, 0, 0, 0, 1, 1, 1],                                    # reference tokens first (WAN Fun reference)
    [1, 0, -1, 1, 0, 2, 2, -1],                                    # any order
])
def test_equal_frames_match_block_diagonal_dense_attention(ids):
    ids = torch.tensor(ids)
    q, k, v = _qkv(2, 3, len(ids))
    out = frame_attention(q, k, v, ids, backend="math")
    torch.testing.assert_close(out, _reference(q, k, v, ids), rtol=0, atol=1e-5)


def test_unequal_frames_use_the_mask_path():
    ids = torch.tensor([0, 0, 0, 1, 2, 2, -1])  # LTXV keyframe conditioning drops tokens unevenly
    q, k, v = _qkv(1, 2, len(ids), seed=1)
    out = frame_attention(q, k, v, ids, backend="sdpa")
    torch.testing.assert_close(out, _reference(q, k, v, ids), rtol=0, atol=1e-5)


def test_key_padding_mask_is_applied_in_every_frame():
    ids = torch.tensor([0, 0, 1, 1, -1, -1, -1])
    q, k, v = _qkv(2, 2, len(ids), seed=2)
    padding = torch.zeros(1, 1, len(ids))  # ComfyUI 3-D convention [B, Lq=1, Lk] (HunyuanVideo's text mask)
    padding[..., -1] = -1e9
    out = frame_attention(q, k, v, ids, mask=padding, backend="sdpa")
    expected = _reference(q, k, v, ids, extra=padding.view(1, 1, 1, -1).expand(1, 1, len(ids), -1))
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    # the padded text key really is ignored: changing its value changes nothing
    v2 = v.clone()
    v2[:, :, -1] += 100.0
    torch.testing.assert_close(frame_attention(q, k, v2, ids, mask=padding, backend="sdpa"), out, rtol=0, atol=1e-5)


def test_full_query_key_mask_goes_through_the_general_path():
    ids = torch.tensor([0, 0, 1, 1, -1])
    q, k, v = _qkv(1, 2, len(ids), seed=3)
    full = torch.rand(len(ids), len(ids), generator=torch.Generator().manual_seed(4)) > 0.3
    full |= torch.eye(len(ids), dtype=torch.bool)
    out = frame_attention(q, k, v, ids, mask=full, backend="sdpa")
    expected = attention(q, k, v, backend="math", mask=(full & _block_diagonal(ids)).view(1, 1, 5, 5))
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


def test_one_token_frames_reduce_to_the_value():
    ids = torch.arange(4)
    q, k, v = _qkv(1, 2, 4, seed=5)
    torch.testing.assert_close(frame_attention(q, k, v, ids), v, rtol=0, atol=1e-6)


def test_inputs_are_not_modified():
    ids = torch.tensor([0, 0, 1, 1, -1])
    q, k, v = _qkv(1, 1, 5, seed=6)
    copies = [t.clone() for t in (q, k, v)]
    frame_attention(q, k, v, ids)
    for before, after in zip(copies, (q, k, v)):
        assert torch.equal(before, after)
