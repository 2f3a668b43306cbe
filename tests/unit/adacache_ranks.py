"""Recorded metric residuals and one AdaCache run per process, for the two-process test of
test_adacache_forecast_and_ranks.py. A module of its own because spawned processes import the function they run
by module name, before anything registers the pack as ``freeaccel`` (tests/conftest.py does that in the parent)."""
import importlib.util
import pathlib
import sys

import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]
if "freeaccel" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("freeaccel", ROOT / "__init__.py",
                                                   submodule_search_locations=[str(ROOT)])
    sys.modules["freeaccel"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["freeaccel"])

from freeaccel.accel_core.adacache import AdaCacheRun, Codebook, MoReg, process_group_sum  # noqa: E402

STEPS, TOKENS, FRAMES = 12, 16, 4  # 4 tokens per latent frame; each process holds 2 whole frames


def recorded_metric_residuals():
    """One metric-block residual per step ([1, tokens, channels]): the first half of the tokens hardly changes, the
    second half changes fast, so the two halves alone would decide differently."""
    generator = torch.Generator().manual_seed(3)
    still = torch.randn(1, TOKENS // 2, 8, generator=generator)
    moving = torch.randn(1, TOKENS // 2, 8, generator=generator)
    return [torch.cat([still * (1 + 0.01 * step), moving * (1 + 0.3 * step)], dim=1) for step in range(STEPS)]


def decide(tokens, reduce_sums, moreg):
    """(computed, rate, distance) per step of a run over the recorded residuals restricted to ``tokens``."""
    run = AdaCacheRun(Codebook((0.05, 0.15, 1.0), (3, 2, 1)), STEPS, MoReg() if moreg else None,
                      reduce_sums=reduce_sums)
    frames = FRAMES * (tokens.stop - tokens.start) // TOKENS
    for step, residual in enumerate(recorded_metric_residuals()):
        if run.begin_step(step, True, 1.0 - step / STEPS):
            run.observe_metric("cond", residual[:, tokens], frames=frames)
        run.end_step()
    return [(r.computed, r.rate, r.distance) for r in run.records]


def half(rank):
    return slice(rank * TOKENS // 2, (rank + 1) * TOKENS // 2)


def run_rank(rank, init_file, results):
    """One process of two over gloo: decide on its half of the tokens, with and without MoReg."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        reduce_sums = process_group_sum()
        results[rank] = [decide(half(rank), reduce_sums, moreg) for moreg in (False, True)]
    finally:
        torch.distributed.destroy_process_group()
