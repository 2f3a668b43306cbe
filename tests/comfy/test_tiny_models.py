"""The tiny real-class models every ComfyUI test builds on: each family builds, samples with CFG, is deterministic,
and the UNETLoader files are detected as the right models."""
import pytest
import torch

FAMILIES = ("wan21", "wan22", "hunyuan_video", "ltxv", "mochi", "flux", "qwen_image", "sd15", "sdxl", "svd")
VIDEO_FAMILIES = ("wan21", "wan22", "hunyuan_video", "ltxv", "mochi", "svd")

# family -> (comfy.model_base class, comfy.supported_models config class) that ComfyUI itself would pick
EXPECTED_CLASSES = {
    "wan21": ("WAN21", "WAN21_T2V"), "wan22": ("WAN22", "WAN22_T2V"),
    "hunyuan_video": ("HunyuanVideo", "HunyuanVideo"), "ltxv": ("LTXV", "LTXV"),
    "mochi": ("GenmoMochi", "GenmoMochi"), "flux": ("Flux", "Flux"), "qwen_image": ("QwenImage", "QwenImage"),
    "sd15": ("BaseModel", "SD15"), "sdxl": ("SDXL", "SDXL"), "svd": ("SVD_img2vid", "SVD_img2vid"),
}


def record_model_calls(patcher):
    """A clone whose APPLY_MODEL wrapper logs (sigma, cond_or_uncond, timestep shape) of every model call."""
    import comfy.patcher_extension
    calls = []

    def wrapper(executor, x, t, *args, **kwargs):
        options = args[3] if len(args) > 3 else kwargs["transformer_options"]
        calls.append((float(t[0]), tuple(options["cond_or_uncond"]), tuple(t.shape)))
        return executor(x, t, *args, **kwargs)

    model = patcher.clone()
    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, "test_record", wrapper)
    return model, calls


def test_family_list_matches_the_module(tiny):
    assert tiny.FAMILIES == FAMILIES


@pytest.mark.parametrize("family", FAMILIES)
def test_family_samples_with_cfg_deterministically(tiny, family):
    case = tiny.build(family)
    model_class, config_class = EXPECTED_CLASSES[family]
    assert type(case.patcher.model).__name__ == model_class
    assert type(case.patcher.model.model_config).__name__ == config_class
    assert case.family == family

    model, calls = record_model_calls(case.patcher)
    out = tiny.sample(case, model=model, steps=4, cfg=3.0, seed=7)
    assert out.shape == case.latent.shape
    assert torch.isfinite(out).all()
    assert out.abs().max() > 0
    # cfg > 1: every step evaluates the positive (0) and the negative (1) prompt
    sigmas = sorted({sigma for sigma, _, _ in calls}, reverse=True)
    assert len(sigmas) == 4
    for sigma in sigmas:
        assert sorted(c for s, conds, _ in calls if s == sigma for c in conds) == [0, 1]

    again = tiny.sample(tiny.build(family), steps=4, cfg=3.0, seed=7)
    assert torch.equal(out, again)


@pytest.mark.parametrize("family", ["wan21", "flux", "sd15"])
def test_weights_depend_only_on_the_seed(tiny, family):
    first = tiny.build(family, seed=3).patcher.model.diffusion_model.state_dict()
    second = tiny.build(family, seed=3).patcher.model.diffusion_model.state_dict()
    other = tiny.build(family, seed=4).patcher.model.diffusion_model.state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


@pytest.mark.parametrize("family", VIDEO_FAMILIES)
def test_video_families_take_longer_clips(tiny, family):
    case = tiny.build(family, frames=9)
    assert case.frames == 9
    frame_axis = 0 if family == "svd" else 2  # SVD keeps frames in the batch dimension
    assert case.latent.shape[frame_axis] == 9
    out = tiny.sample(case, steps=2)
    assert out.shape == case.latent.shape
    assert torch.isfinite(out).all()


def test_default_video_clip_has_a_middle_frame(tiny):
    assert tiny.DEFAULT_FRAMES >= 3
    assert tiny.build("mochi").latent.shape[2] == tiny.DEFAULT_FRAMES


def test_wan22_ti2v_keeps_the_start_frame_and_gets_a_timestep_per_frame(tiny):
    case = tiny.build("wan22", frames=4)
    assert case.latent.shape == (1, 48, 4, 12, 16)
    assert case.noise_mask[0, 0, :, 0, 0].tolist() == [0.0, 1.0, 1.0, 1.0]
    import comfy.patcher_extension
    timesteps = []

    def record_timestep(executor, x, timestep, *args, **kwargs):
        timesteps.append(timestep)
        return executor(x, timestep, *args, **kwargs)

    model = case.patcher.clone()
    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test_record", record_timestep)
    out = tiny.sample(case, model=model, steps=3)
    # model_base.WAN22 turns the noise mask into one timestep per latent frame (cond and uncond batched), 0 for
    # the given frame
    assert len(timesteps) == 3
    for timestep in timesteps:
        assert timestep.shape == (2, 4)
        assert timestep[:, 0].eq(0).all() and timestep[:, 1:].gt(0).all()
    torch.testing.assert_close(out[:, :, 0], case.latent[:, :, 0], rtol=0, atol=1e-5)
    assert not torch.allclose(out[:, :, 1:], case.latent[:, :, 1:])

    plain = tiny.build("wan22", ti2v=False)
    assert plain.noise_mask is None and not plain.latent.any()


def test_unknown_family_is_rejected(tiny):
    with pytest.raises(ValueError, match="unknown family 'sd3'"):
        tiny.build("sd3")


def test_wan21_file_loads_as_wan21_through_unet_loader_path(tiny, tmp_path):
    import comfy.model_base
    import comfy.sd
    import comfy.utils
    path = tiny.save_unet_file("wan21", str(tmp_path / "tiny_wan21.safetensors"))
    saved = comfy.utils.load_torch_file(path)
    patcher = comfy.sd.load_diffusion_model(path)
    assert type(patcher.model) is comfy.model_base.WAN21
    assert type(patcher.model.model_config).__name__ == "WAN21_T2V"
    config = patcher.model.model_config.unet_config
    assert (config["dim"], config["num_heads"], config["num_layers"], config["in_dim"]) == (256, 2, 4, 16)
    loaded = patcher.model.diffusion_model.state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[k].float(), saved[k].float()) for k in saved)

    case = tiny.build("wan21")  # same latent layout; the file's text input is 4096 wide
    case.patcher = patcher
    g = torch.Generator().manual_seed(0)
    case.positive = [[torch.randn(1, 8, 4096, generator=g), {}]]
    case.negative = [[torch.randn(1, 8, 4096, generator=g), {}]]
    out = tiny.sample(case, steps=2)
    assert out.shape == case.latent.shape and torch.isfinite(out).all()


def test_flux_file_is_detected_as_flux_dev(tiny, tmp_path):
    import comfy.model_base
    import comfy.sd
    path = tiny.save_unet_file("flux", str(tmp_path / "tiny_flux.safetensors"))
    patcher = comfy.sd.load_diffusion_model(path)
    assert type(patcher.model) is comfy.model_base.Flux
    assert type(patcher.model.model_config).__name__ == "Flux"
    config = patcher.model.model_config.unet_config
    assert (config["hidden_size"], config["depth"], config["depth_single_blocks"]) == (3072, 1, 1)
    assert config["guidance_embed"] is True and config["vec_in_dim"] == 768


def test_save_unet_file_rejects_other_families(tiny, tmp_path):
    with pytest.raises(ValueError, match="not 'sdxl'"):
        tiny.save_unet_file("sdxl", str(tmp_path / "x.safetensors"))
