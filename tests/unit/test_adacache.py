"""AdaCache decisions on recorded residuals, checked against hand-computed traces (no ComfyUI)."""
import pytest
import torch

from freeaccel.accel_core.adacache import (
    AdaCacheRun, AdaCacheSettings, Codebook, Decisions, MoReg, PRESETS, effective_steps, motion_terms,
    parse_codebook, percent_of_sigma, resolve_codebook, scale_codebook)

CODEBOOK = "0.1:3,0.3:2,1.0:1"


def _run(run, step, residual, key="cond", frames=1, allowed=True):
    """One step of a run as the host drives it; returns the step record."""
    computing = run.begin_step(step, allowed)
    if computing:
        run.observe_metric(key, residual, frames)
    return run.end_step()


# --- codebook ----------------------------------------------------------------------------------------------------

def test_parse_and_lookup():
    book = parse_codebook(" 0.08:6, 0.16:5 ,1.00:1")
    assert book == Codebook((0.08, 0.16, 1.0), (6, 5, 1))
    assert [book.rate_for(c) for c in (0.0, 0.0799, 0.08, 0.159, 0.5, 1.0, 7.0)] == [6, 6, 5, 5, 1, 1, 1]
    assert str(book) == "0.08:6,0.16:5,1:1"


@pytest.mark.parametrize("text, message", [
    ("", "codebook is empty"),
    ("0.1-3", "is not threshold:rate"),
    ("abc:3", "threshold 'abc' is not a number"),
    ("0.1:2.5", "rate '2.5' is not a whole number"),
    ("0.1:0", "rate must be at least 1"),
    ("-0.1:2", "threshold must be a positive number"),
    ("0.2:3,0.1:2", "strictly ascending: 0.1 follows 0.2"),
    ("0.2:3,0.2:2", "strictly ascending"),
])
def test_parse_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_codebook(text)


def test_presets_are_the_official_tables():
    assert resolve_codebook("fast_30", "", 30) == Codebook((0.08, 0.16, 0.24, 0.32, 0.40, 1.0), (6, 5, 4, 3, 2, 1))
    assert resolve_codebook("slow_30", "", 30) == Codebook((0.08, 0.16, 0.24, 0.32, 0.40, 1.0), (3, 2, 1, 1, 1, 1))
    assert resolve_codebook("fast_100", "", 100) == Codebook((0.03, 0.05, 0.07, 0.09, 0.11, 1.0),
                                                              (12, 10, 8, 6, 4, 3))
    assert set(PRESETS) == {"fast_30", "medium_30", "slow_30", "fast_100"}


def test_scaling_by_step_count():
    fast = resolve_codebook("fast_30", "", 30)
    doubled = scale_codebook(fast, 30, 60)  # twice the steps: half the per-step change, twice the reuse
    assert doubled.thresholds == pytest.approx((0.04, 0.08, 0.12, 0.16, 0.20, 0.5))
    assert doubled.rates == (12, 10, 8, 6, 4, 2)
    twelve = resolve_codebook("fast_30", "", 12)  # factor 0.4: 6*.4=2.4->2, 5*.4=2, 4*.4=1.6->2, 1.2->1, .8->1, .4->1
    assert twelve.thresholds == pytest.approx((0.2, 0.4, 0.6, 0.8, 1.0, 2.5))
    assert twelve.rates == (2, 2, 2, 1, 1, 1)
    assert resolve_codebook("custom", "0.5:4", 7) == Codebook((0.5,), (4,))  # custom: as written


def _error(**changes):
    return AdaCacheSettings(**changes).error()


def test_settings_errors():
    assert AdaCacheSettings().error() is None
    assert _error(preset="custom", custom_codebook="0.1:2,1.0:1", start_percent=0.1, end_percent=0.9) is None
    assert "custom_codebook: codebook thresholds must be strictly ascending" in _error(
        preset="custom", custom_codebook="0.3:2,0.1:1")
    assert "rate must be at least 1" in _error(preset="custom", custom_codebook="0.3:0")
    assert _error(start_percent=0.5, end_percent=0.5) == "start_percent (0.5) must be smaller than end_percent (0.5)"
    assert "must lie in [0, 1]" in _error(start_percent=-0.1)
    assert "unknown preset 'turbo'" in _error(preset="turbo")
    assert "moreg_normaliser must be positive" in _error(moreg_normaliser=0.0)
    assert "moreg_exponent must be positive" in _error(moreg_exponent=-1.0)
    assert "metric_block must be -1" in _error(metric_block=-2)
    # the preset's own table is used, so a malformed custom string does not matter then
    assert _error(preset="slow_30", custom_codebook="garbage") is None


