"""AdaCache on recorded tensors: linear forecasting of skipped residuals, and one decision across processes that
each hold part of the tokens (sequence parallelism), over torch.distributed's gloo backend on CPU."""
import pytest
import torch
import torch.multiprocessing

import adacache_ranks  # tests/unit is on sys.path (pytest's rootdir-relative import); spawned processes import it too
from freeaccel.accel_core.adacache import AdaCacheRun, Codebook, process_group_sum

EAGER = Codebook((100.0,), (3,))  # every distance reuses 3 steps


def _computed_step(run, step, sigma, residual, key="cond"):
    assert run.begin_step(step, True, sigma)
    run.store_residual(key, residual)
    run.end_step()


def test_linear_reuse_extrapolates_in_sigma_by_hand():
    run = AdaCacheRun(EAGER, 10, reuse="linear")
    _computed_step(run, 0, 1.0, torch.full((1, 2, 3), 1.0))
    run.begin_step(1, True, 0.8)
    assert torch.equal(run.cached_residual("cond", torch.zeros(1, 2, 3)), torch.full((1, 2, 3), 1.0))  # one only
    run.store_residual("cond", torch.tensor([[[2.0, 4.0, 0.0], [2.0, 2.0, 2.0]]]))
    run.end_step()
    run.begin_step(2, True, 0.5)
    # r1 + (r1 - r0) * (0.5 - 0.8) / (0.8 - 1.0) = r1 + 1.5 (r1 - r0)
    expected = torch.tensor([[[3.5, 8.5, -1.5], [3.5, 3.5, 3.5]]])
    torch.testing.assert_close(run.cached_residual("cond", torch.zeros(1, 2, 3)), expected, rtol=0, atol=1e-6)
    assert run.cached_residual("cond", torch.zeros(1, 2, 3, dtype=torch.float64)).dtype == torch.float64


def test_hold_reuse_keeps_the_last_residual_only():
    run = AdaCacheRun(EAGER, 10)
    _computed_step(run, 0, 1.0, torch.full((1, 2, 3), 1.0))
    _computed_step(run, 1, 0.8, torch.full((1, 2, 3), 2.0))
    run.begin_step(2, True, 0.5)
    assert torch.equal(run.cached_residual("cond", torch.zeros(1, 2, 3)), torch.full((1, 2, 3), 2.0))
    assert len(run.residuals["cond"]) == 1


def test_linear_reuse_falls_back_to_hold_without_sigmas():
    run = AdaCacheRun(EAGER, 10, reuse="linear")
    _computed_step(run, 0, None, torch.full((1, 1, 1), 1.0))
    _computed_step(run, 1, None, torch.full((1, 1, 1), 2.0))
    run.begin_step(2)
    assert run.cached_residual("cond", torch.zeros(1, 1, 1)).item() == 2.0


def test_single_process_has_no_reduction():
    assert process_group_sum() is None


# --- two processes over gloo ---------------------------------------------------------------------------------------


def _decisions(records):
    return [(computed, rate) for computed, rate, _ in records]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without torch.distributed")
def test_two_processes_holding_half_the_tokens_decide_alike(tmp_path):
    results = torch.multiprocessing.get_context("spawn").Manager().dict()
    torch.multiprocessing.spawn(adacache_ranks.run_rank, args=(str(tmp_path / "init"), results), nprocs=2)
    (plain_0, moreg_0), (plain_1, moreg_1) = results[0], results[1]
    alone = [adacache_ranks.decide(adacache_ranks.half(rank), None, False) for rank in (0, 1)]
    assert _decisions(alone[0]) != _decisions(alone[1])  # the halves alone would not agree
    assert plain_0 == plain_1 and moreg_0 == moreg_1  # with the reduction both processes decide alike
    # and exactly as one process holding every token (L1 sums over tokens add up; float64)
    whole = adacache_ranks.decide(slice(0, adacache_ranks.TOKENS), None, False)
    assert _decisions(plain_0) == _decisions(whole)
    distances = lambda records: [d for *_, d in records if d is not None]  # noqa: E731
    assert distances(plain_0) and distances(plain_0) == pytest.approx(distances(whole), rel=1e-9)
