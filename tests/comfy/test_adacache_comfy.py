"""FreeAccel_AdaCache inside a real ComfyUI on tiny random-weight models of every supported family."""
import asyncio
import logging

import pytest
import torch

from devtools.harness.compat import run_cond_and_uncond_separately

FAMILIES = ("wan21", "wan22", "hunyuan_video", "ltxv", "mochi", "flux", "qwen_image")
NEVER = "1.00:1"
EAGER = "100.0:3"  # every measured distance is below 100: reuse 3 steps after each computed step


def _apply(comfy_rt, model, preset="custom", codebook=NEVER, metric_block=-1, moreg=False, start=0.0, end=1.0,
           offload=False, normaliser=0.385, exponent=8.0, reuse="hold", reference="run_minimum"):
    node = comfy_rt.node_class("FreeAccel_AdaCache")
    return node.execute(model, preset=preset, custom_codebook=codebook, metric_block=metric_block, moreg=moreg,
                        start_percent=start, end_percent=end, offload=offload, moreg_normaliser=normaliser,
                        moreg_exponent=exponent, reuse=reuse, moreg_reference=reference).result[0]


def _steps(comfy_rt, model):
    """The StepRecords of the last run of ``model`` (a model AdaCache patched)."""
    run_state = comfy_rt.pack_module("nodes.integration.run_state")
    return list(run_state.last_run(model, "freeaccel_adacache").steps)


def _count_first_block(model):
    """Install a counting replacement on the first block (AdaCache chains it); returns the list of sigmas seen."""
    sigmas = []

    def count(args, extra):
        sigmas.append(round(float(args["transformer_options"]["sigmas"][0]), 6))
        return extra["original_block"](args)

    patched = model.clone()
    patched.set_model_patch_replace(count, "dit", "double_block", 0)
    return patched, sigmas


def _summaries(caplog):
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("AdaCache: computed")]


@pytest.mark.parametrize("family", FAMILIES)
def test_never_reuse_is_bit_identical(comfy_rt, tiny, family, caplog):
    case = tiny.build(family)
    reference = tiny.sample(case, steps=6)
    patched = _apply(comfy_rt, case.patcher)
    with caplog.at_level(logging.INFO):
        assert torch.equal(tiny.sample(case, model=patched, steps=6), reference)
    assert _summaries(caplog) == ["AdaCache: computed 6 of 6 steps (rates 1,1,1,1,1,1)"]
    assert "freeaccel_adacache" not in patched.model_options["transformer_options"]
    assert torch.equal(tiny.sample(case, steps=6), reference)  # the original model is untouched


@pytest.mark.parametrize("family", FAMILIES)
def test_reuse_skips_blocks_and_stays_close(comfy_rt, tiny, family):
    case = tiny.build(family)
    reference = tiny.sample(case, steps=10)
    counted, sigmas = _count_first_block(case.patcher)
    patched = _apply(comfy_rt, counted, codebook=EAGER)
    out = tiny.sample(case, model=patched, steps=10)
    # steps 0, 1 forced, 1 -> rate 3 -> 4, 7, then 8, 9 forced
    assert [r.step for r in _steps(comfy_rt, patched) if r.computed] == [0, 1, 4, 7, 8, 9]
    assert len(set(sigmas)) == 6
    assert out.shape == reference.shape and torch.isfinite(out).all()
    assert not torch.equal(out, reference)


def test_two_identical_runs_give_identical_outputs_and_logs(comfy_rt, tiny, caplog):
    case = tiny.build("wan21")
    patched = _apply(comfy_rt, case.patcher, preset="fast_30", moreg=True)
    with caplog.at_level(logging.INFO):
        first = tiny.sample(case, model=patched, steps=30)
        second = tiny.sample(case, model=patched, steps=30)
    assert torch.equal(first, second)
    logs = _summaries(caplog)
    assert len(logs) == 2 and logs[0] == logs[1]
    assert not logs[0].startswith("AdaCache: computed 30 of 30")


def test_resolution_change_between_runs_equals_a_fresh_model(comfy_rt, tiny):
    small, large = tiny.build("wan21", height=12, width=16), tiny.build("wan21", height=16, width=20)
    patched = _apply(comfy_rt, small.patcher, codebook=EAGER)
    tiny.sample(small, model=patched, steps=10)
    after_small = tiny.sample(large, model=patched, steps=10)
    fresh = tiny.sample(large, model=_apply(comfy_rt, large.patcher, codebook=EAGER), steps=10)
    assert torch.equal(after_small, fresh)


