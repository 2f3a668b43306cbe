"""Per-head pattern decisions: kept attention mass against hand-computed traces, the choice on heads built to attend
locally, temporally, within their frame or everywhere, the settings and the JSON pattern table."""
import pytest
import torch

from freeaccel.accel_core.head_patterns import (
    HeadPatternSettings, PatternTable, choose_patterns, decide_patterns, pattern_costs, pattern_masses, sampled_rows,
    statistics_fraction)
from freeaccel.kernels.head_sparse import DENSE, FRAME, PATTERNS, TEMPORAL, WINDOW, PatternShapes, pattern_mask_mod
from freeaccel.kernels.local_window import VideoLayout, window_mask_mod

# a 4 x 8 x 10 grid and 4 text tokens after it; the tiled boxes here, per axis (frames, rows, columns):
#   frame    (1, 8, 10): 80 keys     temporal tile (4, 2, 2), box (4, 4, 4): 64 keys
#   window   radii (1, 2, 2), tile (4, 2, 2), box (4, 6, 6): 144 keys
LAYOUT = VideoLayout(4, 8, 10)
TEXT = 4
SEQ_LEN = LAYOUT.video_len + TEXT
SHAPES = PatternShapes(window=(1, 2, 2), temporal=(1, 1), min_tile_queries=16)
ROWS = torch.arange(0, LAYOUT.video_len, 7)


def index_of(pattern):
    return PATTERNS.index(pattern)


def test_costs_order_on_the_test_grid():
    costs = pattern_costs(LAYOUT, SHAPES, SEQ_LEN)
    assert costs[TEMPORAL] < costs[FRAME] < costs[WINDOW] < costs[DENSE]


def test_uniform_attention_keeps_each_box_share():
    # q = 0: every query attends all 324 keys equally, so a pattern keeps (its box + the 4 text keys) / 324
    q = torch.zeros(1, 1, SEQ_LEN, 8)
    k = torch.randn(1, 1, SEQ_LEN, 8, generator=torch.Generator().manual_seed(0))
    masses = pattern_masses(q, k, LAYOUT, SHAPES, ROWS)[:, 0]
    expected = {DENSE: 1.0, FRAME: (80 + 4) / 324, WINDOW: (144 + 4) / 324, TEMPORAL: (64 + 4) / 324}
    for pattern, mass in expected.items():
        assert masses[index_of(pattern)].item() == pytest.approx(mass, abs=1e-6)


def test_key_mask_takes_part_in_the_softmax():
    # the text keys masked out: the frame keeps 80 of the 320 video keys
    q = torch.zeros(2, 1, SEQ_LEN, 8)
    k = torch.zeros(2, 1, SEQ_LEN, 8)
    key_mask = torch.ones(2, SEQ_LEN, dtype=torch.bool)
    key_mask[:, -TEXT:] = False
    masses = pattern_masses(q, k, LAYOUT, SHAPES, ROWS, key_mask=key_mask)[:, 0]
    assert masses[index_of(FRAME)].item() == pytest.approx(80 / 320, abs=1e-6)


def constructed_qk(allowed_per_head):
    """q, k [1, H, L, L] whose logits (scale 1) are 0 where allowed_per_head[h] [L, L] is True and -1e4 elsewhere:
    each query attends uniformly over its allowed keys (k is the identity)."""
    logits = torch.stack([torch.where(allowed, 0.0, -1e4) for allowed in allowed_per_head])[None]
    return logits, torch.eye(SEQ_LEN).expand(1, len(allowed_per_head), -1, -1)


