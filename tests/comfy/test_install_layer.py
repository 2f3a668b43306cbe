"""The shared install layer (nodes/integration/install.py): a node applied twice equals the node applied once, bit
for bit, with one run record and one log line; every earlier install of a key is removed; two clones of one patched
model keep their own run records; the node order rule fails when the node runs, in the node's message style."""
import logging

import pytest
import torch

from bench.fingerprint import CASES

STEPS = 4
TWICE_CASES = [case for case in CASES if case[1] != "FreeAccel_MotionTransferGuider"]  # a GUIDER does not chain
TWICE_CASES.append(("temporal wan21 adaptive", "FreeAccel_TemporalAttnPrune", "wan21", {"frames": 5}, {"mode": "adaptive", "start_percent": 0.0, "mass_threshold": 0.5}))  # noqa: E501


def _node(node_id):
    import nodes
    return nodes.NODE_CLASS_MAPPINGS[node_id]


def _freeaccel_log(caplog):
    return [r.getMessage() for r in caplog.records if ".nodes" in r.name and r.levelno >= logging.INFO]


def _sample_logged(tiny, case, model, caplog):
    caplog.clear()
    with caplog.at_level(logging.INFO):
        out = tiny.sample(case, model=model, steps=STEPS)
    return out, _freeaccel_log(caplog)


@pytest.mark.parametrize("name,node_id,family,overrides,inputs", TWICE_CASES, ids=[c[0] for c in TWICE_CASES])
def test_node_applied_twice_equals_once(comfy_rt, tiny, caplog, name, node_id, family, overrides, inputs):
    node = _node(node_id)
    case = tiny.build(family, **overrides)
    once = node.execute(case.patcher, **inputs).result[0]
    twice = node.execute(node.execute(case.patcher, **inputs).result[0], **inputs).result[0]
    out_once, log_once = _sample_logged(tiny, case, once, caplog)
    out_twice, log_twice = _sample_logged(tiny, case, twice, caplog)
    assert torch.equal(out_once, out_twice)
    assert log_twice == log_once  # the run's log line(s) once, not once per application
    outer_sample = comfy_rt.pack_module("nodes.integration.run_state").OUTER_SAMPLE
    for key in {k for wrappers in twice.wrappers.values() for k in wrappers}:
        assert len(twice.get_wrappers(outer_sample, key)) == len(once.get_wrappers(outer_sample, key)) <= 1


def test_adacache_twice_with_other_settings_equals_the_second_alone(comfy_rt, tiny, caplog):
    """The second AdaCache replaces the first (it used to chain onto it and crash at the first step)."""
    adacache = comfy_rt.pack_module("nodes.adacache")
    settings = comfy_rt.pack_module("accel_core.adacache").AdaCacheSettings
    case = tiny.build("wan21")
    first = settings(preset="custom", custom_codebook="100.0:3")
    second = settings(preset="custom", custom_codebook="0.5:2,100.0:1")
    chained = adacache.apply_adacache(adacache.apply_adacache(case.patcher, first), second)
    alone = adacache.apply_adacache(case.patcher, second)
    out_chained, log_chained = _sample_logged(tiny, case, chained, caplog)
    out_alone, log_alone = _sample_logged(tiny, case, alone, caplog)
    assert torch.equal(out_chained, out_alone)
    assert log_chained == log_alone and len([m for m in log_alone if m.startswith("AdaCache: computed")]) == 1


def test_removal_leaves_the_model_as_it_was(comfy_rt, tiny):
    """Everything TemporalAttnPrune installs (wrappers, attention handler, run record) is found and removed."""
    install = comfy_rt.pack_module("nodes.integration.install")
    tp = comfy_rt.pack_module("nodes.temporal_prune")
    settings = comfy_rt.pack_module("accel_core.temporal_prune").TemporalPruneSettings
    case = tiny.build("wan21", frames=5)
    patched = tp.apply_temporal_prune(case.patcher, settings())
    assert install.owns(patched, tp.KEY) and not install.owns(case.patcher, tp.KEY)
    install.remove(patched, tp.KEY)
    assert not install.owns(patched, tp.KEY)
    assert torch.equal(tiny.sample(case, model=patched, steps=2), tiny.sample(case, steps=2))


