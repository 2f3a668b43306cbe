"""bench.trained.train_tiny against real ComfyUI: a few training steps of the tiny WAN 2.1 file model lower the loss, are
deterministic for a seed, and the saved file loads through UNETLoader and samples."""
import dataclasses
import json
import os

import pytest
import torch

from bench.trained import procedural

from bench.trained import train_tiny

# small latent (3 frames x 8 x 8 -> 48 tokens) so a training run takes seconds
SMALL = dict(frames=3, height=8, width=8, batch=4, lr=1e-3, warmup=5)


def _config(**changes):
    return train_tiny.TrainConfig(**{**SMALL, "steps": 25, **changes})


@pytest.fixture(scope="module")
def trained(comfy_rt):
    return train_tiny.train(_config(), progress=False)


def _diffusion_models_dir():
    import folder_paths
    return next(p for p in folder_paths.get_folder_paths("diffusion_models") if p.endswith("diffusion_models"))


def test_wan_rope_backpropagates_for_training(comfy_rt):
    import comfy.ldm.wan.model as wan
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 2, 8, generator=g, requires_grad=True)
    angle = torch.randn(1, 5, 1, 4, generator=g)
    cos, sin = torch.cos(angle), torch.sin(angle)
    freqs = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # [1, 5, 1, 4, 2, 2]
    with train_tiny.make_rope_differentiable():
        out = wan.apply_rope1(x, freqs)  # comfy_kitchen's op where installed, else ComfyUI's torch fallback
    pairs = x.detach().reshape(2, 5, 2, 4, 1, 2)
    expected = (freqs[..., 0] * pairs[..., 0] + freqs[..., 1] * pairs[..., 1]).reshape(x.shape)
    assert torch.allclose(out, expected, atol=1e-6)
    out.square().sum().backward()
    assert torch.allclose(x.grad, 2 * x.detach(), atol=1e-5)  # a rotation preserves the squared norm


