import math
import re

import pytest
import torch

from freeaccel.accel_core import token_prune as tp
from freeaccel.kernels.tokens import complement_index, gather_tokens


def _qk(batch=2, heads=3, tokens=37, dim=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, tokens, dim, generator=generator)
    k = torch.randn(batch, heads, tokens, dim, generator=generator)
    return q, k


def _dense_gwpr(q, k, iterations, rows=None):
    """Reference: the full softmax map, averaged over heads, power-iterated with float64 arithmetic."""
    probs = torch.softmax(q.double() @ k.double().transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1).mean(dim=1)
    if rows is not None:
        mask = torch.zeros(q.shape[2], dtype=torch.float64)
        mask[rows] = 1.0
        probs = probs * mask.view(1, -1, 1)
    scores = torch.full((q.shape[0], q.shape[2]), 1.0 / q.shape[2], dtype=torch.float64)
    for _ in range(iterations):
        scores = torch.einsum("brk,br->bk", probs, scores)
        scores = scores / scores.sum(dim=-1, keepdim=True)
    return scores


@pytest.mark.parametrize("iterations", [1, 2, 5])
def test_gwpr_equals_dense_power_iteration(iterations):
    q, k = _qk()
    scores = tp.gwpr_scores(q, k, iterations, chunk_size=8)  # chunking across row boundaries
    assert scores.dtype == torch.float32 and scores.shape == (2, 37)
    torch.testing.assert_close(scores.double(), _dense_gwpr(q, k, iterations), atol=1e-5, rtol=0)
    torch.testing.assert_close(scores.sum(dim=-1), torch.ones(2), atol=1e-6, rtol=0)


def test_gwpr_one_round_is_normalised_column_sum():
    q, k = _qk(tokens=20)
    probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), dim=-1).mean(dim=1)
    column = probs.sum(dim=1)
    torch.testing.assert_close(tp.gwpr_scores(q, k, 1), column / column.sum(-1, keepdim=True), atol=1e-6, rtol=0)


def test_gwpr_on_sampled_rows_matches_dense_on_those_rows():
    q, k = _qk(tokens=50)
    rows = tp.score_query_rows(50, 0.3, device=q.device)
    assert rows.numel() == 15 and bool((rows[1:] > rows[:-1]).all())
    scores = tp.gwpr_scores(q, k, 3, query_index=rows, chunk_size=4)
    torch.testing.assert_close(scores.double(), _dense_gwpr(q, k, 3, rows), atol=1e-5, rtol=0)


