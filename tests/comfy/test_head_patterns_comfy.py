"""FreeAccel_TemporalAttnPrune in mode adaptive (per-head sparse patterns) on the real ComfyUI model classes (tiny
random weights, CPU): all-dense is the unpatched model bit for bit, the decision is accel_core.head_patterns'
decide_patterns on the q/k each block's call really had, the chosen patterns run as the kernel's patterns, the
pattern file round-trips, no step is spent only measuring."""
import json
import logging

import pytest
import torch
from test_temporal_prune_comfy import core, last_run, run_state, tp  # noqa: F401 (fixtures)

WAN_FRAMES = 9
STEPS = 4


@pytest.fixture(scope="module")
def hp(comfy_rt):
    return comfy_rt.pack_module("accel_core.head_patterns")


@pytest.fixture(scope="module")
def attention(comfy_rt):
    return comfy_rt.pack_module("nodes.integration.attention")


def _adaptive(tp, core, model, **changes):
    settings = dict(mode="adaptive", start_percent=0.0, dense_blocks=0)
    settings.update(changes)
    return tp.apply_temporal_prune(model, core.TemporalPruneSettings(**settings))


def _wan(tiny, **overrides):
    return tiny.build("wan21", frames=WAN_FRAMES, **overrides)


def _table(hp, settings, heads, blocks, pattern, grid):
    table = hp.PatternTable(settings.head_patterns.shapes, settings.mass_threshold, grid)
    for block in range(blocks):
        table.record(block, [pattern] * heads)
    return table