def test_masses_of_constructed_heads_by_hand():
    idx = torch.arange(SEQ_LEN)
    own_frame = window_mask_mod(LAYOUT, (0, 7, 9))(0, 0, idx[:, None], idx[None, :])
    same_place = window_mask_mod(LAYOUT, (3, 0, 0))(0, 0, idx[:, None], idx[None, :])
    q, k = constructed_qk([own_frame, same_place])
    rows = torch.tensor([0, 85, 319])  # frame 0 (0, 0); frame 1 (0, 5); frame 3 (7, 9)
    masses = pattern_masses(q, k, LAYOUT, SHAPES, rows, scale=1.0)
    # head 0 attends its own frame's 80 keys and the 4 text keys uniformly
    assert masses[index_of(FRAME), 0].item() == pytest.approx(1.0, abs=1e-6)
    # temporal keeps the query's 4 x 4 box of those 80 (the box of its 2 x 2 tile grown by 1, slid inside the grid)
    assert masses[index_of(TEMPORAL), 0].item() == pytest.approx((16 + 4) / 84, abs=1e-6)
    # head 1 attends the 4 tokens at its own position, one per frame, and the 4 text keys
    assert masses[index_of(TEMPORAL), 1].item() == pytest.approx(1.0, abs=1e-6)
    assert masses[index_of(FRAME), 1].item() == pytest.approx((1 + 4) / 8, abs=1e-6)
    assert masses[index_of(WINDOW), 1].item() == pytest.approx(1.0, abs=1e-6)  # its box spans all 4 frames here


def test_masses_match_brute_force():
    q, k = torch.randn(2, 2, 3, SEQ_LEN, 16, generator=torch.Generator().manual_seed(3)).unbind(0)
    masses = pattern_masses(q, k, LAYOUT, SHAPES, ROWS)
    probs = (q[:, :, ROWS] @ k.transpose(-1, -2) / 4).softmax(-1)  # [B, H, rows, L], scale 16 ** -0.5
    idx = torch.arange(SEQ_LEN)
    for pattern in PATTERNS:
        mask_mod = pattern_mask_mod(pattern, LAYOUT, SHAPES, SEQ_LEN)
        keep = torch.ones(len(ROWS), SEQ_LEN) if mask_mod is None else mask_mod(0, 0, ROWS[:, None], idx[None, :])
        expected = (probs * keep).sum(-1).mean(dim=(0, 2))
        assert torch.allclose(masses[index_of(pattern)], expected, atol=1e-5)


def test_heads_get_their_pattern():
    idx = torch.arange(SEQ_LEN)
    near = window_mask_mod(LAYOUT, (1, 2, 2))(0, 0, idx[:, None], idx[None, :])  # +-1 frame, 5 x 5 tokens
    own_frame = window_mask_mod(LAYOUT, (0, 7, 9))(0, 0, idx[:, None], idx[None, :])
    same_place = window_mask_mod(LAYOUT, (3, 0, 0))(0, 0, idx[:, None], idx[None, :])
    everything = torch.ones(SEQ_LEN, SEQ_LEN, dtype=torch.bool)
    q, k = constructed_qk([near, own_frame, same_place, everything])
    settings = HeadPatternSettings(mass_threshold=0.9, window_frames=1, window_height=5, window_width=5,
                                   temporal_size=3, rows_per_frame=12)
    assert settings.shapes.window == SHAPES.window and settings.shapes.temporal == SHAPES.temporal
    masses = pattern_masses(q, k, LAYOUT, SHAPES, sampled_rows(LAYOUT, 12, SEQ_LEN), scale=1.0)
    costs = pattern_costs(LAYOUT, SHAPES, SEQ_LEN)
    assert choose_patterns(masses, costs, 0.9) == (WINDOW, FRAME, TEMPORAL, DENSE)
    # uniform attention: the window keeps 148 / 324 = 0.457, the frame 0.259, temporal 0.210
    assert choose_patterns(masses[:, 3:], costs, 0.45) == (WINDOW,)
    assert choose_patterns(masses[:, 3:], costs, 0.46) == (DENSE,)
    assert choose_patterns(masses[:, 3:], costs, 0.25) == (FRAME,)


def test_decisions_on_positional_heads():
    """Heads whose logits fall off with distance in time only, or in space only: within-frame and temporal."""
    f = torch.arange(LAYOUT.video_len) // 80
    y, x = torch.arange(LAYOUT.video_len) // 10 % 8, torch.arange(LAYOUT.video_len) % 10
    zero = torch.zeros(TEXT)

    def features(a, b, c):  # q.k = -6 * |a_q - a_k|^2 + (row constant), over the video tokens; text keys far off
        pos = torch.stack([a, b, c]).float()
        q = torch.cat([torch.cat([12 * pos, -6 * torch.ones(1, pos.shape[1])]), torch.zeros(4, TEXT)], dim=1)
        k = torch.cat([torch.cat([pos, (pos ** 2).sum(0, keepdim=True)]), torch.stack([zero] * 3 + [zero + 1e3])],
                      dim=1)
        return q.t(), k.t()

    q_frame, k_frame = features(f, 0 * f, 0 * f)
    q_place, k_place = features(0 * f, y, x)
    q = torch.stack([q_frame, q_place])[None]
    k = torch.stack([k_frame, k_place])[None]
    settings = HeadPatternSettings(window_frames=1, window_height=5, window_width=5, temporal_size=3)
    patterns, masses = decide_patterns(q, k, LAYOUT, settings, scale=1.0)
    assert patterns == (FRAME, TEMPORAL)
    assert masses[index_of(FRAME), 0] > 0.99 and masses[index_of(TEMPORAL), 1] > 0.99