def test_svd_object_patches_are_replaced_not_stacked(comfy_rt, tiny):
    tp = comfy_rt.pack_module("nodes.temporal_prune")
    settings = comfy_rt.pack_module("accel_core.temporal_prune").TemporalPruneSettings
    case = tiny.build("svd", frames=4)
    skip = tp.apply_temporal_prune(case.patcher, settings(mode="skip"))
    identity = tp.apply_temporal_prune(skip, settings(mode="identity"))
    alone = tp.apply_temporal_prune(case.patcher, settings(mode="identity"))
    assert identity.object_patches.keys() == alone.object_patches.keys()
    assert len(skip.object_patches) > len(alone.object_patches)


@pytest.mark.parametrize("module,settings_module,settings_class,family,overrides", [
    ("nodes.adacache", "accel_core.adacache", "AdaCacheSettings", "wan21", {}),
    ("nodes.temporal_prune", "accel_core.temporal_prune", "TemporalPruneSettings", "wan21", {"frames": 5}),
])
def test_two_clones_of_a_patched_model_keep_their_own_records(comfy_rt, tiny, module, settings_module,
                                                              settings_class, family, overrides):
    node = comfy_rt.pack_module(module)
    run_state = comfy_rt.pack_module("nodes.integration.run_state")
    settings = getattr(comfy_rt.pack_module(settings_module), settings_class)()
    case = tiny.build(family, **overrides)
    apply = next(getattr(node, name) for name in dir(node) if name.startswith("apply_"))
    patched = apply(case.patcher, settings)
    first, second = patched.clone(), patched.clone()
    tiny.sample(case, model=first, steps=3)
    tiny.sample(case, model=second, steps=5)
    record_first, record_second = run_state.last_run(first, node.KEY), run_state.last_run(second, node.KEY)
    assert record_first is not None and record_second is not None and record_first is not record_second
    assert run_state.last_run(patched, node.KEY) is None  # the patched model itself never ran
    if module == "nodes.adacache":
        assert (len(record_first.steps), len(record_second.steps)) == (3, 5)


def test_adacache_after_token_prune_fails_in_the_node_style(comfy_rt, tiny):
    adacache = comfy_rt.pack_module("nodes.adacache")
    token_prune = comfy_rt.pack_module("nodes.token_prune")
    case = tiny.build("flux")
    pruned = token_prune.apply_token_prune(case.patcher, comfy_rt.pack_module("accel_core.token_prune").PruneSettings())
    settings = comfy_rt.pack_module("accel_core.adacache").AdaCacheSettings()
    with pytest.raises(ValueError, match=r"^AdaCache \+ MoReg: must come before TokenPrune \(G-WPR / DSAP\) .*"
                                         r"connect loader -> AdaCache \+ MoReg -> TokenPrune \(G-WPR / DSAP\)$"):
        adacache.apply_adacache(pruned, settings)
    token_prune.apply_token_prune(adacache.apply_adacache(case.patcher, settings),
                                  comfy_rt.pack_module("accel_core.token_prune").PruneSettings())  # the right order


def test_install_errors_carry_the_node_name(comfy_rt, tiny):
    adacache = comfy_rt.pack_module("nodes.adacache")
    settings = comfy_rt.pack_module("accel_core.adacache").AdaCacheSettings
    case = tiny.build("flux")
    with pytest.raises(ValueError, match=r"^AdaCache \+ MoReg: MoReg measures motion between latent frames"):
        adacache.apply_adacache(case.patcher, settings(moreg=True))
    with pytest.raises(ValueError, match=r"^AdaCache \+ MoReg: metric_block 900 is out of range"):
        adacache.apply_adacache(case.patcher, settings(metric_block=900))
    with pytest.raises(ValueError, match=r"^AdaCache \+ MoReg: metric_block must be at most 1000, got 1001$"):
        adacache.apply_adacache(case.patcher, settings(metric_block=1001))
