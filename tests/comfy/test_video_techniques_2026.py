"""TemporalAttnPrune and LocalWindowAttention on the video DiTs of 2026 (issue 23): HunyuanVideo 1.5, the Wan 2.2
variants (Animate, S2V, HuMo with their reference / motion tokens after the video tokens; Fun Camera, WanDancer),
LTX-2 (the video stream only), CogVideoX ([text, video]) Kandinsky 5 video (video tokens only) and MiniMax H3 (the
video rows, last in its packed sequence). Collected per ComfyUI version like ``test_tiny_models_2026`` (a family runs
where ComfyUI has its class); where the family exists but its hooks need a newer ComfyUI (Wan 2.2 S2V on 0.3.75), the
refusal naming that version is what is tested.

Exactness: a window covering every token, pruning ratio 0 and adaptive patterns at mass threshold 1 are bit-identical
to the unpatched model; a small window, ratio 0.5 and within-frame head patterns change the output (so the joint
self-attention was found, never a silent no-op)."""
import pytest
import torch

from test_tiny_models_2026 import PRESENT, built, present_or_refused  # noqa: F401 (built: a fixture)

FAMILY = {"cogvideox_i2v": "cogvideox"}
VIDEO = [f for f in ("hunyuan_video15", "wan22_animate", "wan22_s2v", "wan21_humo", "wan22_camera", "wan22_wandancer",
                     "ltxav", "cogvideox", "cogvideox_i2v", "kandinsky5", "minimax_h3") if f in PRESENT]
STEPS = 3


def _tensors(latent):
    return list(latent.unbind()) if getattr(latent, "is_nested", False) else [latent]


def _equal(a, b):
    return all(torch.equal(x, y) for x, y in zip(_tensors(a), _tensors(b)))


def _window(comfy_rt, model, frames, height, width):
    settings = comfy_rt.pack_module("accel_core.local_window").LocalWindowSettings(frames=frames, height=height,
                                                                                   width=width)
    return comfy_rt.pack_module("nodes.local_window").apply_local_window(model, settings)


def _prune(comfy_rt, model, ratio):
    settings = comfy_rt.pack_module("accel_core.temporal_prune").TemporalPruneSettings(
        ratio=ratio, mode="identity", start_percent=0.0, calibration_steps=1)
    return comfy_rt.pack_module("nodes.temporal_prune").apply_temporal_prune(model, settings)


def _served_here(comfy_rt, case, technique):
    families = comfy_rt.pack_module("accel_core.families")
    compat = comfy_rt.pack_module("nodes.integration.compat")
    needed = families.minimum_comfyui(technique, FAMILY.get(case.family, case.family))
    if needed is None or compat.VERSION >= tuple(map(int, needed.split("."))):
        return True
    apply = _window if technique == "local_window" else _prune
    with pytest.raises(families.UnsupportedModelError, match=rf"needs ComfyUI >= {needed} \(this is "):
        apply(comfy_rt, case.patcher, *((1, 3, 3) if technique == "local_window" else (0.5,)))
    return False


@pytest.mark.parametrize("family", VIDEO)
def test_local_window_is_exact_when_it_covers_everything_and_acts_when_small(comfy_rt, tiny, built, family):
    case = built(family, frames=4)
    if not _served_here(comfy_rt, case, "local_window"):
        return
    install = comfy_rt.pack_module("nodes.integration.install")
    families = comfy_rt.pack_module("accel_core.families")
    base = tiny.sample(case, steps=STEPS)
    covering = _window(comfy_rt, case.patcher, 64, 1024, 1024)
    assert install.installed_hooks(covering, "freeaccel_local_window") == families.SUPPORT["local_window"][
        FAMILY.get(family, family)]
    assert _equal(tiny.sample(case, model=covering, steps=STEPS), base)
    small = tiny.sample(case, model=_window(comfy_rt, case.patcher, 0, 3, 3), steps=STEPS)
    assert all(torch.isfinite(t).all() for t in _tensors(small)) and not _equal(small, base)


@pytest.mark.parametrize("family", VIDEO)
def test_temporal_prune_ratio_zero_is_exact_and_half_prunes(comfy_rt, tiny, built, family):
    case = built(family, frames=4)
    if not _served_here(comfy_rt, case, "temporal_prune"):
        return
    last_run = comfy_rt.pack_module("nodes.integration.run_state").last_run
    base = tiny.sample(case, steps=STEPS)
    patched = _prune(comfy_rt, case.patcher, 0.0)
    assert _equal(tiny.sample(case, model=patched, steps=STEPS), base)
    units = last_run(patched, "freeaccel_temporal_prune")["units"]
    assert units > 0
    patched = _prune(comfy_rt, case.patcher, 0.5)
    assert not _equal(tiny.sample(case, model=patched, steps=STEPS), base)
    assert len(last_run(patched, "freeaccel_temporal_prune")["pruned"]) == units // 2
    assert _equal(tiny.sample(case, steps=STEPS), base)  # nothing left patched