def test_statistics_cost_a_few_percent_at_wan_shape():
    # 16 rows of each of 21 frames against 32 760 keys, head dim 128: about 0.5 % of the dense call
    fraction = statistics_fraction(VideoLayout(21, 30, 52), 16, 128)
    assert fraction == pytest.approx(336 * 131 / (2 * 32760 * 128))
    assert fraction < 0.01


def test_sampled_rows_are_even_per_frame():
    rows = sampled_rows(VideoLayout(2, 2, 4, offset=3), 4, seq_len=3 + 16 + 2)
    assert rows.tolist() == [3, 5, 7, 9, 11, 13, 15, 17]


def test_settings():
    settings = HeadPatternSettings()
    assert settings.error() is None
    assert (settings.mass_threshold, settings.dense_blocks, settings.start_percent) == (0.9, 1, 0.2)
    assert settings.shapes.window == (1, 7, 13) and settings.shapes.temporal == (1, 1)
    assert not settings.sparse_block(0) and settings.sparse_block(1)
    assert "mass_threshold must be above 0" in HeadPatternSettings(mass_threshold=0.0).error()
    assert "dense_blocks must be at least 0" in HeadPatternSettings(dense_blocks=-1).error()


def test_table_json_round_trip(tmp_path):
    table = PatternTable(SHAPES, 0.9)
    table.record(1, (WINDOW, FRAME, TEMPORAL, DENSE), grid=(4, 8, 10))
    table.record(3, (FRAME,) * 4)
    path = tmp_path / "patterns.json"
    table.save(path)
    loaded = PatternTable.load(path)
    assert loaded.shapes == SHAPES and loaded.mass_threshold == 0.9 and loaded.grid == (4, 8, 10)
    assert loaded.blocks == {1: (WINDOW, FRAME, TEMPORAL, DENSE), 3: (FRAME,) * 4}
    assert loaded.patterns(2) is None
    assert loaded.counts() == {DENSE: 1, FRAME: 5, WINDOW: 1, TEMPORAL: 1}
    assert path.stat().st_size < 1000


@pytest.mark.parametrize("text, message", [
    ("[1,", "is not JSON"),
    ('{"format": "something else"}', "is not a FreeAccel head pattern table"),
    ('{"format": "freeaccel head patterns", "version": 7}', "has version 7"),
    ('{"format": "freeaccel head patterns", "version": 1, "mass_threshold": 0.9, "window": [1, 2, 2], '
     '"temporal": [1, 1], "min_tile_queries": 16, "blocks": {"1": ["dense", "stripes"]}}', "unknown attention"),
    ('{"format": "freeaccel head patterns", "version": 1, "window": [1, 2, 2]}', "malformed"),
])
def test_table_load_errors(text, message):
    with pytest.raises(ValueError, match=message):
        PatternTable.from_json(text, source="p.json")


def test_threshold_one_keeps_every_head_dense_even_where_a_pattern_rounds_to_one():
    masses = torch.ones(len(PATTERNS), 3)  # every pattern "keeps everything"
    costs = pattern_costs(LAYOUT, SHAPES, SEQ_LEN)
    assert choose_patterns(masses, costs, 1.0) == (DENSE,) * 3
    assert choose_patterns(masses, costs, 0.999) == (TEMPORAL,) * 3  # the cheapest on this grid


def _run(table=None, **changes):
    from freeaccel.accel_core.head_patterns import AdaptiveRun
    settings = HeadPatternSettings(**dict(dict(dense_blocks=1, mass_threshold=0.8), **changes))
    return AdaptiveRun(settings, start_sigma=5.0, table=table), settings