def test_two_sampler_segments_compute_their_own_forced_steps(comfy_rt, tiny, caplog):
    """KSamplerAdvanced / WAN 2.2 high-noise + low-noise: steps 0-6 and 6-12 of one 12-step schedule."""
    case = tiny.build("wan21")
    counted, sigmas = _count_first_block(case.patcher)
    patched = _apply(comfy_rt, counted, codebook=EAGER)
    with caplog.at_level(logging.INFO):
        high = tiny.sample(case, model=patched, steps=12, start_step=0, last_step=6)
        records = _steps(comfy_rt, patched)
        tiny.sample(case, model=patched, steps=12, start_step=6, last_step=12, latent=high)
        records += _steps(comfy_rt, patched)
    # each segment is a run of 6 steps: 0, 1 forced, rate 3 -> step 4, then 4, 5 forced (the last two)
    assert [(r.step, r.computed) for r in records] == [
        (0, True), (1, True), (2, False), (3, False), (4, True), (5, True)] * 2
    assert _summaries(caplog) == ["AdaCache: computed 4 of 6 steps (rates 1,3,3,3)"] * 2
    assert len(sigmas) == 8


def test_presets_scale_with_the_whole_schedule_in_a_segment(comfy_rt, tiny, monkeypatch):
    core = comfy_rt.pack_module("accel_core.adacache")
    seen = []
    original = core.resolve_codebook
    monkeypatch.setattr(core, "resolve_codebook", lambda p, c, steps: seen.append(steps) or original(p, c, steps))
    case = tiny.build("wan21")
    patched = _apply(comfy_rt, case.patcher, preset="fast_30")
    tiny.sample(case, model=patched, steps=20, start_step=0, last_step=10)
    tiny.sample(case, model=patched, steps=20)
    assert seen == [20, 20]


def test_batched_and_separate_cond_uncond_decide_the_same(comfy_rt, tiny, monkeypatch):
    case = tiny.build("wan21")
    patched = _apply(comfy_rt, case.patcher, preset="fast_30")
    batched_out = tiny.sample(case, model=patched, steps=30)
    batched = _steps(comfy_rt, patched)
    run_cond_and_uncond_separately(monkeypatch)
    counted, sigmas = _count_first_block(case.patcher)
    patched = _apply(comfy_rt, counted, preset="fast_30")
    separate_out = tiny.sample(case, model=patched, steps=30)
    separate = _steps(comfy_rt, patched)
    computed = sum(r.computed for r in separate)
    assert len(sigmas) == 2 * computed  # proof that cond and uncond really ran as separate model calls
    assert [(r.step, r.computed, r.rate) for r in separate] == [(r.step, r.computed, r.rate) for r in batched]
    measured = lambda rs: [r.distance for r in rs if r.distance is not None]  # noqa: E731
    assert measured(separate) == pytest.approx(measured(batched), rel=1e-4)
    assert computed < 30
    assert torch.allclose(separate_out, batched_out, atol=1e-4)


@pytest.mark.parametrize("family", ["wan21", "flux"])
def test_batch_two_and_cfg_one(comfy_rt, tiny, family):
    case = tiny.build(family)
    batch = torch.cat([case.latent, case.latent])
    for cfg in (1.0, 3.0):
        reference = tiny.sample(case, steps=6, cfg=cfg, latent=batch)
        never = tiny.sample(case, model=_apply(comfy_rt, case.patcher), steps=6, cfg=cfg, latent=batch)
        assert torch.equal(never, reference)
        patched = _apply(comfy_rt, case.patcher, codebook=EAGER)
        out = tiny.sample(case, model=patched, steps=10, cfg=cfg, latent=batch)
        assert out.shape[0] == 2 and torch.isfinite(out).all()
        assert [r.step for r in _steps(comfy_rt, patched) if r.computed] == [0, 1, 4, 7, 8, 9]


def test_lora_patched_model(comfy_rt, tiny):
    case = tiny.build("wan21")
    lora = case.patcher.clone()
    key = "diffusion_model.blocks.1.ffn.0.weight"
    weight = lora.model.state_dict()[key]
    lora.add_patches({key: (torch.full_like(weight, 0.01),)}, 1.0)
    reference = tiny.sample(case, model=lora, steps=6)
    assert not torch.equal(reference, tiny.sample(case, steps=6))
    assert torch.equal(tiny.sample(case, model=_apply(comfy_rt, lora), steps=6), reference)
    assert torch.equal(tiny.sample(case, model=lora, steps=6), reference)


