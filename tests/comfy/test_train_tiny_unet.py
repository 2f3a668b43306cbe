"""bench.trained.train_tiny_unet against real ComfyUI: a few training steps of the tiny SD1.5- and SDXL-layout UNets
lower the eps loss, are deterministic for a seed, and the cached weights reload into a fresh model unchanged."""
import pytest
import torch

from bench.trained import train_tiny_unet

SMALL = dict(size=8, batch=4, warmup=5)


def _config(family, **changes):
    return train_tiny_unet.UnetTrainConfig(**{"family": family, **SMALL, "steps": 20, **changes})


def _weights(case):
    return {k: v.clone() for k, v in case.patcher.model.diffusion_model.state_dict().items()}


@pytest.mark.once_per_matrix
@pytest.mark.parametrize("family", train_tiny_unet.FAMILIES)
def test_training_lowers_the_loss_and_is_deterministic(comfy_rt, family):
    case, losses = train_tiny_unet.train(_config(family), progress=False)
    assert len(losses) == 20 and all(torch.isfinite(torch.tensor(losses)))
    # the zeroed output layer predicts zero noise first: loss ~ 1 (the noise's variance), then it falls
    assert losses[0] == pytest.approx(1.0, abs=0.1) and sum(losses[-5:]) < 0.9 * sum(losses[:5])
    again = _weights(train_tiny_unet.train(_config(family), progress=False)[0])
    other = _weights(train_tiny_unet.train(_config(family, seed=1), progress=False)[0])
    first = _weights(case)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_cached_weights_reload_unchanged(comfy_rt, tmp_path):
    config = _config("sdxl", steps=3)
    trained, record = train_tiny_unet.trained_case(config, str(tmp_path), progress=False)
    assert not record["cached"] and len(record["losses"]) == 3
    reloaded, again = train_tiny_unet.trained_case(config, str(tmp_path), progress=False)
    assert again["cached"] and again["losses"] == record["losses"]
    first, second = _weights(trained), _weights(reloaded)
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_class_conditioning_gives_each_class_its_prompt(comfy_rt):
    case = train_tiny_unet.build_case("sdxl", size=8)
    discs, uncond = train_tiny_unet.class_conditioning(case, "discs")
    squares, _ = train_tiny_unet.class_conditioning(case, "squares")
    assert discs[0][0].shape == (1, train_tiny_unet.PROMPT_TOKENS, case.positive[0][0].shape[-1])
    assert not torch.equal(discs[0][0], squares[0][0]) and not torch.equal(discs[0][0], uncond[0][0])
    assert torch.equal(discs[0][1]["pooled_output"], torch.zeros_like(case.positive[0][1]["pooled_output"]))
