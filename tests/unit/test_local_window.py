"""Local-window attention: exact against dense attention with the same boolean mask."""
import pytest
import torch

from freeaccel.kernels.attention import attention
from freeaccel.kernels.local_window import (
    VideoLayout, covers_everything, local_window_attention, resolve_implementation, tiled_window_attention_flops,
    tiled_window_mask_mod, tiled_window_tile, window_attention_flops, window_mask_mod, window_radii)


def dense_mask(layout, radii, seq_len):
    idx = torch.arange(seq_len)
    return window_mask_mod(layout, radii)(0, 0, idx[:, None], idx[None, :])


def tiled_mask(layout, radii, tile, seq_len):
    idx = torch.arange(seq_len)
    return tiled_window_mask_mod(layout, radii, tile)(0, 0, idx[:, None], idx[None, :])


def with_key_mask(window, key_mask):
    """[L, L] window and [B, L] per-key mask -> the [B, 1, L, L] mask of both."""
    if key_mask.dtype == torch.bool:
        return window[None, None] & key_mask[:, None, None, :]
    return torch.where(window[None, None], key_mask[:, None, None, :], float("-inf"))


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
    assert resolve_implementation("auto", "cpu") == "tiled"
    assert resolve_implementation("gathered", "cpu") == "gathered"
    with pytest.raises(ValueError, match="auto, flex, gathered, tiled"):
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


# ---------------------------------------------------------------------------------------------------------------
# The tiled window


