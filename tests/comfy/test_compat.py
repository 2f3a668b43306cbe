"""The ComfyUI version differences of nodes/integration/compat.py, on whichever ComfyUI the suite runs against.

CI runs this file on ComfyUI 0.3.75 (WAN does not report its block there, the pack derives it) and developers on
0.8.x (WAN reports it): the same assertions hold on both, which is the point. Forcing the derived path on a new
ComfyUI must change nothing either.
"""
import pytest
import torch

STEPS = 3


@pytest.fixture(scope="module")
def compat(comfy_rt):
    return comfy_rt.pack_module("nodes.integration.compat")


@pytest.fixture(scope="module")
def tp(comfy_rt):
    return comfy_rt.pack_module("nodes.temporal_prune")


def test_version_is_read_from_comfyui(comfy_rt, compat):
    import comfyui_version
    assert compat.VERSION == compat.parse_version(comfyui_version.__version__)
    assert compat.VERSION >= compat.MINIMUM_VERSION
    assert compat.parse_version("0.3.75") == (0, 3, 75) and compat.parse_version("main") is None


def _wan_units(comfy_rt, tiny, tp, compat=None, monkeypatch=None):
    case = tiny.build("wan21", frames=5)
    if monkeypatch is not None:  # pretend to be a ComfyUI whose WAN does not report its block
        monkeypatch.setattr(compat, "VERSION", (0, 3, 75))
    settings = comfy_rt.pack_module("accel_core.temporal_prune").TemporalPruneSettings(
        ratio=0.5, mode="identity", start_percent=0.0, calibration_steps=1)
    patched = tp.apply_temporal_prune(case.patcher, settings)
    with torch.no_grad():
        out = tiny.sample(case, model=patched, steps=STEPS)
    summary = comfy_rt.pack_module("nodes.integration.run_state").last_run(patched, tp.KEY)
    return case, set(summary["aggregates"]), summary["pruned"], out


def test_wan_temporal_units_are_one_per_block_and_head(comfy_rt, tiny, tp):
    case, units, pruned, _ = _wan_units(comfy_rt, tiny, tp)
    model = case.patcher.model.diffusion_model
    assert units == {("double", block, 0, head)
                     for block in range(len(model.blocks)) for head in range(model.num_heads)}
    assert len(pruned) == len(units) // 2


def test_derived_block_info_equals_comfyuis_own(comfy_rt, tiny, tp, compat, monkeypatch):
    _, units, pruned, out = _wan_units(comfy_rt, tiny, tp)
    _, derived_units, derived_pruned, derived_out = _wan_units(comfy_rt, tiny, tp, compat, monkeypatch)
    assert derived_units == units and derived_pruned == pruned
    assert torch.equal(derived_out, out)


def test_block_info_is_derived_only_where_comfyui_lacks_it(comfy_rt, tiny, compat, monkeypatch):
    blocks = comfy_rt.pack_module("nodes.integration.blocks")
    case = tiny.build("wan21")
    count = len(case.patcher.model.diffusion_model.blocks)

    def reporters(model):
        return sum(blocks.has_block_replacement(model, "double_block", i, compat.BLOCK_INFO_OWNER)
                   for i in range(count))

    native = case.patcher.clone()
    compat.report_block_info(native, "wan")
    expected = 0 if compat.at_least(compat.WAN_BLOCK_INFO_SINCE) else count
    assert reporters(native) == expected
    monkeypatch.setattr(compat, "VERSION", (0, 3, 75))
    derived = case.patcher.clone()
    compat.report_block_info(derived, "wan")
    compat.report_block_info(derived, "wan")  # a second node on the same model adds no second reporter
    assert reporters(derived) == count
    assert len(blocks.dit_replacements(derived)) == count
    flux = tiny.build("flux").patcher.clone()
    compat.report_block_info(flux, "flux")  # Flux reports its blocks on every supported version
    assert reporters(flux) == 0


def test_block_info_reaches_the_attention_inside_each_wan_block(comfy_rt, tiny, compat, monkeypatch):
    attention = comfy_rt.pack_module("nodes.integration.attention")
    monkeypatch.setattr(compat, "VERSION", (0, 3, 75))
    case = tiny.build("wan21")
    seen = []

    def spy(call):
        seen.append((call.options["block_type"], call.options["block_index"], call.options["total_blocks"]))
        return call.next()

    patched = case.patcher.clone()
    compat.report_block_info(patched, "wan")
    attention.install_attention_override(patched, spy)
    with torch.no_grad():
        tiny.sample(case, model=patched, steps=1, cfg=1.0)
    count = len(case.patcher.model.diffusion_model.blocks)
    # self- and cross-attention per block, one model call
    assert seen == [("double", i, count) for i in range(count) for _ in range(2)]


def test_registry_metadata_names_the_minimum_version(comfy_rt, compat):
    import pathlib
    import tomllib
    pyproject = tomllib.loads((pathlib.Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert pyproject["tool"]["comfy"]["requires-comfyui"] == ">=" + compat.version_text(compat.MINIMUM_VERSION)