def _wan_grid(case):
    return (case.frames, case.latent.shape[-2] // 2, case.latent.shape[-1] // 2)


def _freeaccel_log(caplog):
    return [r.getMessage() for r in caplog.records if ".nodes" in r.name]


@pytest.mark.parametrize("family", ["wan21", "hunyuan_video", "ltxv", "mochi"])
def test_mass_threshold_one_is_bit_identical(comfy_rt, tiny, tp, core, last_run, family):
    """Every head dense: the unpatched model bit for bit (dense heads go down the attention chain untouched)."""
    case = _wan(tiny) if family == "wan21" else tiny.build(family, frames=4)
    base = tiny.sample(case, steps=STEPS)
    patched = _adaptive(tp, core, case.patcher, mass_threshold=1.0)
    assert torch.equal(tiny.sample(case, model=patched, steps=STEPS), base)
    record = last_run(patched)
    assert record["heads"] > 0 and record["counts"]["dense"] == record["heads"]
    assert record["decision_step"] == 1 and record["steps"] == STEPS


def test_decision_is_decide_patterns_on_the_recorded_qk(comfy_rt, tiny, tp, core, hp, last_run, attention):
    """Each block's patterns and masses == accel_core.head_patterns.decide_patterns on the q/k that block's first
    self-attention call of the deciding step had, recorded by a handler in front of the node's."""
    case = _wan(tiny)
    grid = _wan_grid(case)
    settings = core.TemporalPruneSettings(mode="adaptive", start_percent=0.5, dense_blocks=1, mass_threshold=0.5)
    patched = tp.apply_temporal_prune(case.patcher, settings)
    recorded, calls = {}, []
    length = grid[0] * grid[1] * grid[2]

    def recorder(call):
        if call.query_length == call.key_length == length:
            calls.append(call.options["block_index"])
            recorded.setdefault(call.options["block_index"], []).append((call.q.clone(), call.k.clone()))
        return call.next()
    attention.install_attention_override(patched, recorder)  # outermost: sees the call before the node does
    with torch.no_grad():
        tiny.sample(case, model=patched, steps=STEPS)
    record = last_run(patched)
    blocks = len(case.patcher.model.diffusion_model.blocks)
    assert record["dense_blocks"] == [0] and record["measured_blocks"] == list(range(1, blocks))
    step = record["decision_step"]  # the first step at or below start_percent's sigma, after the dense ones
    assert 1 < step <= STEPS and record["dense_steps"] == step - 1 and record["steps"] == STEPS
    layout = comfy_rt.pack_module("kernels.local_window").VideoLayout(*grid)
    for block in range(1, blocks):
        calls_per_step = len(recorded[block]) // STEPS
        q, k = recorded[block][(step - 1) * calls_per_step]  # its first call of the deciding step
        patterns, masses = hp.decide_patterns(q, k, layout, settings.head_patterns)
        assert record["patterns"][block] == patterns
        assert torch.equal(record["trace"][block], masses)
    assert record["heads"] == (blocks - 1) * case.patcher.model.diffusion_model.num_heads


def test_chosen_patterns_run_as_the_kernel_runs_them(comfy_rt, tiny, tp, core, hp, attention, tmp_path):
    """Patterns loaded from a file (every head within-frame, window or temporal): each joint self-attention output
    == kernels.head_sparse on the call's own q/k/v, and the run differs from the dense one."""
    head_sparse = comfy_rt.pack_module("kernels.head_sparse")
    layout_class = comfy_rt.pack_module("kernels.local_window").VideoLayout
    case = _wan(tiny)
    grid = _wan_grid(case)
    heads = case.patcher.model.diffusion_model.num_heads
    blocks = len(case.patcher.model.diffusion_model.blocks)
    settings = core.TemporalPruneSettings(mode="adaptive", start_percent=0.0, dense_blocks=0,
                                          pattern_file=str(tmp_path / "mixed.json"))
    table = hp.PatternTable(settings.head_patterns.shapes, settings.mass_threshold, grid)
    mixed = [("frame", "window"), ("temporal", "dense"), ("window", "window"), ("dense", "temporal")]
    for block in range(blocks):
        table.record(block, mixed[block % len(mixed)][:heads])
    table.save(settings.pattern_file)
    patched = tp.apply_temporal_prune(case.patcher, settings)
    checked = []

    def spy(call):
        out = call.next()
        if call.query_length == call.key_length == grid[0] * grid[1] * grid[2]:
            block = call.options["block_index"]
            expected = head_sparse.head_sparse_attention(call.q, call.k, call.v, layout_class(*grid),
                                                         table.patterns(block), settings.head_patterns.shapes)
            torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
            checked.append(block)
        return out
    attention.install_attention_override(patched, spy)
    with torch.no_grad():
        out = tiny.sample(case, model=patched, steps=STEPS)
    assert sorted(set(checked)) == list(range(blocks))
    assert not torch.equal(out, tiny.sample(case, steps=STEPS))


def test_pattern_file_round_trips(comfy_rt, tiny, tp, core, last_run, tmp_path, caplog):
    """First run: measures and writes the file; second run: loads it, measures nothing, same output bit for bit."""
    case = _wan(tiny)
    path = tmp_path / "wan_patterns.json"
    patched = _adaptive(tp, core, case.patcher, mass_threshold=0.5, pattern_file=str(path))
    with caplog.at_level(logging.INFO):
        first = tiny.sample(case, model=patched, steps=STEPS)
    measured = last_run(patched)
    assert path.exists() and measured["source"] == "measured" and measured["measured_blocks"]
    assert any("wrote the head patterns to" in m for m in _freeaccel_log(caplog))
    written = json.loads(path.read_text())
    assert written["grid"] == list(_wan_grid(case))
    assert {int(b): tuple(p) for b, p in written["blocks"].items()} == measured["patterns"]
    again = _adaptive(tp, core, case.patcher, mass_threshold=0.5, pattern_file=str(path))
    second = tiny.sample(case, model=again, steps=STEPS)
    loaded = last_run(again)
    assert loaded["source"] == "file" and loaded["measured_blocks"] == [] and loaded["mismatch"] is None
    assert loaded["patterns"] == measured["patterns"]
    assert torch.equal(first, second)


def test_relative_pattern_file_lives_in_the_output_folder(comfy_rt, tiny, tp, core):
    import folder_paths
    assert tp.pattern_path("sub/p.json") == str(
        __import__("os").path.normpath(__import__("os").path.join(folder_paths.get_output_directory(), "sub/p.json")))
    assert tp.pattern_path("  ") is None


def test_mismatched_pattern_file_is_logged_and_measured_again(comfy_rt, tiny, tp, core, hp, last_run, tmp_path,
                                                              caplog):
    case = _wan(tiny)
    settings = core.TemporalPruneSettings(mode="adaptive", start_percent=0.0, dense_blocks=0, mass_threshold=0.5)
    path = tmp_path / "other_grid.json"
    _table(hp, settings, 2, 4, "frame", (WAN_FRAMES, 3, 3)).save(path)
    before = path.read_text()
    patched = _adaptive(tp, core, case.patcher, mass_threshold=0.5, pattern_file=str(path))
    with caplog.at_level(logging.INFO):
        out = tiny.sample(case, model=patched, steps=STEPS)
    record = last_run(patched)
    assert record["source"] == "measured" and "9 x 3 x 3 grid" in record["mismatch"]
    assert sum("does not fit this run" in m for m in _freeaccel_log(caplog)) == 1
    assert path.read_text() == before  # left as it was
    fresh = _adaptive(tp, core, case.patcher, mass_threshold=0.5)
    assert torch.equal(out, tiny.sample(case, model=fresh, steps=STEPS))  # as if there were no file


def test_unreadable_pattern_file_fails_validation_clearly(comfy_rt, tiny, tp, core, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    node = tp.TemporalAttnPruneNode
    message = node.validate_inputs(mode="adaptive", pattern_file=str(path))
    assert message.startswith("TemporalAttnPrune (F3): pattern_file: ") and "is not JSON" in message
    assert node.validate_inputs(mode="identity", pattern_file=str(path)) is True  # only adaptive reads it
    assert node.validate_inputs(mode="adaptive", pattern_file=str(tmp_path / "missing.json")) is True
    with pytest.raises(ValueError, match=r"^TemporalAttnPrune \(F3\): pattern_file: .*is not JSON"):
        _adaptive(tp, core, _wan(tiny).patcher, pattern_file=str(path))


def test_svd_is_refused_in_adaptive_mode(comfy_rt, tiny, tp, core):
    with pytest.raises(ValueError, match=r"^TemporalAttnPrune \(F3\): mode adaptive .*SVD has none"):
        _adaptive(tp, core, tiny.build("svd", frames=4).patcher)


def test_no_extra_steps(comfy_rt, tiny, tp, core, last_run, tmp_path):
    """The model is called once per sampler step (cond and uncond batched), the patterns are in force from the
    first computed step at start_percent on: one step of an adaptive run already differs from the dense step and
    equals one step with those patterns loaded from a file."""
    import comfy.patcher_extension
    case = _wan(tiny)
    calls = []

    def counting(executor, *args, **kwargs):
        calls.append(float(args[1].max()))
        return executor(*args, **kwargs)
    path = tmp_path / "p.json"
    patched = _adaptive(tp, core, case.patcher, mass_threshold=0.5, pattern_file=str(path)).clone()
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, "test_count", counting)
    tiny.sample(case, model=patched, steps=STEPS)
    record = last_run(patched)
    assert len(calls) == len(set(calls)) == STEPS == record["steps"]
    assert record["decision_step"] == 1 and record["dense_steps"] == 0
    assert record["counts"]["dense"] < record["heads"]  # something sparse was chosen, else this test proves nothing
    one_step = tiny.sample(case, model=_adaptive(tp, core, case.patcher, mass_threshold=0.5), steps=1)
    assert not torch.equal(one_step, tiny.sample(case, steps=1))
    loaded = _adaptive(tp, core, case.patcher, mass_threshold=0.5, pattern_file=str(path))
    assert torch.equal(one_step, tiny.sample(case, model=loaded, steps=1))


def test_steps_before_start_percent_run_dense(comfy_rt, tiny, tp, core, last_run):
    case = _wan(tiny)
    patched = _adaptive(tp, core, case.patcher, start_percent=1.0, mass_threshold=0.5)
    assert torch.equal(tiny.sample(case, model=patched, steps=STEPS), tiny.sample(case, steps=STEPS))


def test_log_line_counts_the_heads_of_each_pattern(comfy_rt, tiny, tp, core, last_run, caplog):
    case = _wan(tiny)
    patched = _adaptive(tp, core, case.patcher, mass_threshold=0.5, dense_blocks=1)
    with caplog.at_level(logging.INFO):
        tiny.sample(case, model=patched, steps=STEPS)
    counts = last_run(patched)["counts"]
    lines = [m for m in _freeaccel_log(caplog) if m.startswith("TemporalAttnPrune (wan, adaptive)")]
    assert len(lines) == 1
    assert "head patterns of 6 heads in 3 blocks (measured in computed step 1)" in lines[0]
    assert ", ".join(f"{p} {n}" for p, n in counts.items()) in lines[0] and "1 dense blocks" in lines[0]



@pytest.mark.parametrize("family,blocks", [("wan22", 4), ("hunyuan_video", 8), ("ltxv", 4), ("mochi", 4)])
def test_every_block_of_each_dit_gets_its_patterns(comfy_rt, tiny, tp, core, last_run, family, blocks):
    """Blocks are numbered globally (HunyuanVideo: 4 double-stream, then 4 single-stream), every block's joint
    self-attention is measured once, and the dense first blocks are not."""
    case = tiny.build(family, frames=4)
    patched = _adaptive(tp, core, case.patcher, mass_threshold=0.5, dense_blocks=1)
    tiny.sample(case, model=patched, steps=2)
    record = last_run(patched)
    assert record["dense_blocks"] == [0] and record["measured_blocks"] == list(range(1, blocks))
    assert record["heads"] == 2 * (blocks - 1)


class _Call:
    """The parts of an AttentionCall the node's handler reads; ``next()`` is the dense attention."""

    def __init__(self, q, k, v, mask=None):
        self.q, self.k, self.v, self.mask, self.options, self.backend = q, k, v, mask, {}, "auto"
        self.query_length, self.key_length = q.shape[2], k.shape[2]
        self.nexts = 0

    def next(self, q=None, k=None, v=None, mask=None):
        self.nexts += 1
        q, k, v, mask = (self.q, self.k, self.v, self.mask) if q is None else (q, k, v, mask)
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)