def _measure(calls, patterns=(FRAME, WINDOW)):
    def measure():
        calls.append(1)
        return patterns, torch.zeros(len(PATTERNS), len(patterns))
    return measure


def test_adaptive_run_decides_in_the_first_step_at_start_and_reuses():
    from freeaccel.accel_core.head_patterns import DECIDE, SPARSE, WAIT
    run, _ = _run()
    calls = []
    assert run.begin_forward(9.0) == WAIT and run.begin_forward(9.0) == WAIT  # cond and uncond of one step
    assert run.begin_forward(5.0) == DECIDE
    assert run.patterns(0, 2, (4, 8, 10), _measure(calls)) is None  # a dense block: not measured
    assert run.patterns(1, 2, (4, 8, 10), _measure(calls)) == (FRAME, WINDOW) and len(calls) == 1
    assert run.patterns(1, 2, (4, 8, 10), _measure(calls)) == (FRAME, WINDOW) and len(calls) == 1
    assert run.begin_forward(2.0) == SPARSE and run.begin_forward(1.0) == SPARSE
    assert run.patterns(1, 2, (4, 8, 10), _measure(calls)) == (FRAME, WINDOW) and len(calls) == 1
    summary = run.summary()
    assert (summary["steps"], summary["dense_steps"], summary["decision_step"]) == (4, 1, 2)
    assert summary["counts"] == {DENSE: 0, FRAME: 1, WINDOW: 1, TEMPORAL: 0} and summary["heads"] == 2
    assert summary["dense_blocks"] == [0] and summary["measured_blocks"] == [1] and summary["source"] == "measured"
    assert run.table.grid == (4, 8, 10)


def test_adaptive_run_uses_a_matching_table_and_measures_nothing():
    _, settings = _run()
    table = PatternTable(settings.shapes, settings.mass_threshold, (4, 8, 10), {1: (TEMPORAL, DENSE)})
    run, _ = _run(table)
    calls = []
    run.begin_forward(1.0)
    assert run.patterns(1, 2, (4, 8, 10), _measure(calls)) == (TEMPORAL, DENSE) and not calls
    assert run.patterns(2, 2, (4, 8, 10), _measure(calls)) == (FRAME, WINDOW) and len(calls) == 1  # not in the file
    summary = run.summary()
    assert summary["source"] == "file" and summary["mismatch"] is None
    assert summary["patterns"] == {1: (TEMPORAL, DENSE), 2: (FRAME, WINDOW)}


@pytest.mark.parametrize("table_changes,grid,heads,reason", [
    ({"grid": (4, 8, 12)}, (4, 8, 10), 2, "measured on a 4 x 8 x 12 grid, this run has 4 x 8 x 10"),
    ({"mass_threshold": 0.9}, (4, 8, 10), 2, "mass_threshold 0.9"),
    ({}, (4, 8, 10), 3, "block 1 has 2 heads there, 3 in this model"),
])
def test_adaptive_run_measures_again_for_a_mismatched_table(table_changes, grid, heads, reason):
    _, settings = _run()
    spec = dict(shapes=settings.shapes, mass_threshold=settings.mass_threshold, grid=(4, 8, 10),
                blocks={1: (TEMPORAL, DENSE)})
    spec.update(table_changes)
    run, _ = _run(PatternTable(**spec))
    calls = []
    run.begin_forward(1.0)
    assert run.patterns(1, heads, grid, _measure(calls, (FRAME,) * heads)) == (FRAME,) * heads and len(calls) == 1
    assert reason in run.mismatch and run.summary()["source"] == "measured"


def test_temporal_prune_settings_carry_the_head_pattern_settings():
    from freeaccel.accel_core.temporal_prune import TemporalPruneSettings
    settings = TemporalPruneSettings(mode="adaptive", start_percent=0.3, mass_threshold=0.8, dense_blocks=2,
                                     window_frames=2, rows_per_frame=4)
    assert settings.error() is None
    assert settings.head_patterns == HeadPatternSettings(mass_threshold=0.8, dense_blocks=2, start_percent=0.3,
                                                         window_frames=2, rows_per_frame=4)
    assert TemporalPruneSettings(mass_threshold=0.4).error() == "mass_threshold must be at least 0.5, got 0.4"
    assert TemporalPruneSettings().mode == "identity"  # the F3 default stays
