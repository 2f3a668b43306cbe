"""AdaCache's audio modality (accel_core.adacache): its own distance and rate; a step is reused only while every
modality's rate allows it, so audio is never reused on a decision taken from the visual tokens alone."""
import pytest
import torch

from freeaccel.accel_core import adacache

CODEBOOK = adacache.parse_codebook("0.1:4,0.2:2,1.0:1")


def _run_two_steps(visual_change, audio_change):
    """A run whose second computed step sees the given relative changes (L1 of p_t - p_prev over L1 of p_prev)."""
    run = adacache.AdaCacheRun(CODEBOOK, 30)
    visual, audio = torch.ones(1, 8, 4), torch.ones(1, 2, 4)
    for step, scale in ((0, 0.0), (1, 1.0)):
        run.begin_step(step)
        run.observe_metric("cond", visual * (1 + visual_change * scale))
        run.observe_metric("cond", audio * (1 + audio_change * scale), modality=adacache.AUDIO)
        run.end_step()
    return run.records[-1]


def test_audio_change_bounds_the_rate():
    record = _run_two_steps(0.05, 0.5)  # visual alone would reuse 4 steps
    assert record.distance == pytest.approx(0.05)
    assert record.modality_distances == {adacache.AUDIO: pytest.approx(0.5)}
    assert (record.rate, record.limited_by) == (1, adacache.AUDIO)


def test_visual_change_bounds_the_rate_when_audio_is_steady():
    record = _run_two_steps(0.15, 0.01)
    assert (record.rate, record.limited_by) == (2, None)


def test_summary_says_how_often_audio_set_the_rate():
    run = adacache.AdaCacheRun(CODEBOOK, 30)
    for step in range(3):
        run.begin_step(step)
        run.observe_metric("cond", torch.ones(1, 8, 4))
        run.observe_metric("cond", torch.ones(1, 2, 4) * (1 + step), modality=adacache.AUDIO)
        run.end_step()
    assert run.summary() == "computed 3 of 3 steps (rates 1,1,1); audio distance set 2 rates"


def test_visual_only_runs_record_no_other_modality():
    run = adacache.AdaCacheRun(CODEBOOK, 30)
    for step in range(2):
        run.begin_step(step)
        run.observe_metric("cond", torch.ones(1, 8, 4) * (1 + 0.05 * step))
        run.end_step()
    assert run.records[-1].modality_distances == {} and run.records[-1].limited_by is None
    assert run.records[-1].rate == 4