@pytest.mark.parametrize("tokens,fraction", [(100, 0.25), (4096, 0.0625), (10, 0.3), (7, 0.99), (3, 0.01)])
def test_score_query_rows_one_per_stride(tokens, fraction):
    rows = tp.score_query_rows(tokens, fraction, "cpu")
    count = max(1, round(fraction * tokens))
    assert rows.dtype == torch.long and rows.numel() == count
    assert [int(row) * count // tokens for row in rows] == list(range(count))  # row i lies in stride i


def test_score_query_rows_cover_the_columns_of_a_grid():
    rows = tp.score_query_rows(64 * 64, 0.0625, "cpu")
    assert tp.score_query_rows(64 * 64, 1.0, "cpu") is None
    assert len(set((rows % 64).tolist())) >= 48  # a plain stride of 16 would hit 4 columns only


@pytest.mark.parametrize("tokens,ratio,kept", [(10, 0.7, 3), (10, 0.3, 7), (4096, 0.5, 2048), (4096, 0.0, 4096),
                                               (7, 0.5, 4), (5, 0.95, 1), (1, 0.9, 1)])
def test_kept_count(tokens, ratio, kept):
    assert tp.kept_count(tokens, ratio) == kept


def test_keep_index_takes_top_scores_in_position_order():
    scores = torch.tensor([[0.1, 0.5, 0.2, 0.9, 0.05, 0.3], [0.6, 0.1, 0.2, 0.3, 0.4, 0.5]])
    index = tp.keep_index_for(scores, 0.5)
    assert index.tolist() == [[1, 3, 5], [0, 4, 5]]


def _brute_nearest(features, keep):
    unit = torch.nn.functional.normalize(features.double(), dim=-1)
    out = []
    for b in range(features.shape[0]):
        row = []
        for i in range(features.shape[1]):
            if i in keep[b].tolist():
                row.append(keep[b].tolist().index(i))
            else:
                sims = [float(unit[b, i] @ unit[b, j]) for j in keep[b].tolist()]
                row.append(max(range(len(sims)), key=lambda s: (sims[s], -s)))
        out.append(row)
    return out


def test_recovery_copies_exactly_the_nearest_kept_token():
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(2, 23, 6, generator=generator)
    keep = tp.keep_index_for(torch.rand(2, 23, generator=generator), 0.6)
    source = tp.recovery_source(features, keep, chunk_size=5)
    assert source.tolist() == _brute_nearest(features, keep)
    kept_out = torch.randn(2, keep.shape[1], 6, generator=generator)
    full = gather_tokens(kept_out, source)
    for b in range(2):
        for i in range(23):
            assert torch.equal(full[b, i], kept_out[b, source[b, i]])


def test_recovery_hand_computed():
    # token 1 points along token 0 (cosine 1), token 3 along token 2; kept = {0, 2}
    features = torch.tensor([[[1.0, 0.0], [3.0, 0.1], [0.0, 1.0], [-0.1, 2.0]]])
    keep = torch.tensor([[0, 2]])
    assert tp.recovery_source(features, keep).tolist() == [[0, 0, 1, 1]]


def test_gather_restore_round_trip():
    features = torch.randn(2, 11, 4)
    keep = tp.keep_index_for(torch.rand(2, 11), 0.4)
    kept = features[torch.arange(2).unsqueeze(1), keep]
    assert torch.equal(tp.recover_passthrough(features, keep, kept), features)
    changed = kept * 2
    restored = tp.recover_passthrough(features, keep, changed)
    assert torch.equal(restored[torch.arange(2).unsqueeze(1), keep], changed)
    pruned = complement_index(keep, 11)
    assert torch.equal(restored[torch.arange(2).unsqueeze(1), pruned], features[torch.arange(2).unsqueeze(1), pruned])
    source = tp.recovery_source(features, keep)
    assert torch.equal(gather_tokens(kept, source)[torch.arange(2).unsqueeze(1), keep], kept)


def test_full_keep_recovers_identity():
    features = torch.randn(1, 9, 3)
    keep = torch.arange(9).unsqueeze(0)
    assert torch.equal(gather_tokens(features, tp.recovery_source(features, keep)), features)


@pytest.mark.parametrize("text,levels", [("auto", None), (" AUTO ", None), ("1", (1,)), ("2, 1,2", (1, 2)),
                                         ("8,4", (4, 8))])
def test_parse_levels(text, levels):
    assert tp.parse_levels(text) == levels


@pytest.mark.parametrize("text,message", [("", "levels is empty"), (" , ", "levels is empty"),
                                          ("3", "'3' is not a downsample factor"), ("x", "'x' is not"),
                                          ("0", "'0' is not")])
def test_parse_levels_rejects(text, message):
    with pytest.raises(ValueError, match=message):
        tp.parse_levels(text)


# SD1.5 UNet: stages at input 1,2 (level 1) 4,5 (2) 7,8 (4); middle (8); output 3,4,5 (4) 6,7,8 (2) 9,10,11 (1)
SD15_STAGES = ([("input", 1)] * 2 + [("input", 2)] * 2 + [("input", 4)] * 2 + [("middle", 8)]
               + [("output", 4)] * 3 + [("output", 2)] * 3 + [("output", 1)] * 3)


def test_classify_stages_sd15():
    stages = tp.classify_stages(SD15_STAGES)
    protected = [i for i, stage in enumerate(stages) if stage.dsap_protected]
    # first of each down level: 0, 2, 4; last of each up level: 9, 12, 15
    assert protected == [0, 2, 4, 9, 12, 15]
    assert [stage.level for stage in stages] == [level for _, level in SD15_STAGES]


def test_classify_stages_sdxl():
    # SDXL: input 4,5 (level 2) 7,8 (level 4); middle (4); output 0,1,2 (4) 3,4,5 (2)
    stages = tp.classify_stages([("input", 2), ("input", 2), ("input", 4), ("input", 4), ("middle", 4),
                                 ("output", 4), ("output", 4), ("output", 4), ("output", 2), ("output", 2),
                                 ("output", 2)])
    assert [i for i, stage in enumerate(stages) if stage.dsap_protected] == [0, 2, 7, 10]


def test_stage_ratio_dsap_and_levels():
    protected, plain = tp.Stage(1, True), tp.Stage(1, False)
    settings = tp.PruneSettings(ratio=0.5, dsap=True, dsap_percent=0.3, levels="auto", min_tokens=1024)
    assert settings.stage_ratio(protected, 4096, dsap_early=True) == 0.0  # early: spared
    assert settings.stage_ratio(protected, 4096, dsap_early=False) == 0.5  # later, or no run schedule: prunes
    assert settings.stage_ratio(plain, 4096, dsap_early=True) == 0.5
    assert settings.stage_ratio(plain, 1023, dsap_early=False) == 0.0  # below min_tokens
    off = tp.PruneSettings(ratio=0.5, dsap=False)
    assert off.stage_ratio(protected, 4096, dsap_early=True) == 0.5
    chosen = tp.PruneSettings(ratio=0.3, dsap=False, levels="2")
    assert chosen.stage_ratio(tp.Stage(2, False), 16, False) == 0.3
    assert chosen.stage_ratio(tp.Stage(1, False), 1 << 20, False) == 0.0


@pytest.mark.parametrize("kwargs,message", [
    ({"ratio": -0.1}, r"ratio must be within \[0, 0.95\]"), ({"ratio": 0.96}, r"ratio must be within"),
    ({"ratio": 0.5, "dsap_percent": 1.5}, r"dsap_percent must be within \[0, 1\]"),
    ({"ratio": 0.5, "dsap_percent": -0.01}, "dsap_percent"), ({"ratio": 0.5, "levels": " , "}, "levels is empty"),
    ({"levels": "1,3"}, "'3' is not a downsample factor"),
    ({"ratio": 0.5, "iterations": 0}, "iterations"), ({"ratio": 0.5, "score_queries": 0.0}, "score_queries"),
    ({"ratio": 0.5, "recovery": "mean"}, "recovery must be one of")])
def test_settings_validation(kwargs, message):
    assert re.search(message, tp.PruneSettings(**kwargs).error())


def test_settings_boundaries_accepted():
    assert tp.PruneSettings().error() is None  # the defaults (the node's) are valid
    assert tp.PruneSettings(ratio=0.0, dsap_percent=0.0).error() is None
    assert tp.PruneSettings(ratio=0.95, dsap_percent=1.0, levels="1").error() is None


def test_settings_levels_text():
    assert tp.PruneSettings(levels=" AUTO ").level_factors is None
    assert tp.PruneSettings(levels="8,4").level_factors == (4, 8)


def test_recover_residual_hand_computed():
    # kept = {0, 2}; token 1 is most similar to token 0, token 3 to token 2
    features = torch.tensor([[[1.0, 0.0], [3.0, 0.1], [0.0, 1.0], [-0.1, 2.0]]])
    keep = torch.tensor([[0, 2]])
    source = tp.recovery_source(features, keep)
    kept_out = torch.tensor([[[1.5, 1.0], [0.25, 3.0]]])  # updates: (0.5, 1.0) and (0.25, 2.0)
    full = tp.recover_residual(features, keep, kept_out, source)
    expected = torch.tensor([[[1.5, 1.0], [3.5, 1.1], [0.25, 3.0], [0.15, 4.0]]])
    torch.testing.assert_close(full, expected, atol=1e-6, rtol=0)
    assert torch.equal(full[:, [0, 2]], kept_out)  # kept tokens are their range output exactly


def test_recover_residual_is_passthrough_for_an_unchanged_range():
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(2, 13, 5, generator=generator)
    keep = tp.keep_index_for(torch.rand(2, 13, generator=generator), 0.5)
    kept = features[torch.arange(2).unsqueeze(1), keep]
    source = tp.recovery_source(features, keep)
    assert torch.equal(tp.recover_residual(features, keep, kept, source), features)


def _hand_plan(merge):
    # kept = {0, 2}; token 1 is most similar to token 0, token 3 to token 2 (as in test_recover_residual_hand_computed)
    features = torch.tensor([[[1.0, 0.0], [3.0, 0.1], [0.0, 1.0], [-0.1, 2.0]]])
    keep = torch.tensor([[0, 2]])
    return features, tp.TokenPlan(keep, tp.recovery_source(features, keep), 4, merge=merge)


def test_group_mean_hand_computed():
    values = torch.tensor([[[1.0], [3.0], [10.0], [2.0], [4.0]]], dtype=torch.bfloat16)
    means = tp.group_mean(values, torch.tensor([[0, 0, 1, 0, 1]]), 2)
    assert means.dtype == torch.bfloat16 and means.float().tolist() == [[[2.0], [7.0]]]
    heads = torch.arange(12.0).view(1, 3, 2, 2)  # [B, N, H, D]: the query layout the attention handler merges
    assert torch.equal(tp.group_mean(heads, torch.tensor([[1, 0, 1]]), 2)[0, 1], (heads[0, 0] + heads[0, 2]) / 2)


def test_merged_plan_hand_computed():
    features, plan = _hand_plan(merge=True)
    rows = plan.reduce(features)
    torch.testing.assert_close(rows, torch.tensor([[[2.0, 0.05], [-0.05, 1.5]]]), atol=1e-6, rtol=0)
    kept_out = rows + torch.tensor([[[0.5, 1.0], [0.25, 2.0]]])  # the groups' updates
    expected = torch.tensor([[[1.5, 1.0], [3.5, 1.1], [0.25, 3.0], [0.15, 4.0]]])
    torch.testing.assert_close(plan.restore(kept_out), expected, atol=1e-6, rtol=0)
    assert torch.equal(plan.spread(torch.tensor([[[7.0], [9.0]]])), torch.tensor([[[7.0], [7.0], [9.0], [9.0]]]))


def test_pruned_plan_hand_computed():
    features, plan = _hand_plan(merge=False)
    assert torch.equal(plan.reduce(features), features[:, [0, 2]])
    kept_out = torch.tensor([[[1.5, 1.0], [0.25, 3.0]]])
    torch.testing.assert_close(plan.restore(kept_out), tp.recover_residual(features, plan.keep_index, kept_out,
                                                                           plan.source), atol=0, rtol=0)
    passthrough = tp.TokenPlan(plan.keep_index, None, 4, merge=True)  # no source: nothing to merge into
    assert not passthrough.merge
    assert torch.equal(passthrough.spread(torch.tensor([[[7.0], [9.0]]])),
                       torch.tensor([[[7.0], [0.0], [9.0], [0.0]]]))
    passthrough.reduce(features)
    assert torch.equal(passthrough.restore(kept_out), torch.tensor([[[1.5, 1.0], [3.0, 0.1], [0.25, 3.0],
                                                                      [-0.1, 2.0]]]))


def test_merged_plan_with_singleton_groups_is_the_identity_for_an_unchanged_range():
    generator = torch.Generator().manual_seed(2)
    features = torch.randn(2, 9, 4, generator=generator)
    keep = torch.arange(9).expand(2, 9)
    plan = tp.TokenPlan(keep, tp.recovery_source(features, keep), 9, merge=True)
    rows = plan.reduce(features)
    assert torch.equal(rows, features)
    assert torch.equal(plan.restore(rows), features)


@pytest.mark.parametrize("recovery,merge,windowed", [("merge", True, False), ("local merge", True, True),
                                                     ("similarity", False, False), ("local", False, True),
                                                     ("passthrough", False, False)])
def test_plan_tokens_follows_the_recovery_mode(recovery, merge, windowed):
    q, k = _qk(tokens=16)
    features = torch.randn(2, 16, 5, generator=torch.Generator().manual_seed(5))
    settings = tp.PruneSettings(recovery=recovery)
    windows = tp.recovery_windows(settings, 4, 4, 0.5, "cpu")
    assert (windows is not None) == windowed
    plan = tp.plan_tokens(q, k, features, settings, 0.5, windows)
    assert plan.merge == merge and (plan.source is None) == (recovery == "passthrough")
    assert torch.equal(plan.keep_index, tp.keep_index_for(tp.gwpr_scores(
        q, k, 1, query_index=tp.score_query_rows(16, settings.score_queries, "cpu")), 0.5, windows))
    if plan.source is not None:
        assert torch.equal(plan.source, tp.recovery_source(features, plan.keep_index, windows))


@pytest.mark.parametrize("start,end,expected", [(-1, -1, (1, 3)), (0, -1, (0, 3)), (-1, 1, (1, 1)), (2, 2, (2, 2)),
                                                (0, 3, (0, 3))])
def test_resolve_block_range(start, end, expected):
    assert tp.resolve_block_range(start, end, (1, 3), 4, "blocks") == expected


@pytest.mark.parametrize("start,end", [(0, 4), (3, 1), (-1, 0), (5, -1)])
def test_resolve_block_range_rejects(start, end):
    with pytest.raises(ValueError, match=r"block range \d+\.\.\d+ does not fit this model's 4 blocks "
                                         r"\(indices 0\.\.3; block_start must not exceed block_end\)"):
        tp.resolve_block_range(start, end, (1, 3), 4, "blocks")


@pytest.mark.parametrize("start,end,message", [(-2, -1, "block_start and block_end must be block indices or -1"),
                                               (0, -3, "must be block indices or -1"),
                                               (3, 2, r"block_end \(2\) must not be below block_start \(3\)")])
def test_settings_block_range_validation(start, end, message):
    assert re.search(message, tp.PruneSettings(ratio=0.5, block_start=start, block_end=end).error())
    assert tp.PruneSettings(ratio=0.5, block_start=3, block_end=-1).error() is None


@pytest.mark.parametrize("height,width,ratio,window", [(4, 6, 0.5, (2, 2)), (4, 6, 0.75, (2, 2)),
                                                       (4, 6, 0.8, (4, 4)), (5, 5, 0.5, (2, 2)),
                                                       (5, 5, 0.7, (4, 4)), (1, 10, 0.5, (1, 4)),
                                                       (64, 64, 0.95, (8, 8))])
def test_local_windows_fit_the_kept_count(height, width, ratio, window):
    windows = tp.local_windows(height, width, ratio, "cpu")
    rows, cols = -(-height // window[0]), -(-width // window[1])
    assert windows.shape == (rows * cols, window[0] * window[1])
    assert windows.shape[0] <= tp.kept_count(height * width, ratio)
    real = windows[windows >= 0]
    assert sorted(real.tolist()) == list(range(height * width))  # every token in exactly one window


def test_local_windows_layout():
    # 3 x 5 grid, 2 x 2 windows: partial windows at the bottom and right are padded with -1
    assert tp.local_windows(3, 5, 0.5, "cpu").tolist() == [
        [0, 1, 5, 6], [2, 3, 7, 8], [4, -1, 9, -1], [10, 11, -1, -1], [12, 13, -1, -1], [14, -1, -1, -1]]


def test_local_keep_index_keeps_every_window_best_then_global_best():
    # 2 x 4 grid, windows {0,1,4,5} and {2,3,6,7}; ratio 0.5 keeps 4: both window bests, then the next two best
    scores = torch.tensor([[0.9, 0.8, 0.01, 0.02, 0.7, 0.6, 0.03, 0.0]])
    windows = tp.local_windows(2, 4, 0.5, "cpu")
    assert tp.keep_index_for(scores, 0.5, windows).tolist() == [[0, 1, 4, 6]]
    assert tp.keep_index_for(scores, 0.5).tolist() == [[0, 1, 4, 5]]  # global top-4 leaves window 2 empty


def _brute_window_source(features, keep, windows):
    unit = torch.nn.functional.normalize(features.double(), dim=-1)
    out = []
    for b in range(features.shape[0]):
        kept = keep[b].tolist()
        row = [None] * features.shape[1]
        for members in windows.tolist():
            members = [m for m in members if m >= 0]
            candidates = [m for m in members if m in kept]
            for i in members:
                if i in kept:
                    row[i] = kept.index(i)
                else:
                    best = max(candidates, key=lambda j: (float(unit[b, i] @ unit[b, j]), -j))
                    row[i] = kept.index(best)
        out.append(row)
    return out


@pytest.mark.parametrize("height,width,ratio", [(6, 7, 0.5), (5, 5, 0.7), (8, 8, 0.75), (1, 13, 0.5)])
def test_window_recovery_copies_the_most_similar_kept_token_of_its_window(height, width, ratio):
    generator = torch.Generator().manual_seed(11)
    features = torch.randn(2, height * width, 5, generator=generator)
    windows = tp.local_windows(height, width, ratio, "cpu")
    keep = tp.keep_index_for(torch.rand(2, height * width, generator=generator), ratio, windows)
    assert keep.shape[1] == tp.kept_count(height * width, ratio)
    source = tp.recovery_source(features, keep, windows)
    assert source.tolist() == _brute_window_source(features, keep, windows)


def test_window_recovery_hand_computed():
    # 2 x 2 grid, one window; kept = {0, 3}; token 1 points along token 3, token 2 along token 0
    features = torch.tensor([[[1.0, 0.0], [0.1, 2.0], [3.0, 0.2], [0.0, 1.0]]])
    windows = tp.local_windows(2, 2, 0.5, "cpu")
    assert tp.recovery_source(features, torch.tensor([[0, 3]]), windows).tolist() == [[0, 1, 0, 1]]
