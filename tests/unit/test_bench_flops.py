import torch

from bench.flops import count_flops


def test_cpu_sdpa_is_counted():
    q = torch.randn(2, 3, 16, 8)
    k = torch.randn(2, 3, 24, 8)
    _, total, per_op = count_flops(torch.nn.functional.scaled_dot_product_attention, q, k, k)
    # QK^T and PV: 2 matmuls of 2*B*H*Lq*Lk*D flops each
    assert total == 2 * (2 * 2 * 3 * 16 * 24 * 8)
    assert per_op


def test_linear_is_counted():
    layer = torch.nn.Linear(8, 4, bias=False)
    _, total, _ = count_flops(layer, torch.randn(5, 8))
    assert total == 2 * 5 * 8 * 4


def test_attention_flops_sums_attention_ops_only():
    from bench.benchmark import attention_flops
    per_op = {"aten.mm": 10, "aten.addmm": 20, "aten.bmm": 3, "aten.baddbmm": 4,
              "aten._scaled_dot_product_flash_attention_for_cpu": 5, "aten.convolution": 7}
    assert attention_flops(per_op) == 12
