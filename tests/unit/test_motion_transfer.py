"""Motion-transfer optimisation: schedule, weights, losses and the gradient-reuse AdamW loop."""
import pytest
import torch

from freeaccel.accel_core import motion_transfer as mt


def test_settings_validation():
    assert mt.MotionTransferSettings().error() is None
    assert "fastvmt, ditflow" in mt.MotionTransferSettings(mode="fast").error()
    assert "iterations must be at least 1" in mt.MotionTransferSettings(iterations=0).error()
    assert "temporal_span must be at least 1" in mt.MotionTransferSettings(temporal_span=0).error()
    assert "learning rates must be positive" in mt.MotionTransferSettings(lr_end=0.0).error()


def test_learning_rate_schedule_as_released():
    settings = mt.MotionTransferSettings()
    rates = [mt.learning_rate(j, settings) for j in range(10)]
    assert rates[0] == pytest.approx(0.003)
    assert rates[5] == pytest.approx(0.0025)
    assert rates[9] == pytest.approx(0.0021)


def test_recompute_schedule():
    fast = mt.MotionTransferSettings()
    assert [j for j in range(10) if mt.recomputes(j, fast)] == [0, 3, 6, 9]
    assert all(mt.recomputes(j, mt.MotionTransferSettings(mode="ditflow")) for j in range(10))


def test_pairs_and_weights():
    settings = mt.MotionTransferSettings(temporal_span=4)
    pairs = mt.frame_pairs(5, settings)
    assert pairs[:4] == [(0, 0), (0, 1), (0, 2), (0, 3)] and pairs[-1] == (4, 4) and len(pairs) == 14
    weights = mt.pair_weights(pairs[:4], settings)
    assert torch.allclose(weights, torch.tensor([1.0, 14 / 15, 13 / 15, 0.8]))
    ditflow = mt.MotionTransferSettings(mode="ditflow")
    assert len(mt.frame_pairs(5, ditflow)) == 25
    assert torch.equal(mt.pair_weights(mt.frame_pairs(2, ditflow), ditflow), torch.ones(4))


def test_amf_loss_by_hand():
    reference = torch.tensor([[[0.0, 0.0], [1.0, 0.0]], [[0.0, -2.0], [0.0, 0.0]]])  # 2 pairs x 2 tokens
    generated = torch.tensor([[[5.0, 5.0], [0.0, 1.0]], [[1.0, -1.0], [3.0, 3.0]]])
    # pair 0: only token 1 moves: (1-0)^2 + (0-1)^2 = 2; pair 1: only token 0: 1 + 1 = 2
    loss = mt.amf_loss(reference, generated, torch.tensor([1.0, 0.5]))
    assert loss.item() == pytest.approx((2 * 1.0 + 2 * 0.5) / 2)


def test_tracking_loss_by_hand():
    means = {(0, 1): torch.zeros(2, 3), (0, 2): torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]]),
             (1, 2): torch.ones(2, 3)}
    # frame 0: windows of frames 1 and 2 -> distances 5 and 1 -> mean 3; frame 1 has a single window: no term
    assert mt.tracking_loss(means, 3).item() == pytest.approx(3.0)
    assert mt.tracking_loss({(0, 1): torch.ones(1, 3)}, 2) is None


def test_video_qk_averages_heads_over_video_tokens():
    heads, dim, grid = 2, 3, (2, 1, 2)
    x = torch.arange(1 * heads * 6 * dim, dtype=torch.float).reshape(1, heads, 6, dim)  # 2 leading extra tokens
    out = mt.video_qk(x, grid)
    assert out.shape == (1, 2, 2, dim)
    assert torch.equal(out[0, 0, 0], (x[0, 0, 2] + x[0, 1, 2]) / 2)
    assert torch.equal(out[0, 1, 1], (x[0, 0, 5] + x[0, 1, 5]) / 2)


def quadratic_loss(target):
    def loss_fn(z):
        loss_fn.calls += 1
        return ((z - target) ** 2).sum()
    loss_fn.calls = 0
    return loss_fn


def test_gradient_reuse_calls_model_four_times_per_ten_iterations():
    target = torch.ones(1, 4, 3, 2, 2)
    loss_fn = quadratic_loss(target)
    seen = []
    _, losses = mt.optimize_latent(torch.zeros_like(target), loss_fn, mt.MotionTransferSettings(), seen.append)
    assert loss_fn.calls == 4 and len(losses) == 4
    assert seen == list(range(10))
    loss_fn = quadratic_loss(target)
    mt.optimize_latent(torch.zeros_like(target), loss_fn, mt.MotionTransferSettings(mode="ditflow"))
    assert loss_fn.calls == 10


def test_reuse_equals_released_surrogate_loop():
    """The released loop backpropagates (z * g_cached).sum() on reuse iterations; stepping with g directly is equal."""
    target = torch.randn(2, 5, generator=torch.Generator().manual_seed(0))
    settings = mt.MotionTransferSettings()
    ours, _ = mt.optimize_latent(torch.zeros(2, 5), quadratic_loss(target), settings)

    z = torch.zeros(2, 5).requires_grad_(True)
    optimizer = torch.optim.AdamW([z], lr=settings.lr_start)
    cached = None
    for j in range(settings.iterations):
        for group in optimizer.param_groups:
            group["lr"] = settings.lr_start - (settings.lr_start - settings.lr_end) * (j / settings.iterations)
        optimizer.zero_grad(set_to_none=True)
        loss = ((z - target) ** 2).sum() if j % 3 == 0 else (z * cached).sum()
        loss.backward()
        cached = z.grad.clone().detach()
        optimizer.step()
    assert torch.allclose(ours, z.detach(), atol=1e-7)


def test_optimize_inside_inference_mode_leaves_no_graph():
    with torch.inference_mode():
        latent = torch.zeros(1, 2, 2)
        result, losses = mt.optimize_latent(latent, quadratic_loss(torch.ones(1, 2, 2)), mt.MotionTransferSettings())
    assert not result.requires_grad and result.grad_fn is None
    assert losses[-1] < losses[0]


def test_guidance_lowers_amf_loss_on_a_toy_model():
    """Q/K from a fixed random linear map of the latent: optimising the latent lowers the FastVMT loss."""
    g = torch.Generator().manual_seed(0)
    frames, height, width, channels, dim = 4, 6, 8, 4, 16
    wq, wk = torch.randn(2, channels, dim, generator=g).unbind(0)
    settings = mt.MotionTransferSettings(iterations=20, lr_start=0.05, lr_end=0.05, tile_height=3, tile_width=4,
                                         window_height=5, window_width=5)
    pairs = mt.frame_pairs(frames, settings)

    def qk(z):  # [C, F, H, W] -> [F, S, D]
        tokens = z.permute(1, 2, 3, 0).reshape(frames, height * width, channels)
        return tokens @ wq, tokens @ wk

    base = torch.randn(channels, height, width + frames, generator=g)
    reference = torch.stack([base[:, :, t:t + width] for t in range(frames)], dim=1)  # moves 1 token per frame
    ref_flow = mt.motion_flow(*qk(reference), (frames, height, width), pairs, settings, hard=True).flows

    def loss_fn(z):
        return mt.motion_loss(ref_flow, mt.motion_flow(*qk(z), (frames, height, width), pairs, settings, hard=False),
                              pairs, settings, frames)

    start = torch.randn(channels, frames, height, width, generator=g)
    _, losses = mt.optimize_latent(start, loss_fn, settings)
    assert losses[-1] < 0.9 * losses[0]
