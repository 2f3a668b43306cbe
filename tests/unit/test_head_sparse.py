"""Per-head sparse attention: every pattern against dense attention with its boolean mask, and the fallbacks."""
import logging

import pytest
import torch

from freeaccel.kernels.attention import attention
from freeaccel.kernels.head_sparse import (
    DENSE, FRAME, PATTERNS, TEMPORAL, WINDOW, PatternShapes, head_sparse_attention, head_sparse_flops,
    pattern_flops, pattern_mask_mod, pattern_radii, pattern_tile)
from freeaccel.kernels.local_window import VideoLayout, window_mask_mod

# 2 reference tokens, a 3 x 5 x 7 grid, 3 text tokens
LAYOUT = VideoLayout(3, 5, 7, offset=2)
SEQ_LEN = 2 + LAYOUT.video_len + 3
SHAPES = PatternShapes(window=(1, 1, 2), temporal=(1, 1), min_tile_queries=12)


def qkv(heads, seq_len=SEQ_LEN, batch=2, dim=8, seed=0):
    return torch.randn(3, batch, heads, seq_len, dim, generator=torch.Generator().manual_seed(seed)).unbind(0)


def full_mask(mask_mod, seq_len=SEQ_LEN):
    idx = torch.arange(seq_len)
    return mask_mod(0, 0, idx[:, None], idx[None, :])


def reference(q, k, v, head_patterns, key_mask=None):
    """Per head: explicit-softmax attention with the pattern's [L, L] mask (and a [B, L] key mask)."""
    outs = []
    for head, pattern in enumerate(head_patterns):
        mask_mod = pattern_mask_mod(pattern, LAYOUT, SHAPES, SEQ_LEN)
        mask = torch.ones(SEQ_LEN, SEQ_LEN, dtype=torch.bool) if mask_mod is None else full_mask(mask_mod)
        mask = mask[None, None]
        if key_mask is not None:
            mask = mask & key_mask[:, None, None, :]
        outs.append(attention(q[:, head:head + 1], k[:, head:head + 1], v[:, head:head + 1], backend="math",
                              mask=mask))
    return torch.cat(outs, dim=1)


def test_every_pattern_runs_tiled_on_the_test_grid():
    assert all(pattern_mask_mod(p, LAYOUT, SHAPES, SEQ_LEN) is not None for p in (FRAME, WINDOW, TEMPORAL))
    assert pattern_mask_mod(DENSE, LAYOUT, SHAPES, SEQ_LEN) is None
    assert pattern_radii(TEMPORAL, LAYOUT, SHAPES) == (2, 1, 1)
    assert pattern_tile(TEMPORAL, LAYOUT, SHAPES) == (3, 5, 1)  # the fewest pairs with at least 12 queries
    assert pattern_tile(FRAME, LAYOUT, SHAPES) == (1, 5, 7)


def test_all_dense_is_plain_attention_bit_for_bit():
    q, k, v = qkv(3)
    assert torch.equal(head_sparse_attention(q, k, v, LAYOUT, [DENSE] * 3, SHAPES), attention(q, k, v))


def test_patterns_covering_the_grid_are_plain_attention_bit_for_bit():
    q, k, v = qkv(2)
    covering = PatternShapes(window=(2, 4, 6), temporal=(4, 6))
    expected = attention(q, k, v)
    assert torch.equal(head_sparse_attention(q, k, v, LAYOUT, [WINDOW, TEMPORAL], covering), expected)
    one_frame = VideoLayout(1, 5, 7, offset=2)
    q1, k1, v1 = qkv(2, seq_len=2 + 35 + 3)
    assert torch.equal(head_sparse_attention(q1, k1, v1, one_frame, [FRAME, FRAME], SHAPES), attention(q1, k1, v1))


def test_frame_pattern_is_exactly_within_frame():
    frame = torch.full((SEQ_LEN,), -1)
    frame[2:2 + LAYOUT.video_len] = torch.arange(LAYOUT.video_len) // 35
    same_frame = (frame[:, None] == frame[None, :]) | (frame[:, None] < 0) | (frame[None, :] < 0)
    assert torch.equal(full_mask(pattern_mask_mod(FRAME, LAYOUT, SHAPES, SEQ_LEN)), same_frame)


@pytest.mark.parametrize("pattern", [WINDOW, TEMPORAL])
def test_tiled_patterns_contain_the_exact_box(pattern):
    kept = full_mask(pattern_mask_mod(pattern, LAYOUT, SHAPES, SEQ_LEN))
    exact = full_mask(window_mask_mod(LAYOUT, pattern_radii(pattern, LAYOUT, SHAPES)))
    assert not (exact & ~kept).any()
    assert kept.sum() < SEQ_LEN * SEQ_LEN  # and they do drop keys


@pytest.mark.parametrize("pattern", PATTERNS)
def test_each_pattern_equals_dense_masked_reference(pattern):
    q, k, v = qkv(2)
    out = head_sparse_attention(q, k, v, LAYOUT, [pattern] * 2, SHAPES)
    assert (out - reference(q, k, v, [pattern] * 2)).abs().max().item() < 1e-5