@pytest.mark.parametrize("case", ["not a full grid", "mask per query"])
def test_calls_the_patterns_cannot_serve_stay_dense_with_one_log_line(comfy_rt, tiny, tp, core, caplog, case):
    """LTX-Video keyframe conditioning drops video tokens (no full grid); a mask that differs per query: such calls
    run dense through the chain, one log line per run, no error, nothing measured."""
    token_layout = comfy_rt.pack_module("nodes.integration.token_layout")
    wan = _wan(tiny)
    settings = core.TemporalPruneSettings(mode="adaptive", start_percent=0.0, dense_blocks=0, mass_threshold=0.5)
    state = tp._RunState(settings, "ltxv", wan.patcher.get_model_object("model_sampling"), None)
    frames, height, width = 4, 4, 6
    video = frames * height * width
    mask = None
    if case == "not a full grid":
        ids = (torch.arange(video) // (height * width))[height * width // 2:]  # half a frame dropped
        layout = token_layout.TokenLayout(frames, height, width, video_ids=ids)
    else:
        ids, layout = None, token_layout.TokenLayout(frames, height, width)
        mask = torch.rand(1, 1, video, video) > 0.1
    length = layout.video_tokens
    q, k, v = torch.randn(3, 1, 2, length, 8, generator=torch.Generator().manual_seed(0)).unbind(0)
    state.run.begin_forward(0.5)
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            state.call = token_layout.ModelCall(layout)
            call = _Call(q, k, v, None if mask is None else mask[..., :length, :length])
            assert torch.equal(state.attention(call), call.next()) and call.nexts == 2
    assert len([m for m in _freeaccel_log(caplog) if "stays dense" in m]) == 1
    assert state.run.summary()["measured_blocks"] == []


def test_separate_cond_and_uncond_calls_decide_once_per_block(comfy_rt, tiny, tp, core, last_run, monkeypatch,
                                                             tmp_path):
    """With cond and uncond as separate model calls, the first call of the deciding step measures each block and
    the second reuses its patterns: one decision per block, the sampler's step count, and the same output as a
    run loading those patterns."""
    from devtools.harness.compat import run_cond_and_uncond_separately
    run_cond_and_uncond_separately(monkeypatch)
    case = _wan(tiny)
    path = tmp_path / "split.json"
    patched = _adaptive(tp, core, case.patcher, mass_threshold=0.5, pattern_file=str(path))
    first = tiny.sample(case, model=patched, steps=STEPS)
    record = last_run(patched)
    assert record["steps"] == STEPS and record["measured_blocks"] == [0, 1, 2, 3]
    loaded = _adaptive(tp, core, case.patcher, mass_threshold=0.5, pattern_file=str(path))
    assert torch.equal(tiny.sample(case, model=loaded, steps=STEPS), first)
    assert last_run(loaded)["source"] == "file"
