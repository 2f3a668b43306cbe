"""FreeAccel_TemporalAttnPrune on the real ComfyUI model classes (tiny random weights, CPU)."""
import logging
import math

import pytest
import torch

from devtools.harness.compat import run_cond_and_uncond_separately

WAN_FRAMES = 9
STEPS = 4


@pytest.fixture(scope="module")
def tp(comfy_rt):
    return comfy_rt.pack_module("nodes.temporal_prune")


@pytest.fixture(scope="module")
def core(comfy_rt):
    return comfy_rt.pack_module("accel_core.temporal_prune")


@pytest.fixture(scope="module")
def run_state(comfy_rt):
    return comfy_rt.pack_module("nodes.integration.run_state")


@pytest.fixture(scope="module")
def last_run(tp, run_state):
    """The summary of the last sampling run of a model TemporalAttnPrune patched."""
    return lambda patched: run_state.last_run(patched, tp.KEY)


@pytest.fixture(scope="module")
def running(tp, run_state):
    """fn(patched) -> fn() giving the state of the run in progress (None between runs), for module hooks that get
    no transformer_options (as the node's own SVD patches). The node's RunHook holds no state, so an OUTER_SAMPLE
    wrapper added after it (hence run inside it) reads the run's state from the guider's model_options."""
    def current_of(patched):
        seen = [None]

        def spy(executor, *args, **kwargs):
            seen[0] = run_state.run_state(executor.class_obj.model_options.get("transformer_options"), tp.KEY)
            try:
                return executor(*args, **kwargs)
            finally:
                seen[0] = None
        patched.add_wrapper_with_key(run_state.OUTER_SAMPLE, "test_running_spy", spy)
        return lambda: seen[0]
    return current_of


def _case(tiny, family):
    return tiny.build(family, frames=WAN_FRAMES) if family == "wan21" else tiny.build(family, frames=4)


def _apply(tp, core, model, ratio=0.5, mode="identity", start_percent=0.0, calibration_steps=1):
    settings = core.TemporalPruneSettings(ratio=ratio, mode=mode, start_percent=start_percent,
                                          calibration_steps=calibration_steps)
    return tp.apply_temporal_prune(model, settings)


def _split(x, heads):
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


