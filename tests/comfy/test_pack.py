"""The pack inside a real ComfyUI: loading, registration, FreeAccel_AttentionBackend, and no patch left behind."""
import asyncio
import logging
import os

import pytest
import torch

EXPECTED_NODES = {"FreeAccel_AttentionBackend", "FreeAccel_AdaCache", "FreeAccel_TokenPrune",
                  "FreeAccel_TemporalAttnPrune", "FreeAccel_LocalWindowAttention", "FreeAccel_MotionTransferGuider"}


def test_every_node_id_is_registered(comfy_rt):
    import nodes
    assert set(comfy_rt.node_ids) == EXPECTED_NODES
    for node_id in comfy_rt.node_ids:
        assert node_id.startswith("FreeAccel_")
        schema = nodes.NODE_CLASS_MAPPINGS[node_id].GET_SCHEMA()
        assert schema.category.startswith("FreeAccel/")
        missing = [i.id for i in schema.inputs if not i.tooltip]
        assert not missing, f"{node_id}: inputs without a tooltip: {missing}"


def test_loading_the_pack_logs_no_warning(comfy_rt, caplog):
    """Load the pack a second time under another folder name through ComfyUI's loader and watch its log."""
    import nodes
    link = os.path.join(comfy_rt.base_dir, "custom_nodes", "freeaccel_reload_check")
    if not os.path.islink(link):
        os.symlink(os.path.realpath(os.path.join(comfy_rt.base_dir, "custom_nodes", "freeaccel")), link)
    with caplog.at_level(logging.WARNING):
        loaded = asyncio.run(nodes.load_custom_node(link, ignore=set(nodes.NODE_CLASS_MAPPINGS)))
    assert loaded
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def _backend_node(comfy_rt):
    return comfy_rt.node_class("FreeAccel_AttentionBackend")


@pytest.mark.parametrize("family", ["wan21", "flux", "sd15"])
def test_sdpa_backend_matches_comfy_attention(comfy_rt, tiny, family):
    case = tiny.build(family)
    reference = tiny.sample(case, steps=3, cfg=3.0)
    patched = _backend_node(comfy_rt).execute(case.patcher, "sdpa").result[0]
    out = tiny.sample(case, model=patched, steps=3, cfg=3.0)
    assert out.shape == reference.shape
    # Random tiny models produce latents in the hundreds (SD1.5's sigma_max is ~14.6), where one fp32 ulp is ~3e-5,
    # so "within 1e-4" is measured relative to the output's peak magnitude.
    error = ((out - reference).abs().max() / reference.abs().max()).item()
    assert error < 1e-4, error


@pytest.mark.parametrize("family", ["wan21", "flux", "sd15"])
def test_sdpa_backend_is_actually_used(comfy_rt, tiny, family, monkeypatch):
    attention_module = comfy_rt.pack_module("kernels.attention")
    calls = []
    original = attention_module.attention

    def counting(*args, **kwargs):
        calls.append(kwargs.get("backend"))
        return original(*args, **kwargs)

    monkeypatch.setattr(comfy_rt.pack_module("nodes.integration.attention"), "attention", counting)
    case = tiny.build(family)
    patched = _backend_node(comfy_rt).execute(case.patcher, "sdpa").result[0]
    tiny.sample(case, model=patched, steps=1, cfg=3.0)
    assert calls and set(calls) == {"sdpa"}


def test_comfy_default_removes_the_backend_choice(comfy_rt, tiny):
    node = _backend_node(comfy_rt)
    case = tiny.build("wan21")
    sdpa = node.execute(case.patcher, "sdpa").result[0]
    back = node.execute(sdpa, "comfy_default").result[0]
    options = back.model_options["transformer_options"]
    assert "freeaccel_attention_backend" not in options
    assert torch.equal(tiny.sample(case, model=back, steps=2), tiny.sample(case, steps=2))


def test_unavailable_backend_fails_validation_naming_installed_ones(comfy_rt):
    message = _backend_node(comfy_rt).validate_inputs(backend="xformers")
    if torch.cuda.is_available() and message is True:
        pytest.skip("xformers is usable here")
    assert isinstance(message, str)
    assert "xformers" in message and "sdpa" in message


def test_available_backends_pass_validation(comfy_rt):
    node = _backend_node(comfy_rt)
    for backend in ("auto", "sdpa", "comfy_default"):
        assert node.validate_inputs(backend=backend) is True


def test_validation_runs_at_prompt_time(comfy_rt):
    prompt = {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": "missing.safetensors",
                                                           "weight_dtype": "default"}},
              "2": {"class_type": "FreeAccel_AttentionBackend", "inputs": {"model": ["1", 0], "backend": "sage"}},
              "3": {"class_type": "ModelSave", "inputs": {"model": ["2", 0], "filename_prefix": "x"}}}
    if torch.cuda.is_available():
        pytest.skip("sage may be installed on CUDA machines")
    with pytest.raises(RuntimeError, match="sage"):
        comfy_rt.execute(prompt)


@pytest.mark.parametrize("family", ["wan21", "flux", "sd15"])
def test_nothing_stays_patched_after_a_run(comfy_rt, tiny, family):
    case = tiny.build(family)
    before = tiny.sample(case, steps=2)
    patched = _backend_node(comfy_rt).execute(case.patcher, "sdpa").result[0]
    tiny.sample(case, model=patched, steps=2)
    assert "optimized_attention_override" not in case.patcher.model_options.get("transformer_options", {})
    after = tiny.sample(case, steps=2)
    assert torch.equal(before, after)


def test_override_chain_accepts_ltxv_positional_mask(comfy_rt, tiny):
    """LTXV's masked cross-attention passes the mask as the 5th positional argument."""
    case = tiny.build("ltxv")
    reference = tiny.sample(case, steps=2)
    patched = _backend_node(comfy_rt).execute(case.patcher, "sdpa").result[0]
    out = tiny.sample(case, model=patched, steps=2)
    error = ((out - reference).abs().max() / reference.abs().max()).item()
    assert error < 1e-4, error


def test_a_node_module_that_fails_to_import_leaves_the_others_loaded(comfy_rt, caplog):
    pack_nodes = comfy_rt.pack_module("nodes")
    with caplog.at_level(logging.ERROR):
        loaded = pack_nodes.load_nodes(("adacache", "renamed_by_a_comfyui_update", "attention_backend"))
    assert [node.GET_SCHEMA().node_id for node in loaded] == ["FreeAccel_AdaCache", "FreeAccel_AttentionBackend"]
    assert "the nodes of renamed_by_a_comfyui_update could not be loaded" in caplog.text
    assert "ModuleNotFoundError" in caplog.text  # the traceback says why


def test_technique_nodes_are_experimental_until_measured_on_real_weights(comfy_rt):
    for node_id in EXPECTED_NODES - {"FreeAccel_AttentionBackend"}:
        assert comfy_rt.node_class(node_id).GET_SCHEMA().is_experimental, node_id
    assert not comfy_rt.node_class("FreeAccel_AttentionBackend").GET_SCHEMA().is_experimental
