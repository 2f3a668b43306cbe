import pytest
import torch

from freeaccel.accel_core.temporal_prune import (
    CALIBRATE, PRUNE, WAIT, CalibrationSchedule, TemporalPruneRun, TemporalPruneSettings, TemporalScores,
    cross_frame_mass, frame_ids, lowest_fraction, sample_queries)
from freeaccel.kernels.scoring import frame_pair_mass


def test_cross_frame_mass_is_row_sum_minus_diagonal():
    mass = torch.tensor([[0.7, 0.2, 0.1], [0.3, 0.5, 0.2], [0.0, 0.1, 0.6]])  # row 2: 0.3 went to text keys
    torch.testing.assert_close(cross_frame_mass(mass), torch.tensor([0.3, 0.5, 0.1]))


def test_scores_are_running_means_over_all_samples():
    scores = TemporalScores()
    scores.add(["a", "b"], torch.tensor([[0.1, 0.4], [0.3, 0.0]]))
    scores.add(["a", "b"], torch.tensor([[[0.2, 0.2]]]))
    scores.add(["c"], torch.tensor([0.9]))
    assert scores.aggregates() == pytest.approx({"a": 0.2, "b": 0.2, "c": 0.9})
    assert list(scores.aggregates()) == ["a", "b", "c"]  # first-seen order, used for tie breaking
    with pytest.raises(ValueError, match="2 value columns for 3 units"):
        scores.add(["a", "b", "c"], torch.zeros(4, 2))


def test_split_and_batched_samples_give_the_same_aggregate():
    values = torch.rand(4, 3, 5, generator=torch.Generator().manual_seed(0))
    batched, split = TemporalScores(), TemporalScores()
    batched.add([0, 1, 2, 3, 4], values)
    for part in values.split(2):
        split.add([0, 1, 2, 3, 4], part)
    assert batched.aggregates() == pytest.approx(split.aggregates(), abs=1e-15)


def test_lowest_fraction_hand_ranking():
    aggregates = {"u0": 0.50, "u1": 0.10, "u2": 0.30, "u3": 0.10, "u4": 0.90, "u5": 0.05, "u6": 0.70,
                  "u7": 0.20, "u8": 0.60, "u9": 0.40}
    assert lowest_fraction(aggregates, 0.0) == frozenset()
    assert lowest_fraction(aggregates, 0.1) == {"u5"}
    assert lowest_fraction(aggregates, 0.2) == {"u5", "u1"}           # u1 and u3 tie: the earlier unit wins
    assert lowest_fraction(aggregates, 0.3) == {"u5", "u1", "u3"}     # 0.3 * 10 must not floor to 2
    assert lowest_fraction(aggregates, 0.35) == {"u5", "u1", "u3"}
    assert lowest_fraction(aggregates, 0.5) == {"u5", "u1", "u3", "u7", "u2"}
    assert lowest_fraction(aggregates, 1.0) == set(aggregates)


def test_schedule_trace():
    schedule = CalibrationSchedule(start_sigma=9.0, calibration_steps=2)
    sigmas = [14.0, 14.0, 9.0, 9.0, 6.0, 4.0, 4.0, 1.0]  # repeated sigma = cond and uncond of one step
    assert [schedule.phase(s) for s in sigmas] == [WAIT, WAIT, CALIBRATE, CALIBRATE, CALIBRATE, PRUNE, PRUNE, PRUNE]


def test_run_freezes_the_pruned_set_at_the_first_prune_step():
    run = TemporalPruneRun(ratio=0.5, start_sigma=100.0, calibration_steps=1)
    assert run.begin_forward(10.0) == CALIBRATE
    run.scores.add(["a", "b", "c", "d"], torch.tensor([[0.4, 0.1, 0.3, 0.2]]))
    assert not run.is_pruned("b")  # nothing is pruned while calibrating
    assert run.begin_forward(5.0) == PRUNE
    assert run.pruned == {"b", "d"}
    assert run.is_pruned("b") and not run.is_pruned("a")
    run.scores.add(["a", "b", "c", "d"], torch.tensor([[0.0, 9.0, 9.0, 9.0]]))  # later scores change nothing
    run.begin_forward(1.0)
    assert run.pruned == {"b", "d"}
    summary = run.summary()
    assert summary["units"] == 4 and summary["calibrated_steps"] == 1 and summary["pruned"] == {"b", "d"}


def _error(**changes):
    return TemporalPruneSettings(**changes).error()


def test_settings_errors():
    assert TemporalPruneSettings().error() is None
    assert _error(ratio=0.0, mode="skip", start_percent=1.0, calibration_steps=1) is None
    assert _error(ratio=1.0, start_percent=0.0) is None
    assert _error(ratio=1.5) == "ratio must be between 0 and 1, got 1.5"
    assert _error(ratio=-0.1) == "ratio must be between 0 and 1, got -0.1"
    assert _error(mode="drop") == "mode must be one of identity, skip, adaptive, got 'drop'"
    assert _error(start_percent=-0.1) == "start_percent must be between 0 and 1, got -0.1"
    assert _error(start_percent=1.01) == "start_percent must be between 0 and 1, got 1.01"
    assert _error(calibration_steps=0) == "calibration_steps must be at least 1, got 0"


def test_frame_ids_layout():
    assert frame_ids(2, 3, 2, 1).tolist() == [-1, -1, 0, 0, 1, 1, 2, 2, -1]


def test_sample_queries_are_evenly_spaced_per_frame():
    ids = frame_ids(1, 2, 8, 2)  # positions 1..8 frame 0, 9..16 frame 1
    assert sample_queries(ids, 4).tolist() == [1, 3, 5, 7, 9, 11, 13, 15]
    assert sample_queries(ids, 100).tolist() == list(range(1, 17))


def test_aggregate_equals_dense_reference():
    """Per-head aggregate from the chunked kernel == explicit softmax over the full map, text keys included."""
    g = torch.Generator().manual_seed(0)
    frames, per_frame, text, heads = 3, 5, 4, 2
    ids = frame_ids(0, frames, per_frame, text)
    q, k = torch.randn(2, heads, len(ids), 16, generator=g), torch.randn(2, heads, len(ids), 16, generator=g)
    rows = sample_queries(ids, 3)
    scores = TemporalScores()
    mass = frame_pair_mass(q, k, ids, ids, frames, query_index=rows, chunk_size=4)
    scores.add([("layer", h) for h in range(heads)], cross_frame_mass(mass).transpose(1, 2))

    probs = (q @ k.transpose(-1, -2) * 16 ** -0.5).softmax(dim=-1)          # [B, H, L, L]
    other = (ids.view(-1, 1) != ids.view(1, -1)) & (ids.view(1, -1) >= 0)   # keys of another frame
    per_query = (probs * other).sum(dim=-1)[:, :, rows]                     # [B, H, n]
    for h in range(heads):
        assert scores.aggregates()[("layer", h)] == pytest.approx(per_query[:, h].mean().item(), abs=1e-5)
