"""Quality metrics of an accelerated output against the baseline output (latents or decoded pixels)."""
import math

import torch
import torch.nn.functional as F


def _as_images(x):
    """[B, C, H, W] or [B, C, T, H, W] (video latents) -> [N, C, H, W] float64, frames folded into the batch."""
    x = x.detach().to(torch.float64)
    if x.ndim == 5:
        x = x.movedim(2, 1).flatten(0, 1)
    if x.ndim != 4:
        raise ValueError(f"expected a 4-D or 5-D tensor, got shape {tuple(x.shape)}")
    return x


def data_range(reference):
    """Peak-to-peak of the reference: latents have no fixed range, so the baseline's own spread is the peak."""
    value = float(reference.max() - reference.min())
    return value if value > 0 else 1.0


def psnr(output, reference):
    """Peak signal-to-noise ratio in dB; inf when identical."""
    mse = torch.mean((output.detach().double() - reference.detach().double()) ** 2).item()
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(data_range(reference) ** 2 / mse)


def ssim(output, reference, window=7):
    """Mean structural similarity with a uniform window, per channel, frames as separate images.

    Windows larger than the image are shrunk to fit, so tiny latents still get a value.
    """
    x, y = _as_images(output), _as_images(reference)
    window = max(1, min(window, x.shape[-1], x.shape[-2]))
    c1 = (0.01 * data_range(reference)) ** 2
    c2 = (0.03 * data_range(reference)) ** 2

    def mean(t):
        return F.avg_pool2d(t, window, stride=1)

    mx, my = mean(x), mean(y)
    vx = mean(x * x) - mx * mx
    vy = mean(y * y) - my * my
    cxy = mean(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())