def _wan_frame_ids(case):
    per_frame = (case.latent.shape[-2] // 2) * (case.latent.shape[-1] // 2)
    return torch.arange(case.frames * per_frame) // per_frame


@pytest.mark.parametrize("family", ["svd", "wan21"])
@pytest.mark.parametrize("mode", ["identity", "skip"])
def test_ratio_zero_is_bit_identical(comfy_rt, tiny, tp, core, last_run, family, mode):
    case = _case(tiny, family)
    base = tiny.sample(case, steps=STEPS)
    patched = _apply(tp, core, case.patcher, ratio=0.0, mode=mode)
    out = tiny.sample(case, model=patched, steps=STEPS)
    assert torch.equal(out, base)
    assert last_run(patched)["units"] > 0 and last_run(patched)["pruned"] == frozenset()
    assert torch.equal(tiny.sample(case, steps=STEPS), base)  # object patches restored


def test_node_through_the_executor_registry(comfy_rt, tiny):
    import nodes
    node = nodes.NODE_CLASS_MAPPINGS["FreeAccel_TemporalAttnPrune"]
    schema = node.GET_SCHEMA()
    assert schema.display_name == "TemporalAttnPrune (F3)" and schema.category == "FreeAccel/pruning"
    assert all(i.tooltip for i in schema.inputs)
    case = _case(tiny, "wan21")
    patched = node.execute(case.patcher, ratio=0.5, mode="identity", start_percent=0.0,
                           calibration_steps=1).result[0]
    assert not torch.equal(tiny.sample(case, model=patched, steps=STEPS), tiny.sample(case, steps=STEPS))


def test_validate_inputs_messages(comfy_rt, tp):
    node = tp.TemporalAttnPruneNode
    assert node.validate_inputs(ratio=0.5, mode="skip", start_percent=0.2, calibration_steps=3) is True
    assert "ratio" in node.validate_inputs(ratio=1.5, mode="skip", start_percent=0.2, calibration_steps=3)
    assert "mode" in node.validate_inputs(ratio=0.5, mode="drop", start_percent=0.2, calibration_steps=3)
    assert "start_percent" in node.validate_inputs(ratio=0.5, mode="skip", start_percent=-0.1, calibration_steps=3)
    assert "calibration_steps" in node.validate_inputs(ratio=0.5, mode="skip", start_percent=0.2, calibration_steps=0)
    # inputs fed by links are not passed: they keep the defaults
    assert node.validate_inputs() is True
    assert node.validate_inputs(mode="drop") == ("TemporalAttnPrune (F3): mode must be one of identity, skip, adaptive, "
                                                 "got 'drop'")


def test_invalid_settings_are_rejected_at_apply(comfy_rt, tiny, tp, core):
    case = _case(tiny, "wan21")
    with pytest.raises(ValueError, match=r"^TemporalAttnPrune \(F3\): ratio must be between 0 and 1, got 1.5$"):
        _apply(tp, core, case.patcher, ratio=1.5)
    with pytest.raises(ValueError, match=r"^TemporalAttnPrune \(F3\): calibration_steps must be at least 1, got 0$"):
        _apply(tp, core, case.patcher, calibration_steps=0)


@pytest.mark.parametrize("family", ["flux", "sd15"])
def test_unsupported_model_is_rejected(comfy_rt, tiny, tp, core, family):
    families = comfy_rt.pack_module("accel_core.families")
    with pytest.raises(families.UnsupportedModelError, match=r"TemporalAttnPrune \(F3\): .*supported families: .*WAN"):
        _apply(tp, core, tiny.build(family).patcher)


def test_text_as_long_as_the_video_leaves_attention_dense(comfy_rt, tiny, tp, core, last_run, caplog):
    """A cross-attention with as many keys as the video has tokens cannot be told from the self-attention: such
    calls stay dense (bit-identical output, no units measured) and one warning per run says so."""
    case = tiny.build("wan21", frames=8, height=2, width=4)  # 8 frames x (1 x 2) patches
    assert case.frames * (case.latent.shape[-2] // 2) * (case.latent.shape[-1] // 2) == tiny.TEXT_TOKENS
    base = tiny.sample(case, steps=STEPS)
    patched = _apply(tp, core, case.patcher)
    with caplog.at_level(logging.WARNING):
        out = tiny.sample(case, model=patched, steps=STEPS)
    assert torch.equal(out, base) and last_run(patched)["units"] == 0
    assert sum("as many tokens as the video" in record.getMessage() for record in caplog.records) == 1


@pytest.mark.parametrize("family", ["svd", "wan21"])
def test_one_frame_video_is_rejected(comfy_rt, tiny, tp, core, family):
    case = tiny.build(family, frames=1)
    patched = _apply(tp, core, case.patcher)
    with pytest.raises(ValueError, match="at least 2 latent frames; this one has 1"):
        tiny.sample(case, model=patched, steps=2)


def test_svd_units_are_the_time_stack_attention_modules(comfy_rt, tiny, tp, core, last_run):
    case = _case(tiny, "svd")
    patched = _apply(tp, core, case.patcher)
    tiny.sample(case, model=patched, steps=STEPS)
    names = [n for n, _ in case.patcher.model.diffusion_model.named_modules() if n.endswith("time_stack.0.attn1")]
    assert names and set(last_run(patched)["aggregates"]) == set(names)


def test_svd_aggregates_equal_a_dense_reference(comfy_rt, tiny, tp, core, last_run, running):
    """Each module's aggregate == mean over (b s) rows, heads and frames of the explicit softmax's off-diagonal mass,
    recomputed from the inputs the module received during the calibration step."""
    case = _case(tiny, "svd")
    patched = _apply(tp, core, case.patcher, calibration_steps=1)
    current = running(patched)
    sums, counts, hooks = {}, {}, []
    diffusion_model = case.patcher.model.diffusion_model
    for name in tp._svd_time_stack_attention(diffusion_model):
        module = diffusion_model.get_submodule(name)

        def record(mod, args, kwargs, name=name):
            state = current()
            if state is None or not state.run.calibrating:
                return
            x = args[0]
            q, k = _split(mod.to_q(x), mod.heads), _split(mod.to_k(x), mod.heads)
            probs = (q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5).softmax(dim=-1)
            other = 1.0 - probs.diagonal(dim1=-2, dim2=-1)  # [(b s), H, T]: mass on the other frames
            sums[name] = sums.get(name, 0.0) + other.double().sum().item()
            counts[name] = counts.get(name, 0) + other.numel()
        hooks.append(module.register_forward_pre_hook(record, with_kwargs=True))
    try:
        with torch.no_grad():
            tiny.sample(case, model=patched, steps=STEPS)
    finally:
        for hook in hooks:
            hook.remove()
    aggregates = last_run(patched)["aggregates"]
    assert set(aggregates) == set(sums)
    for name, value in aggregates.items():
        assert value == pytest.approx(sums[name] / counts[name], abs=1e-5)


def test_wan_aggregates_equal_a_dense_reference(comfy_rt, tiny, tp, core, run_state, last_run,
                                                monkeypatch):
    """Per-head aggregates == explicit-softmax cross-frame mass over ALL query rows of each self-attention call."""
    monkeypatch.setattr(tp, "QUERY_ROWS_PER_FRAME", 10 ** 6)
    case = _case(tiny, "wan21")
    ids = _wan_frame_ids(case)
    other = (ids.view(-1, 1) != ids.view(1, -1)).float()
    sums, counts = {}, {}

    def recorder(call):
        state = run_state.run_state(call.options, tp.KEY)
        if state is not None and state.run.calibrating and call.query_length == call.key_length == len(ids):
            q, k = call.q, call.k
            probs = (q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5).softmax(dim=-1)
            per_query = (probs * other).sum(dim=-1)  # [B, H, L]
            block = call.options["block_index"]
            for h in range(q.shape[1]):
                key = ("double", block, 0, h)
                sums[key] = sums.get(key, 0.0) + per_query[:, h].double().sum().item()
                counts[key] = counts.get(key, 0) + per_query[:, h].numel()
        return call.next()

    inner = case.patcher.clone()
    attention = comfy_rt.pack_module("nodes.integration.attention")
    attention.install_attention_override(inner, recorder)  # runs after (inside) the pruning handler
    patched = _apply(tp, core, inner)
    with torch.no_grad():
        tiny.sample(case, model=patched, steps=STEPS)
    aggregates = last_run(patched)["aggregates"]
    blocks = len(case.patcher.model.diffusion_model.blocks)
    heads = case.patcher.model.diffusion_model.num_heads
    assert len(aggregates) == blocks * heads and set(aggregates) == set(sums)
    for key, value in aggregates.items():
        assert value == pytest.approx(sums[key] / counts[key], abs=1e-5)


@pytest.mark.parametrize("family,ratio", [("svd", 0.5), ("wan21", 0.25), ("wan21", 0.75)])
def test_pruned_set_is_the_hand_ranked_lowest_fraction(comfy_rt, tiny, tp, core, last_run, family, ratio):
    case = _case(tiny, family)
    patched = _apply(tp, core, case.patcher, ratio=ratio)
    tiny.sample(case, model=patched, steps=STEPS)
    aggregates = last_run(patched)["aggregates"]
    ranked = sorted(aggregates, key=lambda unit: aggregates[unit])
    expected = set(ranked[:math.floor(ratio * len(ranked))])
    assert expected and last_run(patched)["pruned"] == expected


@pytest.mark.parametrize("mode", ["identity", "skip"])
def test_wan_pruned_heads_attend_within_their_frame(comfy_rt, tiny, tp, core, run_state, mode):
    """After the freeze, a pruned head == dense attention with a block-diagonal frame mask (identity) or zero
    (skip); a kept head == full attention."""
    case = _case(tiny, "wan21")
    ids = _wan_frame_ids(case)
    same_frame = (ids.view(-1, 1) == ids.view(1, -1)).view(1, 1, len(ids), len(ids))
    patched = _apply(tp, core, case.patcher, ratio=0.5, mode=mode)
    checked = []

    def spy(call):
        out = call.next()
        state = run_state.run_state(call.options, tp.KEY)
        if state is not None and state.run.pruned and call.query_length == call.key_length == len(ids):
            block = call.options["block_index"]
            q, k, v = call.q, call.k, call.v
            for h in range(q.shape[1]):
                scores = q[:, h:h + 1] @ k[:, h:h + 1].transpose(-1, -2) * q.shape[-1] ** -0.5
                if ("double", block, 0, h) in state.run.pruned:
                    if mode == "skip":
                        assert torch.equal(out[:, h], torch.zeros_like(out[:, h]))
                        checked.append("zero")
                        continue
                    scores = scores.masked_fill(~same_frame, float("-inf"))
                    checked.append("frame")
                else:
                    checked.append("full")
                expected = scores.softmax(dim=-1) @ v[:, h:h + 1]
                torch.testing.assert_close(out[:, h:h + 1], expected, rtol=0, atol=1e-5)
        return out

    attention = comfy_rt.pack_module("nodes.integration.attention")
    attention.install_attention_override(patched, spy)  # outermost: sees the pruning handler's output
    with torch.no_grad():
        tiny.sample(case, model=patched, steps=STEPS)
    assert "full" in checked and ("frame" if mode == "identity" else "zero") in checked


def test_svd_pruned_modules_do_no_attention(comfy_rt, tiny, tp, core, running):
    """identity: a pruned module's query projection never runs after the freeze (output = V then out-projection);
    skip: the pruned temporal block is not entered at all while the spatial/temporal mixer still runs."""
    for mode in ("identity", "skip"):
        case = _case(tiny, "svd")
        diffusion_model = case.patcher.model.diffusion_model
        patched = _apply(tp, core, case.patcher, ratio=1.0, mode=mode)
        current = running(patched)
        calls = {"to_q": 0, "attn1": 0, "mixer": 0}
        hooks = []

        def counter(key):
            def hook(*_):
                state = current()
                if state is not None and state.run.pruned:
                    calls[key] += 1
            return hook
        for name, module in diffusion_model.named_modules():
            if name.endswith("time_stack.0.attn1.to_q"):
                hooks.append(module.register_forward_hook(counter("to_q")))
            elif name.endswith("time_stack.0.attn1"):
                hooks.append(module.register_forward_hook(counter("attn1")))
            elif name.endswith("time_mixer"):
                hooks.append(module.register_forward_hook(counter("mixer")))
        try:
            tiny.sample(case, model=patched, steps=STEPS)
        finally:
            for hook in hooks:
                hook.remove()
        assert calls["to_q"] == 0 and calls["mixer"] > 0
        assert (calls["attn1"] > 0) == (mode == "identity")


@pytest.mark.parametrize("family", ["svd", "wan21"])
def test_two_runs_are_identical(comfy_rt, tiny, tp, core, last_run, family):
    case = _case(tiny, family)
    patched = _apply(tp, core, case.patcher, ratio=0.5)
    first = tiny.sample(case, model=patched, steps=STEPS)
    first_pruned = last_run(patched)["pruned"]
    second = tiny.sample(case, model=patched, steps=STEPS)
    assert torch.equal(first, second) and last_run(patched)["pruned"] == first_pruned


@pytest.mark.parametrize("family", ["svd", "wan21"])
def test_batched_and_separate_cond_uncond_decide_the_same(comfy_rt, tiny, tp, core, last_run, family, monkeypatch):
    import comfy.patcher_extension
    case = _case(tiny, family)
    patched = _apply(tp, core, case.patcher, ratio=0.5)
    calls = []
    tiny.sample(case, model=patched, steps=STEPS)
    batched = last_run(patched)
    run_cond_and_uncond_separately(monkeypatch)

    def counting(executor, *args, **kwargs):
        calls.append(args[0].shape[0])
        return executor(*args, **kwargs)
    patched = patched.clone()
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, "test_count", counting)
    tiny.sample(case, model=patched, steps=STEPS)
    separate = last_run(patched)
    assert len(calls) == 2 * STEPS  # cond and uncond really ran as separate model calls
    assert separate["pruned"] == batched["pruned"] and separate["pruned"]
    for unit, value in batched["aggregates"].items():
        assert separate["aggregates"][unit] == pytest.approx(value, abs=1e-5)


def _joint_attention_heads(family, diffusion_model):
    """Units each DiT family should expose: one per head of each block's joint self-attention."""
    if family == "hunyuan_video":
        return (len(diffusion_model.double_blocks) + len(diffusion_model.single_blocks)) * diffusion_model.num_heads
    if family == "ltxv":
        blocks = diffusion_model.transformer_blocks
        return len(blocks) * blocks[0].attn1.heads
    if family == "mochi":
        return len(diffusion_model.blocks) * diffusion_model.blocks[0].attn.num_heads
    return len(diffusion_model.blocks) * diffusion_model.num_heads  # WAN


@pytest.mark.parametrize("family", ["wan22", "hunyuan_video", "mochi", "ltxv"])
def test_other_dits_find_every_joint_self_attention(comfy_rt, tiny, tp, core, last_run, family):
    """The layout read from each model matches exactly its joint self-attention calls (text and cross-attention
    calls are left alone): ratio 0 is bit-identical and every block's heads are units; pruning then changes the
    output and restores nothing wrongly."""
    case = tiny.build(family, frames=4)
    base = tiny.sample(case, steps=3)
    patched = _apply(tp, core, case.patcher, ratio=0.0)
    assert torch.equal(tiny.sample(case, model=patched, steps=3), base)
    assert last_run(patched)["units"] == _joint_attention_heads(family, case.patcher.model.diffusion_model)
    patched = _apply(tp, core, case.patcher, ratio=0.5)
    assert not torch.equal(tiny.sample(case, model=patched, steps=3), base)
    assert len(last_run(patched)["pruned"]) == last_run(patched)["units"] // 2
    assert torch.equal(tiny.sample(case, steps=3), base)


def test_mochi_pruned_heads_see_their_frame_and_the_text(comfy_rt, tiny, tp, core, run_state):
    """Joint attention ([video | text], [B, H, L, D] layout): a pruned head's video queries attend to their own
    frame plus every text token, its text queries to everything; kept heads stay full."""
    case = tiny.build("mochi", frames=4)
    per_frame = (case.latent.shape[-2] // 2) * (case.latent.shape[-1] // 2)
    video = case.frames * per_frame
    patched = _apply(tp, core, case.patcher, ratio=0.5)
    seen = {"call": None, "ordinal": 0}
    checked = []

    def spy(call):
        out = call.next()
        state = run_state.run_state(call.options, tp.KEY)
        q, k, v = call.q, call.k, call.v
        if state is None or not state.run.pruned or q.shape[2] != k.shape[2] or q.shape[2] <= video:
            return out
        if seen["call"] is not state.call:  # a new model call: its sites are numbered from 0 again
            seen["call"], seen["ordinal"] = state.call, 0
        ordinal = seen["ordinal"]
        seen["ordinal"] += 1
        ids = torch.cat([torch.arange(video) // per_frame, torch.full((q.shape[2] - video,), -1)])
        allowed = (ids.view(-1, 1) == ids.view(1, -1)) | (ids.view(1, -1) < 0) | (ids.view(-1, 1) < 0)
        for h in range(q.shape[1]):
            scores = q[:, h] @ k[:, h].transpose(-1, -2) * q.shape[-1] ** -0.5
            pruned = (None, None, ordinal, h) in state.run.pruned
            if pruned:
                scores = scores.masked_fill(~allowed, float("-inf"))
            checked.append(pruned)
            torch.testing.assert_close(out[:, h], scores.softmax(dim=-1) @ v[:, h], rtol=0, atol=1e-5)
        return out

    attention = comfy_rt.pack_module("nodes.integration.attention")
    attention.install_attention_override(patched, spy)
    with torch.no_grad():
        tiny.sample(case, model=patched, steps=STEPS)
    assert True in checked and False in checked
