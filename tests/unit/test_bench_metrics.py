import math

import pytest
import torch

from bench import metrics


def test_identical_outputs():
    x = torch.randn(1, 4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert metrics.psnr(x, x) == math.inf
    assert metrics.ssim(x, x) == pytest.approx(1.0, abs=1e-12)


def test_psnr_matches_hand_computation():
    ref = torch.tensor([[[[0.0, 2.0], [1.0, 1.0]]]])  # range 2
    out = ref + torch.tensor([[[[0.1, -0.1], [0.1, -0.1]]]])  # mse 0.01
    assert metrics.psnr(out, ref) == pytest.approx(10 * math.log10(4 / 0.01))


def test_ssim_drops_with_noise_and_handles_video():
    g = torch.Generator().manual_seed(1)
    ref = torch.randn(2, 4, 3, 16, 16, generator=g)
    small = metrics.ssim(ref + 0.05 * torch.randn(ref.shape, generator=g), ref)
    large = metrics.ssim(ref + 1.0 * torch.randn(ref.shape, generator=g), ref)
    assert 1.0 > small > large


def test_rejects_bad_rank():
    with pytest.raises(ValueError, match="4-D or 5-D"):
        metrics.ssim(torch.zeros(3, 3), torch.zeros(3, 3))
