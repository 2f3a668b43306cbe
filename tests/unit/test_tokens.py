"""kernels.tokens: exact gather/scatter round trips and index bookkeeping."""
import torch

from freeaccel.kernels.tokens import complement_index, gather_tokens, scatter_tokens, topk_keep_index

B, L, C = 3, 11, 4


def _tokens():
    return torch.randn(B, L, C, generator=torch.Generator().manual_seed(0))


def _keep_index():
    return torch.tensor([[0, 4, 5, 10], [1, 2, 3, 9], [7, 8, 6, 2]])  # last row deliberately unsorted


def test_gather_picks_rows_per_batch():
    x = _tokens()
    index = _keep_index()
    out = gather_tokens(x, index)
    assert out.shape == (B, 4, C)
    for b in range(B):
        for j in range(4):
            assert torch.equal(out[b, j], x[b, index[b, j]])


def test_gather_keeps_trailing_dims():
    x = torch.arange(B * L * 2 * 5).view(B, L, 2, 5)
    out = gather_tokens(x, _keep_index())
    assert out.shape == (B, 4, 2, 5)
    assert torch.equal(out[2, 1], x[2, 8])


def test_scatter_returns_new_tensor_and_leaves_base_untouched():
    base = _tokens()
    before = base.clone()
    index = _keep_index()
    values = torch.full((B, 4, C), 7.0)
    out = scatter_tokens(base, index, values)
    assert torch.equal(base, before)
    expected = before.clone()
    for b in range(B):
        expected[b, index[b]] = 7.0
    assert torch.equal(out, expected)


def test_gather_then_scatter_restores_exactly():
    x = _tokens()
    index = _keep_index()
    values = torch.randn(B, 4, C)
    assert torch.equal(gather_tokens(scatter_tokens(x, index, values), index), values)
    rest = complement_index(index, L)
    rebuilt = scatter_tokens(scatter_tokens(torch.zeros_like(x), index, gather_tokens(x, index)), rest,
                             gather_tokens(x, rest))
    assert torch.equal(rebuilt, x)


def test_scatter_casts_values_to_base_dtype():
    base = torch.zeros(1, 3, 2, dtype=torch.float16)
    out = scatter_tokens(base, torch.tensor([[1]]), torch.ones(1, 1, 2, dtype=torch.float32))
    assert out.dtype == torch.float16
    assert torch.equal(out[0, :, 0], torch.tensor([0.0, 1.0, 0.0], dtype=torch.float16))


def test_complement_and_keep_cover_every_position_once():
    index = _keep_index()
    rest = complement_index(index, L)
    assert rest.shape == (B, L - 4)
    assert torch.equal(rest, rest.sort(dim=1).values)
    assert torch.equal(torch.cat([index, rest], dim=1).sort(dim=1).values, torch.arange(L).expand(B, -1))
    assert rest[0].tolist() == [1, 2, 3, 6, 7, 8, 9]


def test_complement_of_empty_and_full_index():
    assert torch.equal(complement_index(torch.empty(2, 0, dtype=torch.long), 3), torch.arange(3).expand(2, -1))
    assert complement_index(torch.arange(5).flip(0).expand(2, -1), 5).shape == (2, 0)


def test_topk_keep_index_sorted_by_position():
    scores = torch.tensor([[0.1, 0.9, 0.3, 0.8, 0.2], [5.0, 4.0, 3.0, 2.0, 1.0]])
    assert topk_keep_index(scores, 3).tolist() == [[1, 2, 3], [0, 1, 2]]
    assert topk_keep_index(scores, 5).tolist() == [[0, 1, 2, 3, 4]] * 2
    assert topk_keep_index(scores, 0).shape == (2, 0)
