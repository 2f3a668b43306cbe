"""FreeAccel_LocalWindowAttention on real ComfyUI model classes (tiny, CPU)."""
import pytest
import torch

STEPS = 3
FRAMES = 5
VIDEO_FAMILIES = ["wan21", "hunyuan_video", "ltxv", "mochi"]


@pytest.fixture(scope="module")
def window_node(comfy_rt):
    return comfy_rt.pack_module("nodes.local_window")


@pytest.fixture(scope="module")
def lw(comfy_rt):
    return comfy_rt.pack_module("kernels.local_window")


def _window(comfy_rt, model, frames, height, width, start_block=0, end_block=-1, start=0.0, end=1.0,
            implementation="gathered"):
    settings = comfy_rt.pack_module("accel_core.local_window").LocalWindowSettings(
        frames=frames, height=height, width=width, start_block=start_block, end_block=end_block,
        start_percent=start, end_percent=end, implementation=implementation)
    return comfy_rt.pack_module("nodes.local_window").apply_local_window(model, settings)


def _spy(monkeypatch, module, name):
    """The list that gets one entry per call of ``module.name`` from now on."""
    calls = []
    original = getattr(module, name)

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)
    monkeypatch.setattr(module, name, counting)
    return calls


def _dense_window(comfy_rt, model, lw, radii, layouts):
    """Clone of model whose joint self-attention uses the window as a dense boolean mask; ``layouts``: {joint
    sequence length: VideoLayout}."""
    adapter = comfy_rt.pack_module("nodes.integration.attention")
    attention = comfy_rt.pack_module("kernels.attention").attention
    masks = {}
    for length, layout in layouts.items():
        idx = torch.arange(length)
        masks[length] = lw.window_mask_mod(layout, radii)(0, 0, idx[:, None], idx[None, :])

    def dense_handler(call):
        mask = masks.get(call.query_length) if call.query_length == call.key_length else None
        if mask is None:  # cross-attention, HunyuanVideo's text refiner
            return call.next()
        return attention(call.q, call.k, call.v, backend="math", mask=mask)

    return adapter.install_attention_override(model.clone(), dense_handler)


@pytest.mark.parametrize("family", VIDEO_FAMILIES)
def test_window_covering_everything_is_bit_identical(comfy_rt, tiny, family):
    case = tiny.build(family, frames=FRAMES)
    base = tiny.sample(case, steps=STEPS)
    out = tiny.sample(case, model=_window(comfy_rt, case.patcher, 64, 1024, 1024), steps=STEPS)
    assert torch.equal(out, base)


@pytest.mark.parametrize("family", VIDEO_FAMILIES)
def test_small_window_changes_every_family(comfy_rt, tiny, family):
    case = tiny.build(family, frames=FRAMES)
    base = tiny.sample(case, steps=STEPS)
    out = tiny.sample(case, model=_window(comfy_rt, case.patcher, 0, 3, 3), steps=STEPS)
    assert out.shape == base.shape and torch.isfinite(out).all()
    assert not torch.equal(out, base)


