"""accel_core.families.SUPPORT is data, checked against what each install really registers: every technique is
installed on a tiny model of every family it lists (and refused on the others), and the hooks found on the patched
clone are exactly the listed ones. The per-call hooks of TokenPrune's UNet stages are observed during a model call."""
import pytest

# accel_core family id -> (tiny model, build overrides)
TINY = {"wan": ("wan21", {"frames": 5}), "hunyuan_video": ("hunyuan_video", {"frames": 5}),
        "ltxv": ("ltxv", {"frames": 5}), "mochi": ("mochi", {"frames": 5}), "flux": ("flux", {}),
        "qwen_image": ("qwen_image", {}), "sd15": ("sd15", {}), "sdxl": ("sdxl", {}), "svd": ("svd", {"frames": 4})}
# technique -> (node module, settings module, settings class, settings overrides)
TECHNIQUES = {
    "attention_backend": ("nodes.attention_backend", "accel_core.attention_backend", "AttentionBackendSettings", {}),
    "adacache": ("nodes.adacache", "accel_core.adacache", "AdaCacheSettings", {}),
    "token_prune": ("nodes.token_prune", "accel_core.token_prune", "PruneSettings", {}),
    "temporal_prune": ("nodes.temporal_prune", "accel_core.temporal_prune", "TemporalPruneSettings", {}),
    "local_window": ("nodes.local_window", "accel_core.local_window", "LocalWindowSettings", {}),
    "motion_transfer": ("nodes.motion_guider", "accel_core.motion_transfer", "MotionTransferSettings",
                        {"guided_steps": 1}),
}


def _install(comfy_rt, tiny, technique, family):
    """(patched model, node module) of ``technique`` installed on the tiny model of ``family``."""
    module, settings_module, settings_class, overrides = TECHNIQUES[technique]
    node = comfy_rt.pack_module(module)
    settings = getattr(comfy_rt.pack_module(settings_module), settings_class)(**overrides)
    name, build = TINY[family]
    case = tiny.build(name, **build)
    if technique == "motion_transfer":
        guider = node.motion_transfer_guider(case.patcher, case.positive, case.negative, {"samples": case.latent},
                                             settings)
        return guider.model_patcher, node
    apply = next(getattr(node, attribute) for attribute in dir(node) if attribute.startswith("apply_"))
    return apply(case.patcher, settings), node


@pytest.mark.parametrize("technique,family", [(t, f) for t in TECHNIQUES for f in TINY])
def test_each_install_registers_what_the_support_table_says(comfy_rt, tiny, technique, family):
    families = comfy_rt.pack_module("accel_core.families")
    install = comfy_rt.pack_module("nodes.integration.install")
    listed = families.SUPPORT[technique].get(family)
    if listed is None:
        with pytest.raises(families.UnsupportedModelError, match="is not supported; supported families: "):
            _install(comfy_rt, tiny, technique, family)
        return
    patched, node = _install(comfy_rt, tiny, technique, family)
    per_call = {families.PER_CALL_MIDDLE_PATCH, families.PER_CALL_ATTENTION}
    assert install.installed_hooks(patched, node.KEY) == listed - per_call


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_token_prune_unet_per_call_hooks(comfy_rt, tiny, family):
    """A pruned stage's first block runs with TokenPrune's middle patch and attention handler in its options."""
    attention = comfy_rt.pack_module("nodes.integration.attention")
    token_prune = comfy_rt.pack_module("nodes.token_prune")
    families = comfy_rt.pack_module("accel_core.families")
    settings = comfy_rt.pack_module("accel_core.token_prune").PruneSettings(min_tokens=16, dsap=False)
    case = tiny.build(family)
    seen = set()

    def spy(call):
        if attention.has_attention_handler(call.options, token_prune.KEY):
            seen.add(families.PER_CALL_ATTENTION)
        if any(type(getattr(patch, "__self__", None)) is token_prune.StagePruner
               for patch in call.options.get("patches", {}).get("middle_patch", [])):
            seen.add(families.PER_CALL_MIDDLE_PATCH)
        return call.next()

    spied = attention.install_attention_override(case.patcher.clone(), spy)
    tiny.sample(case, model=token_prune.apply_token_prune(spied, settings), steps=1)
    assert seen == {families.PER_CALL_MIDDLE_PATCH, families.PER_CALL_ATTENTION} <= families.SUPPORT["token_prune"][
        family]


def test_supported_families_follow_the_adapters(comfy_rt):
    families = comfy_rt.pack_module("accel_core.families")
    adapters = comfy_rt.pack_module("nodes.integration.families").ADAPTERS
    dit_hosts = comfy_rt.pack_module("nodes.token_prune_dit").DIT_HOSTS
    stacks = {f for f, adapter in adapters.items() if adapter.stacks}
    video_dits = {f for f in stacks if adapters[f].token_layout is not None}
    assert set(families.SUPPORT["adacache"]) == stacks
    assert set(families.SUPPORT["local_window"]) == video_dits
    assert set(families.SUPPORT["temporal_prune"]) == video_dits | {"svd"}
    assert set(families.SUPPORT["token_prune"]) == set(dit_hosts) | {"sd15", "sdxl"}
    assert set(families.SUPPORT["attention_backend"]) == set(families.FAMILIES) - {"sd35"}