def test_training_starts_from_zero_velocity(comfy_rt):
    """adaLN-Zero: zero timestep modulation and output layer, so the untrained model predicts velocity 0 (denoised
    = its input) whatever the input, and every parameter trains."""
    model = train_tiny.build_model(0)
    x = torch.randn(2, 16, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    context = torch.stack([procedural.prompt_embedding("fast"), procedural.uncond_embedding()])
    with torch.no_grad():
        denoised = model.apply_model(x, torch.tensor([0.7, 0.2]), c_crossattn=context)
    assert torch.equal(denoised, x)
    assert all(p.requires_grad for p in model.diffusion_model.parameters())


def test_training_lowers_the_loss(trained):
    _, losses, eval_before, eval_after = trained
    assert len(losses) == 25 and all(torch.isfinite(torch.tensor(losses)))
    # fixed held-out batch at fixed sigmas; training starts at the zero-velocity predictor (measured: 1.834 -> 1.666)
    assert eval_after < 0.95 * eval_before
    assert sum(losses[-5:]) < sum(losses[:5])


def test_training_is_deterministic_for_a_seed(comfy_rt):
    first = train_tiny.train(_config(steps=4), progress=False)[0].diffusion_model.state_dict()
    second = train_tiny.train(_config(steps=4), progress=False)[0].diffusion_model.state_dict()
    other = train_tiny.train(_config(steps=4, seed=1), progress=False)[0].diffusion_model.state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_training_batches_use_the_models_flow_matching_sigmas(trained):
    model = trained[0]
    clean, context, sigma, noise = train_tiny._training_batch(_config(batch=64), model, 0)
    assert clean.shape == (64, 16, 3, 8, 8) and noise.shape == clean.shape
    assert context.shape == (64, procedural.PROMPT_TOKENS, 4096)
    sampling = model.model_sampling
    assert float(sampling.sigma_max) == 1.0
    # default "uniform": sigma ~ U(0, 1], so the low, detail-forming sigmas get their share of training
    assert (sigma > 0).all() and (sigma <= 1).all() and 0.2 < (sigma < 0.3).float().mean() < 0.4
    # the loss is the velocity error: a prediction of exactly noise - clean would score 0
    noisy = sampling.noise_scaling(sigma, noise, clean)
    assert torch.allclose(sampling.calculate_denoised(sigma, noise - clean, noisy), clean, atol=1e-5)


def test_schedule_sigma_sampling_maps_the_same_draws_through_the_models_shift(trained):
    model = trained[0]
    sampling = model.model_sampling
    uniform = train_tiny._training_batch(_config(batch=64), model, 0)
    schedule = train_tiny._training_batch(_config(batch=64, sigma_sampling="schedule"), model, 0)
    assert all(torch.equal(a, b) for a, b in zip(uniform[:2] + uniform[3:], schedule[:2] + schedule[3:]))
    assert torch.allclose(schedule[2], sampling.sigma(uniform[2] * sampling.multiplier))
    shift = float(sampling.shift)
    assert shift == 8.0  # WAN 2.1: most schedule sigmas are high, as in sampling
    assert torch.allclose(schedule[2], shift * uniform[2] / (1 + (shift - 1) * uniform[2]))  # hand-computed shift
    assert (schedule[2] > 0.5).float().mean() > 0.7


def test_config_validation_and_hash(comfy_rt):
    with pytest.raises(ValueError, match="exactly one of steps and minutes"):
        train_tiny.TrainConfig()
    with pytest.raises(ValueError, match="exactly one of steps and minutes"):
        train_tiny.TrainConfig(steps=3, minutes=1.0)
    with pytest.raises(ValueError, match="not 'flux'"):
        train_tiny.TrainConfig(family="flux", steps=3)
    with pytest.raises(ValueError, match="sigma_sampling must be one of .* not 'cosine'"):
        train_tiny.TrainConfig(steps=3, sigma_sampling="cosine")
    assert train_tiny.config_hash(_config()) == train_tiny.config_hash(_config())
    assert train_tiny.config_hash(_config()) != train_tiny.config_hash(_config(seed=1))
    assert train_tiny.config_hash(_config()) != train_tiny.config_hash(_config(steps=26))
    assert train_tiny.config_hash(_config()) != train_tiny.config_hash(_config(sigma_sampling="schedule"))


def test_minutes_budget_becomes_a_step_count(comfy_rt):
    steps = train_tiny.calibrate_steps(train_tiny.TrainConfig(**SMALL, minutes=0.001))
    assert isinstance(steps, int) and steps >= 1


def test_saved_file_round_trips_through_unet_loader_and_is_cached(comfy_rt):
    import comfy.model_base
    import comfy.utils
    import nodes
    out_dir = _diffusion_models_dir()
    config = _config(steps=6)
    stem = os.path.join(out_dir, train_tiny.file_stem(config))
    produced = [stem + suffix for suffix in (".safetensors", ".json", "_loss.png")]
    try:
        result = train_tiny.trained_model_file(config, out_dir, progress=False)
        assert result.path == produced[0] and not result.cached and result.steps == 6
        assert all(os.path.isfile(path) for path in produced)
        with open(produced[1]) as f:
            record = json.load(f)
        assert record["steps"] == 6 and len(record["losses"]) == 6 and record["config"]["seed"] == 0

        (patcher,) = nodes.UNETLoader().load_unet(os.path.basename(result.path), "default")
        assert type(patcher.model) is comfy.model_base.WAN21
        assert type(patcher.model.model_config).__name__ == "WAN21_T2V"
        saved = comfy.utils.load_torch_file(result.path)
        loaded = patcher.model.diffusion_model.state_dict()
        assert loaded.keys() == saved.keys()
        assert all(torch.equal(loaded[k].float(), saved[k]) for k in saved)
        # the file holds the trained weights, not the initial ones
        fresh = train_tiny.build_model(config.seed).diffusion_model.state_dict()
        assert not all(torch.equal(fresh[k], saved[k]) for k in saved)

        clip = train_tiny.sample_class(patcher, "fast", steps=2, frames=3, height=8, width=8)
        assert clip.shape == (16, 3, 8, 8) and torch.isfinite(clip).all()

        again = train_tiny.trained_model_file(config, out_dir, progress=False)
        assert again.cached and again.path == result.path and again.losses == result.losses
        other = dataclasses.replace(config, seed=1)
        assert train_tiny.file_stem(other) != train_tiny.file_stem(config)
    finally:
        for path in produced:
            if os.path.exists(path):
                os.remove(path)
