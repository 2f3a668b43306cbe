"""The judge with heads (bench.trained.train_tiny's HeadsTrainConfig) and bench.head_patterns_quality's pure parts: the
Radial-style static mask against hand-counted cases, its density, the equal-density choice of window and mask."""
import dataclasses

import pytest
import torch

from bench import head_patterns_quality as hq
from bench.trained import train_tiny

# the config hash of the default judge with heads, whose file the records in bench/results name
PINNED_HEADS_HASH = "a4354a3dd58a"


def test_judge_config_has_heads_to_choose_from():
    config = train_tiny.HEADS_MODEL_CONFIG
    heads, dim = config["num_heads"], config["dim"]
    assert heads >= 4 and config["num_layers"] >= 4
    assert dim % heads == 0
    head_dim = dim // heads
    # WanModel's RoPE splits the head dim in three even parts: d - 4 (d // 6), 2 (d // 6), 2 (d // 6)
    assert all(part > 0 and part % 2 == 0 for part in (head_dim - 4 * (head_dim // 6), 2 * (head_dim // 6)))
    assert dim // 128 != heads  # why UNETLoader's detection cannot load it (heads = dim // 128)


def test_judge_latent_gives_a_grid_where_patterns_differ():
    frames, height, width = train_tiny.HEADS_LATENT
    config = train_tiny.HeadsTrainConfig(steps=1)
    assert (config.frames, config.height, config.width) == (frames, height, width)
    assert frames >= 9 and height // 2 >= 12 and width // 2 >= 12  # 2 x 2 patch: at least 12 x 12 tokens a frame


def test_judge_config_is_hashed_apart_from_the_first_judge():
    heads = train_tiny.HeadsTrainConfig(steps=100)
    first = dataclasses.asdict(train_tiny.TrainConfig(steps=100))
    # the first judge's config keeps its fields (its hash, and the file the records name, must not change)
    assert set(dataclasses.asdict(heads)) == set(first)
    assert train_tiny.file_stem(heads).startswith("freeaccel_trained_wan21_heads_")
    assert train_tiny.config_hash(heads) == train_tiny.config_hash(train_tiny.HeadsTrainConfig(steps=100))
    assert train_tiny.config_hash(heads) != train_tiny.config_hash(train_tiny.HeadsTrainConfig(steps=101))
    assert train_tiny.model_config(heads) is train_tiny.HEADS_MODEL_CONFIG


def test_judge_default_hash_is_pinned():
    """The records under bench/results name the judge trained with the default config: changing the trainer, the
    model config or the defaults must show up here (bump TRAINER_VERSION and re-record)."""
    config = train_tiny.HeadsTrainConfig(steps=train_tiny.HEADS_DEFAULT_STEPS)
    assert train_tiny.file_stem(config) == "freeaccel_trained_wan21_heads_" + PINNED_HEADS_HASH


@pytest.mark.parametrize("distance, radii", [(1, (4, 3)), (2, (2, 1)), (3, (2, 1)), (4, (1, 0)), (7, (1, 0)),
                                             (8, (0, 0)), (20, (0, 0))])
def test_radial_radii_halve_per_doubling_of_the_frame_distance(distance, radii):
    assert hq.radial_radii(distance, (4, 3)) == radii


def test_radial_radii_reject_distance_zero():
    with pytest.raises(ValueError):
        hq.radial_radii(0, (1, 1))


def test_radial_mask_by_hand():
    # 3 frames x 1 x 3 tokens, base radii (0, 1): frame distance 0 keeps the frame (3 x 3 pairs per frame), distance
    # 1 keeps |dx| <= 1 (7 pairs per ordered frame pair, 4 such pairs), distance 2 keeps dx = 0 (3 pairs, 2 pairs)
    mask = hq.radial_mask(3, 1, 3, (0, 1))
    assert mask.shape == (9, 9) and mask.dtype == torch.bool
    assert int(mask.sum()) == 27 + 28 + 6
    assert mask[0].nonzero().flatten().tolist() == [0, 1, 2, 3, 4, 6]  # frame 0, x 0
    assert mask[4].all()  # frame 1, x 1: distance 1 to both other frames, |dx| <= 1 everywhere
    assert mask[6].nonzero().flatten().tolist() == [0, 3, 4, 6, 7, 8]  # frame 2, x 0
    assert torch.equal(mask, mask.t())
    assert hq.radial_density(3, 1, 3, (0, 1)) == pytest.approx(61 / 81)


def test_radial_mask_keeps_non_video_tokens():
    mask = hq.radial_mask(2, 2, 2, (0, 0), offset=2, seq_len=12)
    assert mask.shape == (12, 12)
    assert mask[:2].all() and mask[:, :2].all() and mask[10:].all() and mask[:, 10:].all()
    video = mask[2:10, 2:10]
    assert torch.equal(video, hq.radial_mask(2, 2, 2, (0, 0)))
    # frame distance 1 at base (0, 0): only the same position
    assert video[0].nonzero().flatten().tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("grid, base", [((9, 12, 12), (4, 4)), ((5, 6, 4), (2, 1)), ((4, 3, 3), (5, 5))])
def test_radial_density_counts_the_mask(grid, base):
    assert hq.radial_density(*grid, base) == pytest.approx(hq.radial_mask(*grid, base).float().mean().item())


def test_radial_density_bounds():
    frames, height, width = 9, 12, 12
    assert hq.radial_density(frames, height, width, (0, 0)) > 1 / frames  # within-frame always kept, plus one key
    assert hq.radial_density(frames, height, width, (11, 11)) < 1  # distance 2+ halves the window
    assert hq.radial_density(frames, height, width, (2, 2)) < hq.radial_density(frames, height, width, (3, 3))


def test_closest_picks_the_nearest_density_then_the_preference():
    candidates = [(0.30, "a"), (0.26, "b"), (0.24, "c"), (0.10, "d")]
    assert hq.closest(candidates, 0.25, key=lambda s: s != "c")[1] == "c"
    assert hq.closest(candidates, 0.25, key=lambda s: s != "b")[1] == "b"
    assert hq.closest(candidates, 0.0)[1] == "d"


def test_window_candidates_match_the_tiled_kernel():
    from kernels.local_window import VideoLayout, tiled_window_attention_flops, window_radii
    grid = (4, 6, 6)
    table = hq.window_candidates(grid, lambda radii: hq.tiled_window_density(grid, radii))
    density = dict((setting, d) for d, setting in table)
    assert len(table) == len(density) <= 4 * 6 * 6
    assert density[(3, 11, 11)] == 1.0  # covers the grid: plain attention
    assert all(d < 1 for setting, d in density.items() if setting[0] < 3)  # tiles as costly as dense: left out
    assert hq.closest(table, 1.0, hq.window_preference)[1][0] == 3
    computed, dense = tiled_window_attention_flops(VideoLayout(*grid), window_radii(1, 3, 3), 1, 1)
    assert density[(1, 3, 3)] == pytest.approx(computed / dense)
    assert density[(0, 1, 1)] < density[(1, 3, 3)] < 1


def test_adaptive_density_of_a_pattern_table():
    from kernels.head_sparse import PatternShapes, head_sparse_flops
    grid, shapes = (9, 12, 12), PatternShapes(window=(1, 3, 3), temporal=(1, 1))
    all_dense = {1: ("dense",) * 4, 2: ("dense",) * 4}
    assert hq.adaptive_density(all_dense, grid, shapes, 32, head_sparse_flops) == 1.0
    frames = {1: ("frame",) * 4}
    assert hq.adaptive_density(frames, grid, shapes, 32, head_sparse_flops) == pytest.approx(1 / 9)
    mixed = {1: ("frame",) * 4, 2: ("dense",) * 4}
    assert hq.adaptive_density(mixed, grid, shapes, 32, head_sparse_flops) == pytest.approx((1 / 9 + 1) / 2)
    assert hq.adaptive_density({}, grid, shapes, 32, head_sparse_flops) == 1.0


def test_summary_says_whether_the_goal_was_met():
    def clip(motion, adaptive, window, radial):
        return {"motion": motion, "psnr": {"adaptive": adaptive, "window": window, "radial": radial},
                "density": {"adaptive": 0.3, "window": 0.31, "radial": 0.29}}
    met = hq._class_summary([clip("fast", 30, 25, 29), clip("fast", 20, 21, 10)])  # worst 20 >= 10 and >= 20?
    assert met["adaptive"]["worst"] == 20 and met["window"]["worst"] == 21 and not met["goal_met"]
    ok = hq._class_summary([clip("fast", 30, 25, 29), clip("fast", 22, 21, 10)])
    assert ok["goal_met"] and ok["adaptive"]["median"] == 26