def test_ltx2_windows_the_video_self_attention_only(comfy_rt, tiny, built, monkeypatch):
    """Every windowed attention call is the video stream's self-attention (4 x 6 x 8 tokens here); the audio
    self-attention and the audio <-> video cross-attentions pass through untouched. (Below ComfyUI 0.8.0, which
    has no LTX-2: the tiny builder's refusal.)"""
    case = present_or_refused(tiny, built, "ltxav", frames=4)
    if case is None:
        return
    node = comfy_rt.pack_module("nodes.local_window")
    queries = []
    original = node.local_window_attention

    def spy(q, k, v, *args, **kwargs):
        queries.append((q.shape[-2], k.shape[-2]))
        return original(q, k, v, *args, **kwargs)
    monkeypatch.setattr(node, "local_window_attention", spy)
    tiny.sample(case, model=_window(comfy_rt, case.patcher, 0, 3, 3), steps=1)
    video_tokens = 4 * 6 * 8
    assert queries and set(queries) == {(video_tokens, video_tokens)}


def test_minimax_h3_windows_the_video_rows_at_the_end_of_its_packed_sequence(comfy_rt, tiny, built, monkeypatch):
    """The window is placed on the video grid after every other row of the packed sequence (text, audio): its
    offset is the sequence length minus the 4 x 3 x 4 video rows. (Below ComfyUI 0.33.0: the builder's refusal.)"""
    case = present_or_refused(tiny, built, "minimax_h3", frames=4)
    if case is None:
        return
    node = comfy_rt.pack_module("nodes.local_window")
    grids = []
    original = node.local_window_attention

    def spy(q, k, v, grid, *args, **kwargs):
        grids.append((q.shape[-2], grid.offset, grid.frames, grid.height, grid.width))
        return original(q, k, v, grid, *args, **kwargs)
    monkeypatch.setattr(node, "local_window_attention", spy)
    tiny.sample(case, model=_window(comfy_rt, case.patcher, 0, 3, 3), steps=1)
    assert grids and all((length - offset, frames, height, width) == (48, 4, 3, 4)
                         for length, offset, frames, height, width in grids)
    assert all(offset > 0 for _, offset, *_ in grids)


def _adaptive(comfy_rt, model, pattern_file, mass_threshold):
    settings = comfy_rt.pack_module("accel_core.temporal_prune").TemporalPruneSettings(
        mode="adaptive", start_percent=0.0, dense_blocks=0, mass_threshold=mass_threshold,
        pattern_file=str(pattern_file))
    return comfy_rt.pack_module("nodes.temporal_prune").apply_temporal_prune(model, settings)


@pytest.mark.parametrize("family", VIDEO)
def test_adaptive_patterns_find_every_head_and_a_pattern_file_drives_them(comfy_rt, tiny, built, family, tmp_path):
    """Mass threshold 1 measures every head of the joint self-attention, keeps it dense (bit-identical) and writes
    the pattern file; the same file with every head set to within-frame attention is loaded, counted and changes
    the output (so the heads were found and the patterns applied, never a silent no-op)."""
    case = built(family, frames=4)
    if not _served_here(comfy_rt, case, "temporal_prune"):
        return
    last_run = comfy_rt.pack_module("nodes.integration.run_state").last_run
    table_class = comfy_rt.pack_module("accel_core.head_patterns").PatternTable
    base = tiny.sample(case, steps=STEPS)
    path = tmp_path / "patterns.json"
    measured = _adaptive(comfy_rt, case.patcher, path, 1.0)
    assert _equal(tiny.sample(case, model=measured, steps=STEPS), base)
    summary = last_run(measured, "freeaccel_temporal_prune")
    assert summary["source"] == "measured" and summary["decision_step"] == 1
    heads = summary["heads"]
    assert heads > 0 and summary["counts"]["dense"] == heads

    table = table_class.load(path)
    assert sum(len(patterns) for patterns in table.blocks.values()) == heads
    for block, patterns in list(table.blocks.items()):
        table.record(block, ["frame"] * len(patterns))
    table.save(path)
    loaded = _adaptive(comfy_rt, case.patcher, path, 1.0)
    out = tiny.sample(case, model=loaded, steps=STEPS)
    summary = last_run(loaded, "freeaccel_temporal_prune")
    assert summary["source"] == "file" and summary["mismatch"] is None
    assert summary["counts"]["frame"] == heads
    assert all(torch.isfinite(t).all() for t in _tensors(out)) and not _equal(out, base)
