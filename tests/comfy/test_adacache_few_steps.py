"""AdaCache on few-step runs (step-distilled models, 4-8 steps): a preset that reuses nothing there says so once per
run and the run equals the unpatched one."""
import logging

import torch

FEW_STEPS_LINE = "reuses no step; this run computes every step"


def _apply(comfy_rt, model, preset):
    settings = comfy_rt.pack_module("accel_core.adacache").AdaCacheSettings(preset=preset)
    return comfy_rt.pack_module("nodes.adacache").apply_adacache(model, settings)


def _few_step_lines(caplog):
    return [r.getMessage() for r in caplog.records if FEW_STEPS_LINE in r.getMessage()]


def test_four_step_run_with_a_preset_says_so_once_and_equals_the_unpatched_run(comfy_rt, tiny, caplog):
    case = tiny.build("wan21")
    reference = tiny.sample(case, steps=4, cfg=1.0)
    with caplog.at_level(logging.INFO):
        out = tiny.sample(case, model=_apply(comfy_rt, case.patcher, "fast_30"), steps=4, cfg=1.0)
    assert torch.equal(out, reference)
    assert _few_step_lines(caplog) == [
        "AdaCache: preset fast_30 scaled to 4 effective steps reuses no step; this run computes every step "
        "(a custom codebook reuses as written)"]


def test_a_run_long_enough_to_reuse_logs_no_few_step_line(comfy_rt, tiny, caplog):
    case = tiny.build("wan21")
    with caplog.at_level(logging.INFO):
        tiny.sample(case, model=_apply(comfy_rt, case.patcher, "fast_30"), steps=30)
    assert _few_step_lines(caplog) == []
