"""kernels.scoring against the dense softmax attention map, for every chunking (including ragged last chunks)."""
import pytest
import torch

from freeaccel.kernels.scoring import attention_transpose_product, frame_pair_mass

B, H, LQ, LK, D = 2, 3, 29, 23, 8
CHUNKS = [1, 7, LQ, 100]  # one row at a time, ragged (7 does not divide 29), exactly L, larger than L


def _qk(dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(B, H, LQ, D, generator=g)
    k = torch.randn(B, H, LK, D, generator=g)
    return q.to(dtype), k.to(dtype)


def _dense_probs(q, k, scale=None):
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    return torch.softmax(q.double() @ k.double().transpose(-1, -2) * scale, dim=-1)


@pytest.mark.parametrize("chunk_size", CHUNKS)
@pytest.mark.parametrize("per_head", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("subset", [False, True])
def test_attention_transpose_product_matches_dense(chunk_size, per_head, weighted, subset):
    q, k = _qk()
    weights = torch.rand(B, LQ, generator=torch.Generator().manual_seed(1)) if weighted else None
    query_index = torch.tensor([20, 3, 11, 28, 0, 5, 6, 7, 8]) if subset else None
    out = attention_transpose_product(q, k, weights, chunk_size=chunk_size, query_index=query_index,
                                      per_head=per_head)

    probs = _dense_probs(q, k)  # [B, H, LQ, LK]
    rows = torch.arange(LQ) if query_index is None else query_index
    row_weights = torch.ones(B, LQ, dtype=torch.float64) if weights is None else weights.double()
    expected = torch.einsum("bhrk,br->bhk", probs[:, :, rows], row_weights[:, rows])
    expected = expected if per_head else expected.mean(dim=1)
    assert out.shape == ((B, H, LK) if per_head else (B, LK)) and out.dtype == torch.float32
    torch.testing.assert_close(out, expected.float(), atol=1e-5, rtol=0)


def test_column_sums_total_the_number_of_rows():
    q, k = _qk()
    out = attention_transpose_product(q, k, chunk_size=5)
    torch.testing.assert_close(out.sum(dim=-1), torch.full((B,), float(LQ)), atol=1e-4, rtol=0)


def test_scale_is_applied():
    q, k = _qk()
    out = attention_transpose_product(q, k, scale=0.05, chunk_size=4, per_head=True)
    torch.testing.assert_close(out, _dense_probs(q, k, 0.05).sum(dim=2).float(), atol=1e-5, rtol=0)


def test_half_inputs_give_fp32_statistics():
    q, k = _qk(torch.float16)
    out = attention_transpose_product(q, k, chunk_size=6)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, _dense_probs(q, k).sum(dim=2).mean(dim=1).float(), atol=1e-5, rtol=0)


# 4 text tokens (-1), then 3 frames; keys: 2 text tokens at the end and a frame (2) with no query selected below
QUERY_FRAME = torch.tensor([-1] * 4 + [0] * 9 + [1] * 8 + [2] * 8)
KEY_FRAME = torch.tensor([0] * 7 + [1] * 7 + [2] * 7 + [-1] * 2)


def _loop_frame_mass(q, k, rows, num_frames):
    """Hand-written reference: for each (i, j) average, over selected queries of frame i, their mass on frame j."""
    probs = _dense_probs(q, k)
    mass = torch.zeros(B, H, num_frames, num_frames, dtype=torch.float64)
    for i in range(num_frames):
        queries = [r for r in rows if QUERY_FRAME[r] == i]
        for j in range(num_frames):
            keys = [c for c in range(LK) if KEY_FRAME[c] == j]
            if queries:
                mass[:, :, i, j] = probs[:, :, queries][:, :, :, keys].sum(dim=-1).mean(dim=-1)
    return mass


@pytest.mark.parametrize("chunk_size", CHUNKS)
@pytest.mark.parametrize("subset", [False, True])
def test_frame_pair_mass_matches_dense(chunk_size, subset):
    q, k = _qk()
    # the subset mixes text rows (skipped) and frames 0 and 1 only, so frame 2 has no query
    rows = [1, 5, 12, 4, 14, 20, 0, 9] if subset else list(range(LQ))
    query_index = torch.tensor(rows) if subset else None
    out = frame_pair_mass(q, k, QUERY_FRAME, KEY_FRAME, 3, chunk_size=chunk_size, query_index=query_index)
    assert out.shape == (B, H, 3, 3) and out.dtype == torch.float32
    torch.testing.assert_close(out, _loop_frame_mass(q, k, rows, 3).float(), atol=1e-5, rtol=0)
    if subset:
        assert torch.equal(out[:, :, 2], torch.zeros(B, H, 3))


def test_text_keys_take_softmax_mass_but_no_column():
    q, k = _qk()
    out = frame_pair_mass(q, k, QUERY_FRAME, KEY_FRAME, 3, chunk_size=8)
    text_share = _dense_probs(q, k)[..., KEY_FRAME == -1].sum(dim=-1)  # [B, H, LQ]
    for i in range(3):
        expected = 1 - text_share[:, :, QUERY_FRAME == i].mean(dim=-1)
        torch.testing.assert_close(out[:, :, i].sum(dim=-1), expected.float(), atol=1e-5, rtol=0)


def test_frame_ids_must_cover_tokens():
    q, k = _qk()
    with pytest.raises(ValueError, match="frame ids must cover every token"):
        frame_pair_mass(q, k, QUERY_FRAME[:-1], KEY_FRAME, 3)