def test_settings_give_moreg_only_when_on():
    assert AdaCacheSettings().moreg_config() is None
    assert AdaCacheSettings(moreg=True, moreg_normaliser=0.5, moreg_exponent=4.0,
                            moreg_reference="fixed").moreg_config() == MoReg(0.5, 4.0)


def test_effective_steps_from_schedule_coverage():
    flow = lambda p: 1.0 - p  # noqa: E731  (sigma falls linearly with progress, like an unshifted flow model)
    assert percent_of_sigma(flow, 0.25) == pytest.approx(0.75, abs=1e-9)
    full = [1.0 - i / 20 for i in range(21)]
    assert effective_steps(flow, full) == 20
    assert effective_steps(flow, full[:11]) == 20   # high-noise half of a 20-step schedule: 10 steps, half the range
    assert effective_steps(flow, full[10:]) == 20   # low-noise half
    assert effective_steps(flow, full[5:]) == 20    # KSamplerAdvanced start_at_step 5


# --- decision traces ----------------------------------------------------------------------------------------------

def test_trace_without_moreg():
    """p_t = v_t * ones(1, 4, 2): Σ|p_t - p_prev| / Σ|p_prev| = |v_t - v_prev| / v_prev, divided by k.

    step 0: no previous                                   -> rate 1 (forced)
    step 1: |1.4-1.0|/1.0 = 0.4, k=1, c=0.4               -> >= 0.3 -> rate 1
    step 2: |1.5-1.4|/1.4 = 0.0714286, k=1                -> < 0.1 -> rate 3 (next 5)
    step 3, 4: skipped
    step 5: |1.8-1.5|/1.5 = 0.2, k=3, c=0.0666667         -> rate 3 (next 8)
    step 6, 7: skipped
    step 8 (forced, last two): |2.7-1.8|/1.8 = 0.5, k=3, c=0.1666667 -> rate 2
    step 9 (forced): |3.0-2.7|/2.7 = 0.1111111, k=1       -> rate 2
    """
    values = {0: 1.0, 1: 1.4, 2: 1.5, 5: 1.8, 8: 2.7, 9: 3.0}
    run = AdaCacheRun(parse_codebook(CODEBOOK), steps=10)
    records = [_run(run, step, torch.full((1, 4, 2), values.get(step, 99.0))) for step in range(10)]
    assert [r.computed for r in records] == [True, True, True, False, False, True, False, False, True, True]
    distances = [r.distance for r in records if r.computed]
    assert distances[0] is None
    assert distances[1:] == pytest.approx([0.4, 0.0714286, 0.0666667, 0.1666667, 0.1111111], rel=1e-5)
    assert [r.rate for r in records if r.computed] == [1, 1, 3, 3, 2, 2]
    assert run.summary() == "computed 6 of 10 steps (rates 1,1,3,3,2,2)"


def test_trace_with_moreg():
    """MoReg with normaliser 0.5 and exponent 2 (factor = 4 m^2), gradient scale 10, window steps 1..9 of 10.

    p = [a, a, b, b] over 2 frames of 2 tokens: m = |b - a| / (|a| + |b|); c = rel / k * (m' + |10 (m' - m'_prev) / k|).
    step 0 [1,1,1,1]: no previous -> rate 1, m'_prev stays 1
    step 1 [1,1,1.2,1.2]: rel 0.4/4 = 0.1; m = 0.2/2.2, m' = 0.0330579; grad = 10(0.0330579-1) = -9.669421
                          c = 0.1 * 9.702479 = 0.9702479 -> rate 1 (without MoReg 0.1 would give rate 2)
    step 2 [1,1,1.3,1.3]: rel 0.2/4.4 = 0.0454545; m = 0.3/2.3, m' = 0.0680529; grad = 0.3499502
                          c = 0.0454545 * 0.4180031 = 0.0190001 -> rate 3 (next 5)
    step 5 [1,1,2,2]:     rel 1.4/4.6 / 3 = 0.1014493; m = 1/3, m' = 0.4444444; grad = 10(0.4444444-0.0680529)/3
                          = 1.2546383; c = 0.1014493 * 1.6990827 = 0.1723708 -> rate 2 (next 7)
    step 7 [1,1,2,2]:     rel 0 -> c = 0 -> rate 3; m' = 0.4444444
    step 8 [2,2,2,2]:     forced; rel 2/6 = 0.3333333; m = 0, m' = 0; grad = -4.4444444; c = 1.4814815 -> rate 1
    step 9 [2,2,2,2]:     forced; rel 0 -> c = 0 -> rate 3
    """
    pattern = {0: (1, 1), 1: (1, 1.2), 2: (1, 1.3), 5: (1, 2), 7: (1, 2), 8: (2, 2), 9: (2, 2)}

    def residual(step):
        a, b = pattern.get(step, (50.0, -50.0))
        return torch.tensor([a, a, b, b], dtype=torch.float32).reshape(1, 4, 1)

    run = AdaCacheRun(parse_codebook(CODEBOOK), steps=10, moreg=MoReg(normaliser=0.5, exponent=2.0))
    records = [_run(run, step, residual(step), frames=2) for step in range(10)]
    assert [r.step for r in records if r.computed] == [0, 1, 2, 5, 7, 8, 9]
    distances = [r.distance for r in records if r.computed]
    assert distances[0] is None
    assert distances[1:] == pytest.approx([0.9702479, 0.0190001, 0.1723708, 0.0, 1.4814815, 0.0], rel=1e-5, abs=1e-9)
    assert [r.rate for r in records if r.computed] == [1, 1, 3, 2, 3, 1, 3]
    assert [r.motion for r in records if r.computed] == pytest.approx([0.0, 1 / 11, 0.3 / 2.3, 1 / 3, 1 / 3, 0, 0])


