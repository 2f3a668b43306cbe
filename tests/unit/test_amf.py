"""Attention motion flow on synthetic videos whose frames are shifted crops of one random feature plane."""
import torch

from freeaccel.kernels.amf import frame_pairs, full_pair_flow, motion_flow, window_pair_flow

FRAMES, H, W, D = 5, 12, 16, 32
SHIFTS = [(0, 0), (1, -1), (2, -1), (2, 1), (3, 2)]  # (dy, dx) of the content window per frame
MARGIN = 6


def shifted_video(scale=16.0):
    """Token (y, x) of frame t = feature of plane position (y + dy_t, x + dx_t); unit-norm features times ``scale``."""
    plane = torch.randn(H + 2 * MARGIN, W + 2 * MARGIN, D, generator=torch.Generator().manual_seed(0))
    plane = plane / plane.norm(dim=-1, keepdim=True) * scale
    frames = [plane[MARGIN + dy:MARGIN + dy + H, MARGIN + dx:MARGIN + dx + W] for dy, dx in SHIFTS]
    return torch.stack(frames).reshape(FRAMES, H * W, D)


def expected_flow(i, j):
    """Exact displacement of every token of frame i in frame j, and which tokens have their match inside frame j."""
    dy, dx = SHIFTS[i][0] - SHIFTS[j][0], SHIFTS[i][1] - SHIFTS[j][1]
    rows = torch.arange(H).repeat_interleave(W)
    cols = torch.arange(W).repeat(H)
    inside = (rows + dy >= 0) & (rows + dy < H) & (cols + dx >= 0) & (cols + dx < W)
    return torch.tensor([float(dy), float(dx)]).expand(H * W, 2), inside


def tile_centre_inside(i, j, tile):
    """Tokens whose tile centre has its match inside frame j (the two-pass search needs that)."""
    rows = torch.arange(H).repeat_interleave(W)
    cols = torch.arange(W).repeat(H)
    cy = (rows // tile[0]) * tile[0] + torch.clamp(H - (rows // tile[0]) * tile[0], max=tile[0]) // 2
    cx = (cols // tile[1]) * tile[1] + torch.clamp(W - (cols // tile[1]) * tile[1], max=tile[1]) // 2
    dy, dx = SHIFTS[i][0] - SHIFTS[j][0], SHIFTS[i][1] - SHIFTS[j][1]
    return (cy + dy >= 0) & (cy + dy < H) & (cx + dx >= 0) & (cx + dx < W)


def test_frame_pairs():
    assert frame_pairs(3, 2) == [(0, 0), (0, 1), (1, 1), (1, 2), (2, 2)]
    assert len(frame_pairs(4)) == 16
    assert len(frame_pairs(21, 4)) == 21 * 4 - 6  # the 78 pairs of FastVMT's 81-frame setting


def test_argmax_recovers_shift_exactly():
    video = shifted_video()
    for i, j in frame_pairs(FRAMES):
        flow = full_pair_flow(video[i], video[j], H, W, hard=True)
        expected, inside = expected_flow(i, j)
        assert torch.equal(flow[inside], expected[inside]), (i, j)


def test_soft_argmax_within_quarter_token():
    video = shifted_video()
    for i, j in frame_pairs(FRAMES):
        flow = full_pair_flow(video[i], video[j], H, W, temperature=1.0)
        expected, inside = expected_flow(i, j)
        assert (flow[inside] - expected[inside]).abs().max() < 0.25, (i, j)


def test_window_flow_equals_full_when_motion_fits():
    video = shifted_video()
    tile, window = (3, 4), (7, 9)  # every shift here is at most 3 tokens: fits the window around the match
    for hard in (True, False):
        for i, j in frame_pairs(FRAMES, 4):
            if i == j:
                continue
            full = full_pair_flow(video[i], video[j], H, W, hard=hard)
            windowed, means = window_pair_flow(video[i], video[j], H, W, tile=tile, window=window, hard=hard)
            _, inside = expected_flow(i, j)
            check = inside & tile_centre_inside(i, j, tile)
            assert check.sum() > H * W // 3
            if hard:
                assert torch.equal(windowed[check], full[check]), (i, j)
            else:  # the window drops only the far tail of the softmax
                assert (windowed[check] - full[check]).abs().max() < 1e-3, (i, j)
            assert means.shape == (4 * 4, D)  # ceil(12/3) x ceil(16/4) tiles


def test_window_covering_frame_equals_full():
    video = shifted_video(scale=1.0)  # soft, spread attention: equality must not depend on sharpness
    for i, j in [(0, 1), (1, 3)]:
        full = full_pair_flow(video[i], video[j], H, W)
        windowed, _ = window_pair_flow(video[i], video[j], H, W, tile=(5, 3), window=(H, W))
        assert torch.allclose(windowed, full, atol=1e-5)


def test_window_flow_is_differentiable():
    video = shifted_video(scale=2.0).requires_grad_(True)
    flow, means = window_pair_flow(video[0], video[1], H, W, tile=(3, 4), window=(5, 5))
    (flow.square().sum() + means.sum()).backward()
    assert video.grad is not None and video.grad.abs().sum() > 0


def test_motion_flow_modes():
    video = shifted_video()
    pairs = frame_pairs(FRAMES, 2)
    flows, means = motion_flow(video, video, H, W, pairs, hard=True, tile=(3, 4), window=(7, 7))
    assert flows.shape == (len(pairs), H * W, 2)
    assert set(means) == {(i, j) for i, j in pairs if i != j}
    flows_full, means_full = motion_flow(video, video, H, W, pairs, hard=True)
    assert means_full == {}
    assert torch.equal(flows[0], flows_full[0])  # same-frame pairs always use the full frame
