"""Local-window attention: exact against dense attention with the same boolean mask."""
import pytest
import torch

from freeaccel.kernels.attention import attention
from freeaccel.kernels.local_window import (
    VideoLayout, covers_everything, local_window_attention, resolve_implementation, window_attention_flops,
    window_mask_mod, window_radii)


def dense_mask(layout, radii, seq_len):
    idx = torch.arange(seq_len)
    return window_mask_mod(layout, radii)(0, 0, idx[:, None], idx[None, :])


def qkv(seq_len, heads=2, dim=8, batch=2, seed=0):
    return torch.randn(3, batch, heads, seq_len, dim, generator=torch.Generator().manual_seed(seed)).unbind(0)


def test_window_radii_and_coverage():
    assert window_radii(1, 5, 4) == (1, 2, 2)
    layout = VideoLayout(3, 5, 7)
    assert covers_everything(layout, (2, 4, 6))
    assert not covers_everything(layout, (2, 4, 5))


def test_mask_mod_by_hand():
    layout = VideoLayout(frames=2, height=3, width=3, offset=1)  # token 0 is text, 1..18 video, 19 text
    mask = dense_mask(layout, (0, 1, 1), 20)
    assert mask[0].all() and mask[:, 0].all() and mask[19].all() and mask[:, 19].all()
    centre_f0 = 1 + 4  # frame 0, row 1, col 1: sees its whole frame, nothing of frame 1
    assert mask[centre_f0, 1:10].all() and not mask[centre_f0, 10:19].any()
    corner_f1 = 1 + 9  # frame 1, row 0, col 0: sees rows 0-1, cols 0-1 of frame 1 only
    seen = {int(i) - 10 for i in torch.nonzero(mask[corner_f1, 1:19]).flatten() + 1}
    assert seen == {0, 1, 3, 4}


@pytest.mark.parametrize("radii", [(0, 1, 1), (1, 2, 3), (1, 0, 0), (2, 4, 6)])
@pytest.mark.parametrize("tile", [None, (1, 2, 3), (2, 3, 4), (3, 5, 7)])
def test_gathered_equals_dense_masked(radii, tile):
    layout = VideoLayout(3, 5, 7, offset=2)
    seq_len = 2 + layout.video_len + 4
    q, k, v = qkv(seq_len)
    expected = attention(q, k, v, backend="math", mask=dense_mask(layout, radii, seq_len))
    out = local_window_attention(q, k, v, layout, radii, implementation="gathered", tile=tile)
    assert out.shape == q.shape
    assert (out - expected).abs().max().item() < 1e-5


def test_gathered_video_only_sequence_and_small_chunks(monkeypatch):
    import freeaccel.kernels.local_window as lw

    monkeypatch.setattr(lw, "GATHER_CHUNK_ELEMENTS", 1)  # one tile per chunk
    layout = VideoLayout(4, 6, 5)
    q, k, v = qkv(layout.video_len, batch=1)
    expected = attention(q, k, v, backend="math", mask=dense_mask(layout, (1, 1, 2), layout.video_len))
    out = local_window_attention(q, k, v, layout, (1, 1, 2), implementation="gathered")
    assert (out - expected).abs().max().item() < 1e-5


def test_flex_mask_mod_matches_dense():
    """The mask_mod path (flex where usable, chunked mask evaluation otherwise) gives the same result."""
    layout = VideoLayout(3, 4, 4, offset=1)
    seq_len = 1 + layout.video_len + 3
    q, k, v = qkv(seq_len, batch=1)
    expected = attention(q, k, v, backend="math", mask=dense_mask(layout, (1, 1, 1), seq_len))
    out = local_window_attention(q, k, v, layout, (1, 1, 1), implementation="flex")
    assert (out - expected).abs().max().item() < 1e-5


def test_rejects_cross_attention_shapes():
    layout = VideoLayout(2, 2, 2)
    q, _, _ = qkv(8)
    k, v, _ = qkv(5)
    with pytest.raises(ValueError, match="self-attention over the whole layout"):
        local_window_attention(q, k, v, layout, (0, 0, 0))


def test_implementation_names():
    assert resolve_implementation("auto", "cpu") == "gathered"
    with pytest.raises(ValueError, match="auto, flex, gathered"):
        resolve_implementation("dense", "cpu")


def test_flops_by_hand():
    layout = VideoLayout(frames=2, height=1, width=3)  # radii (0, 0, 1): per frame 2 + 3 + 2 = 7 pairs
    windowed, full = window_attention_flops(layout, (0, 0, 1), heads=1, head_dim=1)
    assert windowed == 2 * 7 * 2 and full == 36 * 2


@pytest.mark.parametrize("kind", ["bool", "additive"])
def test_key_mask_on_top_of_window(kind):
    """Joint attention with padded text: a per-key mask (as HunyuanVideo passes) combines with the window."""
    layout = VideoLayout(2, 3, 4)
    seq_len = layout.video_len + 5
    q, k, v = qkv(seq_len)
    allowed = torch.ones(2, seq_len, dtype=torch.bool)
    allowed[0, -2:] = False  # batch 0 has two padding tokens, batch 1 one
    allowed[1, -1] = False
    key_mask = allowed if kind == "bool" else torch.zeros(2, seq_len).masked_fill(~allowed, -1e9)
    full = dense_mask(layout, (1, 1, 1), seq_len)[None, None] & allowed[:, None, None, :]
    expected = attention(q, k, v, backend="math", mask=full)
    for implementation in ("gathered", "flex"):
        out = local_window_attention(q, k, v, layout, (1, 1, 1), key_mask=key_mask, implementation=implementation)
        assert (out - expected).abs().max().item() < 1e-5, implementation