def test_stacked_with_attention_backend(comfy_rt, tiny):
    case = tiny.build("wan21")
    backend = comfy_rt.node_class("FreeAccel_AttentionBackend").execute(case.patcher, "sdpa").result[0]
    reference = tiny.sample(case, model=backend, steps=6)
    assert torch.equal(tiny.sample(case, model=_apply(comfy_rt, backend), steps=6), reference)
    other_order = comfy_rt.node_class("FreeAccel_AttentionBackend").execute(_apply(comfy_rt, case.patcher),
                                                                           "sdpa").result[0]
    assert torch.equal(tiny.sample(case, model=other_order, steps=6), reference)


def test_offload_and_metric_block_choices(comfy_rt, tiny):
    case = tiny.build("flux")
    eager = tiny.sample(case, model=_apply(comfy_rt, case.patcher, codebook=EAGER), steps=10)
    offloaded = tiny.sample(case, model=_apply(comfy_rt, case.patcher, codebook=EAGER, offload=True), steps=10)
    assert torch.equal(eager, offloaded)
    for block in (0, 5, 7):  # a double block, a single block, the last block
        patched = _apply(comfy_rt, case.patcher, codebook="0.0001:3,100:1", metric_block=block)
        out = tiny.sample(case, model=patched, steps=10)
        assert torch.isfinite(out).all() and _steps(comfy_rt, patched)[1].distance is not None
    with pytest.raises(ValueError, match=r"metric_block 8 is out of range; this model has 8 blocks \(0..7"):
        _apply(comfy_rt, case.patcher, metric_block=8)


def test_interrupt_leaves_no_state_behind(comfy_rt, tiny, monkeypatch):
    import comfy.sample
    nodes_module = comfy_rt.pack_module("nodes.adacache")
    contexts = []
    original_init = nodes_module._RunContext.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        contexts.append(self)

    monkeypatch.setattr(nodes_module._RunContext, "__init__", init)
    case = tiny.build("wan21")
    patched = _apply(comfy_rt, case.patcher, codebook=EAGER)
    reference = tiny.sample(case, model=patched, steps=10)

    def interrupt(step, *args):
        if step == 5:
            raise KeyboardInterrupt("stop")

    latent = comfy.sample.fix_empty_latent_channels(patched, case.latent)
    with pytest.raises(KeyboardInterrupt):
        comfy.sample.sample(patched, comfy.sample.prepare_noise(latent, 0), 10, 3.0, "euler", "simple",
                            case.positive, case.negative, latent, callback=interrupt, disable_pbar=True, seed=0)
    interrupted = contexts[-1]
    assert interrupted.run.residuals == {} and interrupted.run.previous_metric == {}
    assert interrupted.stack_input is None
    assert "freeaccel_adacache" not in patched.model_options["transformer_options"]
    assert torch.equal(tiny.sample(case, model=patched, steps=10), reference)


def test_unsupported_models_and_moreg_on_images(comfy_rt, tiny):
    with pytest.raises(ValueError, match="supported families: WAN 2.1 / 2.2, HunyuanVideo, LTX-Video, Mochi, "
                                         "Flux / Chroma, Qwen-Image"):
        _apply(comfy_rt, tiny.build("sd15").patcher)
    with pytest.raises(ValueError, match="MoReg measures motion between latent frames, but Flux / Chroma makes "
                                         "single images; turn moreg off"):
        _apply(comfy_rt, tiny.build("flux").patcher, moreg=True)
    case = tiny.build("wan21", frames=1)
    with pytest.raises(ValueError, match="MoReg needs a video latent with at least 2 frames"):
        tiny.sample(case, model=_apply(comfy_rt, case.patcher, moreg=True), steps=4)


def test_moreg_on_video_families(comfy_rt, tiny):
    for family in ("wan21", "hunyuan_video", "ltxv"):
        case = tiny.build(family)
        patched = _apply(comfy_rt, case.patcher, preset="fast_30", moreg=True)
        out = tiny.sample(case, model=patched, steps=10)
        assert torch.isfinite(out).all()
        assert all(r.motion is not None and 0.0 <= r.motion <= 1.0 for r in _steps(comfy_rt, patched) if r.computed)


