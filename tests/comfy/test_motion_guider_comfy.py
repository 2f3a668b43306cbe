"""FreeAccel_MotionTransferGuider on real ComfyUI model classes (tiny, CPU), and both motion-transfer workflow nodes
through ComfyUI's executor."""
import pytest
import torch

from bench.variants.motion_transfer import moving_reference

STEPS = 3
FRAMES = 5


@pytest.fixture(scope="module")
def guider_node(comfy_rt):
    return comfy_rt.pack_module("nodes.motion_guider")


def _guider(comfy_rt, case, reference, mode="fastvmt", guided_steps=1, iterations=4, cfg=3.0, **overrides):
    settings = comfy_rt.pack_module("accel_core.motion_transfer").MotionTransferSettings(
        cfg=cfg, mode=mode, guided_steps=guided_steps, iterations=iterations, **overrides)
    return comfy_rt.pack_module("nodes.motion_guider").motion_transfer_guider(
        case.patcher, case.positive, case.negative, {"samples": reference}, settings)


def _count_forwards(model):
    """Clone of model counting its diffusion-model calls (APPLY_MODEL wrapper)."""
    import comfy.patcher_extension
    counted = model.clone()
    calls = []

    def wrapper(executor, *args, **kwargs):
        calls.append(1)
        return executor(*args, **kwargs)
    counted.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, "test_count", wrapper)
    return counted, calls


def _sample_custom_advanced(comfy_rt, guider, latent, steps=STEPS, denoise=0.75, seed=0):
    """What SamplerCustomAdvanced does with RandomNoise + KSamplerSelect(euler) + BasicScheduler(simple, denoise)."""
    import comfy.samplers
    from comfy_extras import nodes_custom_sampler as custom
    sigmas = custom.BasicScheduler.execute(guider.model_patcher, "simple", steps, denoise).args[0]
    sampler = comfy.samplers.sampler_object("euler")
    noise = custom.Noise_RandomNoise(seed)
    with torch.inference_mode():  # as ComfyUI's executor runs nodes
        out = custom.SamplerCustomAdvanced.execute(noise, guider, sampler, sigmas, {"samples": latent}).args[0]
    return out["samples"]


def test_guided_steps_zero_is_core_cfg_guider(comfy_rt, tiny):
    import comfy.samplers
    case = tiny.build("wan21", frames=FRAMES)
    reference = moving_reference(case.latent.shape)
    core = comfy.samplers.CFGGuider(case.patcher)
    core.set_conds(case.positive, case.negative)
    core.set_cfg(3.0)
    expected = _sample_custom_advanced(comfy_rt, core, reference)
    guider = _guider(comfy_rt, case, reference, guided_steps=0)
    assert torch.equal(_sample_custom_advanced(comfy_rt, guider, reference), expected)


@pytest.mark.parametrize("mode, forwards_per_step", [("fastvmt", 1 + 4), ("ditflow", 1 + 10)])
def test_guidance_lowers_amf_loss_and_counts_model_calls(comfy_rt, tiny, mode, forwards_per_step):
    case = tiny.build("wan21", frames=FRAMES)
    reference = moving_reference(case.latent.shape)
    counted, forwards = _count_forwards(case.patcher)
    case.patcher = counted
    flags = [p.requires_grad for p in counted.model.parameters()]
    plain = _sample_custom_advanced(comfy_rt, _guider(comfy_rt, case, reference, guided_steps=0), reference)
    denoising = len(forwards)
    forwards.clear()
    guider = _guider(comfy_rt, case, reference, mode=mode, guided_steps=2, iterations=10, lr_start=0.05,
                     lr_end=0.05)
    out = _sample_custom_advanced(comfy_rt, guider, reference)
    assert len(forwards) == denoising + 2 * forwards_per_step  # one reference pass + the real iterations, per step
    assert len(guider.loss_history) == 2
    for losses in guider.loss_history:
        assert len(losses) == forwards_per_step - 1
        assert losses[-1] < losses[0]
    assert out.shape == plain.shape and not out.requires_grad and not torch.equal(out, plain)
    assert [p.requires_grad for p in counted.model.parameters()] == flags  # untouched
    assert all(p.grad is None for p in counted.model.parameters())  # only the latent was differentiated


def test_guidance_with_inference_mode_weights(comfy_rt, tiny, guider_node):
    """Weights loaded inside ComfyUI's executor are inference tensors; guidance must still backpropagate and leave
    the layers as they were."""
    with torch.inference_mode():
        case = tiny.build("wan21", frames=FRAMES)
    assert next(case.patcher.model.parameters()).is_inference()
    reference = moving_reference(case.latent.shape)
    guider = _guider(comfy_rt, case, reference, guided_steps=1, iterations=4)
    _sample_custom_advanced(comfy_rt, guider, reference)
    assert len(guider.loss_history) == 1 and len(guider.loss_history[0]) == 2
    for layer in case.patcher.model.modules():  # the temporary identity weight/bias functions are gone
        assert guider_node._same not in getattr(layer, "weight_function", ())
        assert guider_node._same not in getattr(layer, "bias_function", ())


@pytest.mark.parametrize("change, message", [
    (lambda r: r[:, :, :-1], "has 4 frames but the sampled latent has 5"),
    (lambda r: r[..., :-2], "is 12x14 but the sampled latent is 12x16"),
    (lambda r: torch.cat([r, r], dim=1), "has 32 channels but the model samples 16"),
])
def test_reference_mismatch_says_what_to_fix(comfy_rt, tiny, change, message):
    case = tiny.build("wan21", frames=FRAMES)
    reference = moving_reference(case.latent.shape)
    guider = _guider(comfy_rt, case, change(reference))
    with pytest.raises(ValueError, match=message):
        _sample_custom_advanced(comfy_rt, guider, reference)