def test_moreg_window_outside_uses_factor_one():
    run = AdaCacheRun(parse_codebook(CODEBOOK), steps=100, moreg=MoReg())
    # step 0 and 1 at 100 steps: step 1 is outside round(0.1*100)=10..90, so m' = 1 and the gradient is 0
    _run(run, 0, torch.tensor([1.0, 1.0, 3.0, 3.0]).reshape(1, 4, 1), frames=2)
    record = _run(run, 1, torch.tensor([1.0, 1.0, 3.3, 3.3]).reshape(1, 4, 1), frames=2)
    assert record.distance == pytest.approx(0.6 / 8)


def test_chunks_add_up_like_one_batch():
    """Cond and uncond reported separately (in either order) or sliced from one batch give the same distance."""
    def drive(order, batched):
        run = AdaCacheRun(parse_codebook(CODEBOOK), steps=10, key_order={"uncond": (1, 0), "cond": (0, 1)}.get)
        out = []
        for step, scale in enumerate((1.0, 1.3)):
            run.begin_step(step)
            tensors = {"cond": torch.full((1, 3, 2), scale), "uncond": torch.full((1, 3, 2), 2 * scale ** 2)}
            if batched:
                both = torch.cat([tensors[k] for k in order])
                for i, key in enumerate(order):
                    run.observe_metric(key, both[i:i + 1])
            else:
                for key in order:
                    run.observe_metric(key, tensors[key])
            out.append(run.end_step())
        return out[-1].distance

    # Σ|Δ| = 6*0.3 + 6*2*(1.69-1) = 10.08; Σ|prev| = 6 + 12 = 18 -> 0.56
    results = {drive(order, batched) for order in (("cond", "uncond"), ("uncond", "cond")) for batched in (0, 1)}
    assert len(results) == 1 and results.pop() == pytest.approx(0.56)


def test_repeated_evaluation_keeps_decision_and_history():
    run = AdaCacheRun(parse_codebook(CODEBOOK), steps=10)
    _run(run, 0, torch.ones(1, 2, 2))
    first = _run(run, 1, torch.full((1, 2, 2), 1.05))
    assert first.rate == 3
    # a second evaluation of step 1 (e.g. Heun) computes again but does not move the history or the schedule
    assert run.begin_step(1) is True
    run.observe_metric("cond", torch.full((1, 2, 2), 9.0))
    assert run.end_step() is None
    assert run.begin_step(2) is False
    run.end_step()
    assert run.begin_step(4) is True
    run.observe_metric("cond", torch.full((1, 2, 2), 1.05 * 1.03))
    assert run.end_step().distance == pytest.approx(0.03 / 3, rel=1e-5)


def test_steps_outside_start_end_are_computed():
    run = AdaCacheRun(parse_codebook("10.0:5"), steps=10)
    records = [_run(run, step, torch.ones(1, 2, 2), allowed=3 <= step <= 6) for step in range(10)]
    # rate 5 from step 1 on: step 2 computes (not allowed), step 3 is the first allowed step after a compute at 2
    assert [r.computed for r in records] == [True, True, True, False, False, False, False, True, True, True]