def test_tiled_mask_by_hand():
    """Each query sees the key box of its tile: the tile grown by the radius, slid back inside the grid."""
    layout = VideoLayout(frames=4, height=5, width=7, offset=1)  # token 0 is text, 1..140 video, 141 text
    mask = tiled_mask(layout, (1, 1, 1), (1, 2, 3), 142)
    assert mask[0].all() and mask[:, 0].all() and mask[141].all() and mask[:, 141].all()

    def seen(f, y, x):
        keys = torch.nonzero(mask[1 + (f * 5 + y) * 7 + x, 1:141]).flatten()
        return {(int(i) // 35, int(i) // 7 % 5, int(i) % 7) for i in keys}

    def box(frames, rows, cols):
        return {(f, y, x) for f in frames for y in rows for x in cols}

    # row tile [2, 4) grows to rows 1..4; the last column tile [6, 7) has the box cols 2..6 (5 = 3 + 2 columns)
    assert seen(2, 3, 6) == box((1, 2, 3), range(1, 5), range(2, 7))
    # frame 0's box of 3 frames slides inside the grid: frames 0..2; column tile [3, 6) grows to cols 2..6
    assert seen(0, 0, 4) == box((0, 1, 2), range(0, 4), range(2, 7))
    # the first column tile [0, 3) grows to cols 0..3 (its box of 5 clamps at the border)
    assert seen(3, 4, 1) == box((1, 2, 3), range(1, 5), range(0, 5))


@pytest.mark.parametrize("grid", [(3, 5, 7), (4, 6, 5), (1, 3, 3), (2, 7, 11), (5, 4, 8)])
def test_tiled_window_contains_the_exact_window(grid):
    layout = VideoLayout(*grid, offset=1)
    seq_len = layout.video_len + 3
    for radii in [(0, 0, 0), (0, 1, 1), (1, 2, 3), (2, 1, 0)]:
        for tile in [(1, 1, 1), (1, 2, 3), (2, 3, 4), tiled_window_tile(layout, radii)]:
            exact, tiled = dense_mask(layout, radii, seq_len), tiled_mask(layout, radii, tile, seq_len)
            assert not (exact & ~tiled).any(), (radii, tile)
            if tile == (1, 1, 1):  # one-token tiles: away from the borders, the exact window itself
                interior = 1 + torch.nonzero(_interior(layout, radii)).flatten()
                assert torch.equal(exact[interior], tiled[interior]), radii


def _interior(layout, radii):
    """[video_len] bool: video tokens whose exact window lies inside the grid on every axis."""
    f, y, x = torch.meshgrid(torch.arange(layout.frames), torch.arange(layout.height), torch.arange(layout.width),
                             indexing="ij")
    inside = torch.ones_like(f, dtype=torch.bool)
    for pos, size, radius in zip((f, y, x), (layout.frames, layout.height, layout.width), radii):
        inside &= (pos >= radius) & (pos < size - radius)
    return inside.flatten()


@pytest.mark.parametrize("grid,offset,trailing", [
    ((3, 5, 7), 2, 4),    # text before and after the video
    ((4, 6, 5), 0, 0),    # video only
    ((1, 3, 3), 0, 2),    # one frame, trailing text
    ((2, 7, 11), 3, 0),   # non-divisible sizes, leading text
    ((5, 4, 9), 0, 0),
    ((2, 1, 2), 1, 1),    # tiny
])
def test_tiled_equals_dense_masked(grid, offset, trailing):
    layout = VideoLayout(*grid, offset=offset)
    seq_len = offset + layout.video_len + trailing
    q, k, v = qkv(seq_len)
    for radii in [(0, 1, 1), (1, 2, 3), (1, 0, 0), (2, 1, 2)]:
        for tile in [None, (1, 1, 1), (1, 2, 3), (2, 3, 4), (3, 2, 2)]:
            used = tile or tiled_window_tile(layout, radii)
            expected = attention(q, k, v, backend="math", mask=tiled_mask(layout, radii, used, seq_len))
            out = local_window_attention(q, k, v, layout, radii, implementation="tiled", tile=tile)
            assert out.shape == q.shape
            assert (out - expected).abs().max().item() < 1e-5, (radii, tile)


@pytest.mark.parametrize("kind", ["bool", "additive"])
@pytest.mark.parametrize("chunk_elements", [1, None])
def test_tiled_key_mask_and_chunks(kind, chunk_elements, monkeypatch):
    """Padded text (a per-key mask) on top of the tiled window, whole and one strip at a time."""
    import freeaccel.kernels.local_window as lw

    if chunk_elements:
        monkeypatch.setattr(lw, "GATHER_CHUNK_ELEMENTS", chunk_elements)
    layout = VideoLayout(3, 4, 6, offset=2)
    seq_len = layout.offset + layout.video_len + 5
    q, k, v = qkv(seq_len)
    allowed = torch.ones(2, seq_len, dtype=torch.bool)
    allowed[0, -2:] = False  # batch 0 has two padding tokens, batch 1 one and a masked video key
    allowed[1, -1] = False
    allowed[1, 10] = False
    key_mask = allowed if kind == "bool" else torch.zeros(2, seq_len).masked_fill(~allowed, -1e9)
    for radii, tile in [((1, 1, 1), (1, 2, 2)), ((0, 1, 2), None), ((1, 2, 1), (2, 1, 5))]:
        used = tile or tiled_window_tile(layout, radii)
        window = tiled_mask(layout, radii, used, seq_len)
        expected = attention(q, k, v, backend="math", mask=with_key_mask(window, key_mask))
        out = local_window_attention(q, k, v, layout, radii, key_mask=key_mask, implementation="tiled", tile=tile)
        assert (out - expected).abs().max().item() < 1e-5, (radii, tile)


def test_tiled_gradients_equal_dense_reference():
    layout = VideoLayout(3, 4, 5, offset=1)
    seq_len = 1 + layout.video_len + 2
    radii, tile = (1, 1, 2), (1, 2, 2)
    key_mask = torch.ones(2, seq_len, dtype=torch.bool)
    key_mask[0, -1] = False
    window = with_key_mask(tiled_mask(layout, radii, tile, seq_len), key_mask)
    weights = torch.randn(2, 2, seq_len, 8, generator=torch.Generator().manual_seed(1))
    grads = []
    for run in ("tiled", "reference"):
        q, k, v = (t.requires_grad_() for t in qkv(seq_len))
        if run == "tiled":
            out = local_window_attention(q, k, v, layout, radii, key_mask=key_mask, tile=tile)
        else:
            out = attention(q, k, v, backend="math", mask=window)
        (out * weights).sum().backward()
        grads.append([t.grad for t in (q, k, v)])
    for name, mine, reference in zip("qkv", *grads):
        assert (mine - reference).abs().max().item() < 1e-5, name


def test_tiled_takes_head_split_views():
    """ComfyUI hands q, k, v over as [B, L, H*D] split into heads: strided [B, H, L, D] views."""
    layout = VideoLayout(2, 5, 6, offset=1)
    seq_len = layout.video_len + 3
    q, k, v = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in qkv(seq_len))
    assert not q.is_contiguous()
    radii = (1, 1, 2)
    expected = attention(q, k, v, backend="math",
                         mask=tiled_mask(layout, radii, tiled_window_tile(layout, radii), seq_len))
    assert (local_window_attention(q, k, v, layout, radii) - expected).abs().max().item() < 1e-5


def test_tiled_plan_made_in_inference_mode_serves_autograd():
    """The motion guidance differentiates through a window whose cached plan a sampling step made first."""
    layout = VideoLayout(2, 3, 7)
    q, k, v = qkv(layout.video_len, batch=1)
    with torch.inference_mode():
        local_window_attention(q, k, v, layout, (0, 1, 1))
    q.requires_grad_()
    local_window_attention(q, k, v, layout, (0, 1, 1)).sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_tiled_half_precision(dtype):
    layout = VideoLayout(3, 4, 6, offset=1)
    seq_len = layout.video_len + 3
    q, k, v = qkv(seq_len)
    radii = (1, 1, 1)
    expected = attention(q, k, v, backend="math",
                         mask=tiled_mask(layout, radii, tiled_window_tile(layout, radii), seq_len))
    out = local_window_attention(*(t.to(dtype) for t in (q, k, v)), layout, radii)
    assert out.dtype == dtype
    assert (out.float() - expected).abs().max().item() < 3e-2


def test_tiled_on_flex_backend_is_the_same_window():
    """backend="flex" runs the tiled window as one flex block-mask call (sdpa + chunked mask where flex is unusable)."""
    layout = VideoLayout(3, 4, 4, offset=1)
    seq_len = 1 + layout.video_len + 3
    q, k, v = qkv(seq_len, batch=1)
    radii, tile = (1, 1, 1), (1, 2, 2)
    expected = attention(q, k, v, backend="math", mask=tiled_mask(layout, radii, tile, seq_len))
    out = local_window_attention(q, k, v, layout, radii, backend="flex", tile=tile)
    assert (out - expected).abs().max().item() < 1e-5


@pytest.mark.parametrize("implementation", ["auto", "tiled", "gathered", "flex"])
def test_full_cover_is_plain_attention_bit_for_bit(implementation):
    layout = VideoLayout(3, 4, 5, offset=2)
    seq_len = layout.video_len + 4
    q, k, v = qkv(seq_len)
    key_mask = torch.ones(2, seq_len, dtype=torch.bool)
    key_mask[1, -1] = False
    radii = (2, 3, 4)
    assert covers_everything(layout, radii)
    out = local_window_attention(q, k, v, layout, radii, key_mask=key_mask, implementation=implementation)
    assert torch.equal(out, attention(q, k, v, mask=key_mask[:, None, None, :]))


def test_default_tile():
    # WAN 2.1 480p latents, radii (1, 10, 10): one frame, full height, 4 columns per tile (about 2,160 keys each)
    assert tiled_window_tile(VideoLayout(21, 30, 52), (1, 10, 10)) == (1, 30, 4)
    assert tiled_window_tile(VideoLayout(9, 30, 52), (1, 10, 10)) == (1, 30, 4)
    # a window reaching everything: one tile, the whole grid
    assert tiled_window_tile(VideoLayout(3, 4, 5), (2, 3, 4)) == (3, 4, 5)


def test_tiled_flops_by_hand():
    # frames: tiles of 1 (box 1); columns: tiles of 2 at 0, 2 and 4 (the last computed at 3), box 4
    layout = VideoLayout(frames=2, height=1, width=5)
    computed, full = tiled_window_attention_flops(layout, (0, 0, 1), heads=1, head_dim=1, tile=(1, 1, 2))
    assert computed == 2 * (2 * 3 * 2) * 4 and full == 2 * 100
    # two text tokens: every video query also sees them, and they see all 12 tokens
    computed, full = tiled_window_attention_flops(layout, (0, 0, 1), heads=1, head_dim=1, seq_len=12, tile=(1, 1, 2))
    assert computed == 2 * (12 * 6 + 2 * 12) and full == 2 * 144


@pytest.mark.cuda
def test_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    layout = VideoLayout(3, 6, 7, offset=2)
    seq_len = layout.video_len + 5
    q, k, v = qkv(seq_len)
    key_mask = torch.ones(2, seq_len, dtype=torch.bool)
    key_mask[0, -2:] = False
    radii, tile = (1, 2, 2), (1, 3, 2)
    runs = [("tiled", "auto"), ("tiled", "flex"), ("gathered", "auto"), ("flex", "auto")]
    for implementation, backend in runs:
        cpu = local_window_attention(q, k, v, layout, radii, key_mask=key_mask, implementation=implementation,
                                     tile=tile)
        cuda = local_window_attention(q.cuda(), k.cuda(), v.cuda(), layout, radii, key_mask=key_mask.cuda(),
                                      implementation=implementation, backend=backend, tile=tile)
        torch.testing.assert_close(cuda.cpu(), cpu, atol=1e-4, rtol=0, msg=f"{implementation} on {backend}")