def test_guider_rejects_non_wan_and_image_latents(comfy_rt, tiny):
    case = tiny.build("wan21", frames=FRAMES)
    with pytest.raises(ValueError, match="must be a video latent"):
        _guider(comfy_rt, case, torch.zeros(1, 16, 12, 16))
    hunyuan = tiny.build("hunyuan_video", frames=FRAMES)
    with pytest.raises(ValueError, match="supported families: WAN 2.1 / 2.2"):
        _guider(comfy_rt, hunyuan, torch.zeros_like(hunyuan.latent))


def test_guider_validation_message(comfy_rt):
    node = comfy_rt.node_class("FreeAccel_MotionTransferGuider")
    assert "learning rates must be positive" in node.validate_inputs(lr_start=0.0, lr_end=0.002)
    assert "mode must be one of fastvmt, ditflow" in node.validate_inputs(mode="fast")
    assert "recompute_every must be at least 1" in node.validate_inputs(recompute_every=0)
    assert node.validate_inputs(lr_start=0.003, lr_end=0.002) is True


def test_guider_rejects_invalid_settings(comfy_rt, tiny):
    case = tiny.build("wan21", frames=FRAMES)
    with pytest.raises(ValueError, match=r"Motion Transfer Guider \(FastVMT\): iterations must be at least 1"):
        _guider(comfy_rt, case, moving_reference(case.latent.shape), iterations=0)


def test_node_schema_defaults_are_the_settings_defaults(comfy_rt):
    defaults = comfy_rt.pack_module("accel_core.motion_transfer").MotionTransferSettings()
    schema = comfy_rt.node_class("FreeAccel_MotionTransferGuider").GET_SCHEMA()
    widgets = {i.id: i.default for i in schema.inputs if i.id not in ("model", "positive", "negative", "reference",
                                                                       "reference_conditioning")}
    assert widgets == vars(defaults)


# ---------------------------------------------------------------------------------------------------------------
# Through ComfyUI's executor (UNETLoader weights are inference tensors there; validate_inputs runs at prompt time)


def _graph(file_name, text_dim, guided_steps, window=True):
    guider_model = ["5", 0] if window else ["1", 0]
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": file_name, "weight_dtype": "default"}},
        "2": {"class_type": "FreeAccelBench_TinyConditioning",
              "inputs": {"text": "a fox", "tokens": 16, "dim": text_dim, "pooled_dim": 0}},
        "3": {"class_type": "FreeAccelBench_TinyConditioning",
              "inputs": {"text": "blurry", "tokens": 16, "dim": text_dim, "pooled_dim": 0}},
        "4": {"class_type": "EmptyHunyuanLatentVideo",
              "inputs": {"width": 128, "height": 96, "length": 17, "batch_size": 1}},
        "6": {"class_type": "FreeAccel_MotionTransferGuider",
              "inputs": {"model": guider_model, "positive": ["2", 0], "negative": ["3", 0], "cfg": 3.0,
                         "reference": ["4", 0], "mode": "fastvmt", "guided_steps": guided_steps, "iterations": 4,
                         "lr_start": 0.003, "lr_end": 0.002, "amf_block": 14, "temporal_span": 4,
                         "tile_height": 3, "tile_width": 4, "window_height": 21, "window_width": 21,
                         "recompute_every": 3}},
        "7": {"class_type": "RandomNoise", "inputs": {"noise_seed": 0}},
        "8": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "9": {"class_type": "BasicScheduler",
              "inputs": {"model": ["1", 0], "scheduler": "simple", "steps": STEPS, "denoise": 0.75}},
        "10": {"class_type": "SamplerCustomAdvanced",
               "inputs": {"noise": ["7", 0], "guider": ["6", 0], "sampler": ["8", 0], "sigmas": ["9", 0],
                          "latent_image": ["4", 0]}},
        "11": {"class_type": "FreeAccelBench_CaptureLatent", "inputs": {"samples": ["10", 0], "key": "motion"}},
    }
    if window:
        prompt["5"] = {"class_type": "FreeAccel_LocalWindowAttention",
                       "inputs": {"model": ["1", 0], "frames": 1, "height": 3, "width": 5, "start_block": 0,
                                  "end_block": -1, "start_percent": 0.0, "end_percent": 1.0,
                                  "implementation": "auto"}}
    return prompt


def test_both_nodes_run_through_the_executor(comfy_rt):
    from devtools.harness import tiny_nodes
    from devtools.harness import tiny_workflow
    tiny_nodes.register()
    file_name, path = tiny_workflow.tiny_model_file("wan21", comfy_rt.base_dir)
    text_dim, _ = tiny_workflow._text_widths("wan21", path)
    comfy_rt.execute(_graph(file_name, text_dim, guided_steps=1))
    guided = tiny_nodes.CAPTURED["motion"]
    comfy_rt.execute(_graph(file_name, text_dim, guided_steps=0))
    plain = tiny_nodes.CAPTURED["motion"]
    assert guided.shape == plain.shape == (1, 16, 5, 12, 16)
    assert torch.isfinite(guided).all() and not torch.equal(guided, plain)
    bad = _graph(file_name, text_dim, guided_steps=1)
    bad["5"]["inputs"]["start_percent"] = 0.9
    bad["5"]["inputs"]["end_percent"] = 0.1
    with pytest.raises(RuntimeError, match="must not exceed end_percent"):
        comfy_rt.execute(bad)