def test_metadata_change_resets_state():
    run = AdaCacheRun(parse_codebook("10.0:5"), steps=20)
    _run(run, 0, torch.ones(1, 4, 2))
    run.check_metadata(torch.ones(2, 4, 8))
    run.store_residual("cond", torch.ones(1, 4, 8))
    assert run.cached_residual("cond", torch.zeros(1, 4, 8)) is not None
    _run(run, 1, torch.ones(1, 4, 2))
    assert run.begin_step(2) is False
    assert run.check_metadata(torch.ones(2, 6, 8)) is False  # another resolution
    assert run.computing and run.residuals == {} and run.previous_metric == {}
    run.observe_metric("cond", torch.ones(1, 6, 8))
    assert run.end_step().rate == 1  # history restarts: the next step computes for a new distance
    assert run.begin_step(3) is True
    assert "state reset 1x" in run.summary()


def test_cached_residual_shape_and_offload():
    run = AdaCacheRun(parse_codebook(CODEBOOK), steps=10, storage_device=torch.device("cpu"))
    run.store_residual("a", torch.ones(1, 3, 2, dtype=torch.float64))
    assert run.cached_residual("a", torch.zeros(1, 3, 2)).dtype == torch.float32
    assert run.cached_residual("a", torch.zeros(1, 4, 2)) is None
    assert run.cached_residual("b", torch.zeros(1, 3, 2)) is None
    run.release()
    assert run.residuals == {}


def test_motion_terms():
    p = torch.tensor([1.0, -1.0, 2.0, 0.0, 4.0, 4.0]).reshape(1, 6, 1)  # 3 frames of 2 tokens
    diff, norm = motion_terms(p, 3)
    # later = [2,0,4,4], earlier = [1,-1,2,0]: Σ|later-earlier| = 1+1+2+4 = 8; Σ|later| + Σ|earlier| = 10 + 4
    assert (diff, norm) == (8.0, 14.0)
    with pytest.raises(ValueError, match="at least 2 frames"):
        motion_terms(p, 1)
    with pytest.raises(ValueError, match="6 image tokens do not split into 4 latent frames"):
        motion_terms(p, 4)


def test_settings_check_the_moreg_reference():
    assert AdaCacheSettings(moreg=True).moreg_config().reference == "run_minimum"
    assert AdaCacheSettings(moreg=True, moreg_reference="fixed").moreg_config() == MoReg(reference="fixed")
    assert "moreg_reference must be one of fixed, run_minimum (got 'median')" in AdaCacheSettings(
        moreg_reference="median").error()

def test_moreg_run_minimum_reference_hand_trace():
    """reference = run_minimum: m' = (m / smallest m so far)^e, so falling motion leaves c alone and rising motion
    raises it; gradient = 10 (m' - m'_prev) / k as with the fixed reference."""
    decisions = Decisions(parse_codebook(CODEBOOK), steps=10, moreg=MoReg(exponent=2.0, reference="run_minimum"))
    trace = [(0, None, 0.5), (1, 0.05, 0.4), (2, 0.05, 0.2), (3, 0.05, 0.3), (5, 0.1, 0.3)]
    records = [decisions.update(step, change, motion) for step, change, motion in trace]
    # step 1 (window is steps 1..9): floor 0.4 = m -> m' 1, gradient 0 -> c 0.05
    # step 2: floor 0.2 = m -> c 0.05; step 3: m' = (0.3/0.2)^2 = 2.25, gradient 10 * 1.25 -> c 0.05 * 14.75
    # step 5 (k = 2): m' 2.25 again, gradient 0 -> c = 0.1 / 2 * 2.25
    assert [r.distance for r in records] == pytest.approx([None, 0.05, 0.05, 0.7375, 0.1125])
    assert [r.rate for r in records] == [1, 3, 3, 1, 2]
    assert decisions.motion_floor == 0.2


@pytest.mark.parametrize("preset, steps, reuses", [("fast_30", 4, False), ("fast_30", 6, False), ("fast_30", 8, True),
                                                   ("medium_30", 8, False), ("medium_30", 9, True),
                                                   ("slow_30", 10, False), ("slow_30", 30, True)])
def test_presets_scaled_to_few_steps_reuse_nothing(preset, steps, reuses):
    # rates scale with steps / reference steps and never fall below 1: at few steps only rate 1 is left
    assert resolve_codebook(preset, "", steps).reuses is reuses


def test_a_custom_codebook_reuses_as_written():
    assert resolve_codebook("custom", "0.5:2,1.0:1", 4).reuses
    assert not parse_codebook("1.00:1").reuses