def test_moreg_run_minimum_scales_each_distance_by_the_rise_over_the_runs_smallest_motion(comfy_rt, tiny):
    """Every step computed (same trajectory with and without MoReg): inside MoReg's window (steps 1..9 of 10) each
    distance is the plain one times m' + |10 (m' - m'_prev)|, m' = (m / smallest m so far) ^ 8, from the recorded m."""
    case = tiny.build("wan21")
    plain = _apply(comfy_rt, case.patcher)
    moreg = _apply(comfy_rt, case.patcher, moreg=True)
    assert torch.equal(tiny.sample(case, model=plain, steps=10), tiny.sample(case, model=moreg, steps=10))
    plain_records, moreg_records = _steps(comfy_rt, plain), _steps(comfy_rt, moreg)
    floor, previous, expected = float("inf"), 1.0, []
    for plain_record, record in zip(plain_records, moreg_records):
        floor = min(floor, record.motion)
        if plain_record.distance is None:
            expected.append(None)
            continue
        factor = (record.motion / floor) ** 8 if 1 <= record.step <= 9 else 1.0
        expected.append(plain_record.distance * (factor + abs(10 * (factor - previous))))
        previous = factor
    assert [r.distance is None for r in moreg_records] == [e is None for e in expected]
    assert [r.distance for r in moreg_records if r.distance is not None] == pytest.approx(
        [e for e in expected if e is not None], rel=1e-9)
    assert any(e is not None and e > p.distance * 1.01 for e, p in zip(expected, plain_records)), \
        "the tiny WAN's motion should rise above its floor at least once"


@pytest.mark.parametrize("inputs, message", [
    ({"preset": "custom", "custom_codebook": "0.3:2,0.1:1"}, "strictly ascending"),
    ({"preset": "custom", "custom_codebook": "0.1:2,0.5"}, "is not threshold:rate"),
    ({"preset": "custom", "custom_codebook": "0.1:0"}, "rate must be at least 1"),
    ({"start_percent": 0.6, "end_percent": 0.4}, "start_percent (0.6) must be smaller than end_percent (0.4)"),
])
def test_bad_inputs_fail_prompt_validation(comfy_rt, inputs, message):
    import execution
    node = comfy_rt.node_class("FreeAccel_AdaCache")
    widgets = {"preset": "fast_30", "custom_codebook": "", "metric_block": -1, "moreg": False, "start_percent": 0.0,
               "end_percent": 1.0, "offload": False, "moreg_normaliser": 0.385, "moreg_exponent": 8.0, **inputs}
    direct = node.validate_inputs(**{k: v for k, v in widgets.items() if k not in ("moreg", "offload")})
    assert isinstance(direct, str) and message in direct
    with pytest.raises(ValueError, match=r"^AdaCache \+ MoReg: "):
        node.execute(None, **widgets)
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "missing.safetensors", "weight_dtype": "default"}},
        "2": {"class_type": "FreeAccel_AdaCache", "inputs": {"model": ["1", 0], **widgets}},
        "3": {"class_type": "ModelSave", "inputs": {"model": ["2", 0], "filename_prefix": "x"}},
    }
    valid, _, _, node_errors = asyncio.run(execution.validate_prompt("adacache-validation", prompt, None))
    assert not valid
    details = [e["details"] for e in node_errors["2"]["errors"]]
    assert any(message in d for d in details), node_errors


@pytest.mark.parametrize("family", ["wan21", "flux"])
def test_linear_reuse_forecasts_the_skipped_steps(comfy_rt, tiny, family):
    """Same decisions as hold (the eager codebook ignores the distance) but other skipped outputs; with nothing
    reused, linear is the unpatched model bit for bit."""
    case = tiny.build(family)
    hold = _apply(comfy_rt, case.patcher, codebook=EAGER)
    linear = _apply(comfy_rt, case.patcher, codebook=EAGER, reuse="linear")
    out_hold, out_linear = tiny.sample(case, model=hold, steps=10), tiny.sample(case, model=linear, steps=10)
    assert [r.computed for r in _steps(comfy_rt, hold)] == [r.computed for r in _steps(comfy_rt, linear)]
    assert torch.isfinite(out_linear).all() and not torch.equal(out_hold, out_linear)
    never = _apply(comfy_rt, case.patcher, reuse="linear")
    assert torch.equal(tiny.sample(case, model=never, steps=6), tiny.sample(case, steps=6))