def test_frame_pattern_without_other_tokens_equals_frame_masked_reference():
    video_only = VideoLayout(3, 5, 7)
    q, k, v = qkv(3, seq_len=video_only.video_len)
    q = q.transpose(1, 2).contiguous().transpose(1, 2)  # heads split from [B, L, H*D], as ComfyUI passes them
    frame = torch.arange(video_only.video_len) // 35
    mask = (frame[:, None] == frame[None, :])[None, None]
    out = head_sparse_attention(q, k, v, video_only, [FRAME, DENSE, FRAME], SHAPES)
    expected = attention(q, k, v, backend="math", mask=torch.cat([mask, torch.ones_like(mask), mask], dim=1))
    assert (out - expected).abs().max().item() < 1e-5


def test_mixed_heads_equal_per_head_references():
    patterns = [WINDOW, DENSE, TEMPORAL, FRAME, WINDOW]  # the window heads are not contiguous
    q, k, v = qkv(5)
    out = head_sparse_attention(q, k, v, LAYOUT, patterns, SHAPES)
    assert (out - reference(q, k, v, patterns)).abs().max().item() < 1e-5


@pytest.mark.parametrize("dtype", [torch.bool, torch.float32])
def test_key_mask_applies_on_top(dtype):
    patterns = [WINDOW, FRAME, TEMPORAL, DENSE]
    q, k, v = qkv(4)
    allowed = torch.ones(2, SEQ_LEN, dtype=torch.bool)
    allowed[0, -2:] = False  # padded text of the first batch entry
    allowed[1, 0] = False
    mask = allowed if dtype == torch.bool else torch.zeros(allowed.shape).masked_fill(~allowed, float("-inf"))
    out = head_sparse_attention(q, k, v, LAYOUT, patterns, SHAPES, mask=mask[:, None, None, :])
    assert (out - reference(q, k, v, patterns, key_mask=allowed)).abs().max().item() < 1e-5


def test_per_query_mask_runs_as_exact_mask_with_a_log_line(caplog):
    patterns = [WINDOW, TEMPORAL]
    q, k, v = qkv(2)
    per_query = torch.rand(SEQ_LEN, SEQ_LEN, generator=torch.Generator().manual_seed(1)) > 0.3
    per_query |= torch.eye(SEQ_LEN, dtype=torch.bool)  # every query keeps a key
    expected = torch.cat([
        attention(q[:, h:h + 1], k[:, h:h + 1], v[:, h:h + 1], backend="math",
                  mask=per_query & full_mask(pattern_mask_mod(p, LAYOUT, SHAPES, SEQ_LEN)))
        for h, p in enumerate(patterns)], dim=1)
    with caplog.at_level(logging.INFO, logger="freeaccel.kernels.head_sparse"):
        out = head_sparse_attention(q, k, v, LAYOUT, patterns, SHAPES, mask=per_query[None, None])
    assert (out - expected).abs().max().item() < 1e-5
    assert "differs per query" in caplog.text


def test_pattern_no_cheaper_than_dense_runs_dense_with_a_log_line(caplog):
    # 2 x 3 x 3: a temporal tile of at least 12 queries is the whole grid, and its box every key
    small = VideoLayout(2, 3, 3)
    assert pattern_mask_mod(TEMPORAL, small, SHAPES) is None
    assert pattern_flops(TEMPORAL, small, SHAPES, 1, 1) == (18 * 18 * 2, 18 * 18 * 2)
    q, k, v = qkv(2, seq_len=18)
    with caplog.at_level(logging.INFO, logger="freeaccel.kernels.head_sparse"):
        out = head_sparse_attention(q, k, v, small, [TEMPORAL, DENSE], SHAPES)
    assert torch.equal(out, attention(q, k, v))
    assert "computes no fewer pairs than dense" in caplog.text


def test_flops_by_hand():
    per_pair = 2 * 8  # q k^T plus p v, head dim 8
    # frame: each of the 105 video queries sees its 35 frame keys and the 5 others; the 5 others see all 110
    frame = (105 * (35 + 5) + 5 * 110) * per_pair
    assert pattern_flops(FRAME, LAYOUT, SHAPES, 1, 8, SEQ_LEN) == (frame, 110 * 110 * per_pair)
    # temporal: tile 3 x 5 x 1 (all frames, all rows, one column), key box 3 x 5 x 3
    temporal = (105 * (45 + 5) + 5 * 110) * per_pair
    assert pattern_flops(TEMPORAL, LAYOUT, SHAPES, 1, 8, SEQ_LEN)[0] == temporal
    computed, dense = head_sparse_flops([FRAME, TEMPORAL, FRAME, DENSE], LAYOUT, SHAPES, 8, SEQ_LEN)
    assert (computed, dense) == (2 * frame + temporal + 110 * 110 * per_pair, 4 * 110 * 110 * per_pair)


def test_errors():
    q, k, v = qkv(2)
    with pytest.raises(ValueError, match="3 head patterns for 2 heads"):
        head_sparse_attention(q, k, v, LAYOUT, [DENSE] * 3, SHAPES)
    with pytest.raises(ValueError, match="unknown attention pattern 'stripes'"):
        head_sparse_attention(q, k, v, LAYOUT, [DENSE, "stripes"], SHAPES)
    with pytest.raises(ValueError, match="whole layout"):
        head_sparse_attention(q[:, :, :50], k[:, :, :50], v[:, :, :50], LAYOUT, [DENSE] * 2, SHAPES)