def test_wan_window_equals_dense_masked_attention(comfy_rt, tiny, lw):
    """The patched model equals the same model whose self-attention uses a dense boolean window mask."""
    case = tiny.build("wan21", frames=FRAMES)
    layout = lw.VideoLayout(FRAMES, case.latent.shape[3] // 2, case.latent.shape[4] // 2)
    reference = _dense_window(comfy_rt, case.patcher, lw, lw.window_radii(1, 3, 5), {layout.video_len: layout})
    expected = tiny.sample(case, model=reference, steps=STEPS)
    out = tiny.sample(case, model=_window(comfy_rt, case.patcher, 1, 3, 5), steps=STEPS)
    assert (out - expected).abs().max().item() < 1e-4
    assert (out - tiny.sample(case, steps=STEPS)).abs().max().item() > 1e-3


def test_hunyuan_window_starts_after_the_i2v_reference_tokens(comfy_rt, tiny, lw):
    """HunyuanVideo I2V puts the reference latent's tokens first ([reference | video | text]): the window is placed
    on the video grid after them, and the reference and text tokens stay fully visible."""
    case = tiny.build("hunyuan_video", frames=FRAMES)
    _, channels, _, height, width = case.latent.shape
    start_image = torch.randn(1, channels, 1, height, width, generator=torch.Generator().manual_seed(3))
    case.positive[0][1]["ref_latent"] = start_image  # as HunyuanImageToVideo (guidance_type "custom") conditions
    grid = (FRAMES, height // 2, width // 2)
    plane, text = grid[1] * grid[2], case.positive[0][0].shape[1]  # one reference frame: one plane of tokens
    radii = lw.window_radii(1, 3, 5)

    def dense(offset):  # the positive (with the reference) and the negative (without) run as separate calls
        layouts = {plane + FRAMES * plane + text: lw.VideoLayout(*grid, offset=offset),
                   FRAMES * plane + text: lw.VideoLayout(*grid)}
        return tiny.sample(case, model=_dense_window(comfy_rt, case.patcher, lw, radii, layouts), steps=STEPS)

    out = tiny.sample(case, model=_window(comfy_rt, case.patcher, 1, 3, 5), steps=STEPS)
    assert (out - dense(plane)).abs().max().item() < 1e-4
    assert (out - dense(0)).abs().max().item() > 1e-3  # a window from the sequence start (ignoring the prefix) differs


def test_block_and_step_ranges(comfy_rt, tiny, window_node, monkeypatch):
    calls = _spy(monkeypatch, window_node, "local_window_attention")
    forwards = _spy(monkeypatch, window_node, "call_sigma")  # once per model call, in the step range or not
    case = tiny.build("wan21", frames=FRAMES)

    tiny.sample(case, model=_window(comfy_rt, case.patcher, 0, 3, 3, start_block=1, end_block=2), steps=STEPS)
    assert len(calls) == 2 * len(forwards) and forwards  # blocks 1 and 2 of 4, every forward
    calls.clear(), forwards.clear()
    tiny.sample(case, model=_window(comfy_rt, case.patcher, 0, 3, 3, start_block=3), steps=STEPS)
    assert len(calls) == len(forwards)  # only the last block
    calls.clear(), forwards.clear()
    tiny.sample(case, model=_window(comfy_rt, case.patcher, 0, 3, 3, start=0.5), steps=STEPS)
    assert 0 < len(calls) < 4 * len(forwards)  # the early, high-sigma steps stay full
    calls.clear()
    tiny.sample(case, model=_window(comfy_rt, case.patcher, 0, 3, 3, start_block=50), steps=STEPS)
    assert not calls


def test_local_window_rejects_unsupported_family_and_settings(comfy_rt, tiny):
    case = tiny.build("flux")
    with pytest.raises(ValueError, match="supported families: WAN 2.1 / 2.2, HunyuanVideo, LTX-Video, Mochi"):
        _window(comfy_rt, case.patcher, 1, 3, 3)
    video = tiny.build("wan21", frames=FRAMES)
    with pytest.raises(ValueError, match=r"Local Window Attention: start_percent \(0.8\) must not exceed end_percent"):
        _window(comfy_rt, video.patcher, 1, 3, 3, start=0.8, end=0.2)


def test_local_window_validation_messages(comfy_rt):
    node = comfy_rt.node_class("FreeAccel_LocalWindowAttention")
    assert "must not exceed end_percent" in node.validate_inputs(start_percent=0.8, end_percent=0.2)
    assert "at least start_block (5)" in node.validate_inputs(start_block=5, end_block=2)
    assert "implementation must be one of" in node.validate_inputs(implementation="sparse")
    assert node.validate_inputs(start_block=2, end_block=-1, start_percent=0.0, end_percent=1.0) is True


def test_node_schema_defaults_are_the_settings_defaults(comfy_rt):
    defaults = comfy_rt.pack_module("accel_core.local_window").LocalWindowSettings()
    schema = comfy_rt.node_class("FreeAccel_LocalWindowAttention").GET_SCHEMA()
    assert {i.id: i.default for i in schema.inputs if i.id != "model"} == vars(defaults)
