"""The RoPE backward the motion guider needs exists only inside ``rope_backward()``: the gradient through
comfy_kitchen's fused op equals the pure-torch rotation's, and outside the block the op is forward-only again.

comfy_kitchen comes with ComfyUI's requirements from 0.8 on; without it (a 0.3.75 install) WAN's RoPE is plain torch
and the block changes nothing, which the second test checks instead (collected where comfy_kitchen is missing).
"""
import importlib.util

import pytest
import torch

HAS_KITCHEN = importlib.util.find_spec("comfy_kitchen") is not None


def _rotate(x, freqs):
    """The interleaved rotation in plain torch: each (even, odd) pair times its 2x2 matrix."""
    pairs = x.reshape(*x.shape[:-1], -1, 1, 2)
    return (freqs[..., 0] * pairs[..., 0] + freqs[..., 1] * pairs[..., 1]).reshape(x.shape)


def _kitchen_op():
    import comfy_kitchen  # noqa: F401 - registers torch.ops.comfy_kitchen
    return torch.ops.comfy_kitchen.apply_rope1


def _gradient_inside_the_block_and_none_outside(comfy_rt):
    rope = comfy_rt.pack_module("nodes.integration.rope_autograd")
    op = _kitchen_op()
    generator = torch.Generator().manual_seed(0)
    angles = torch.rand(1, 1, 6, 2, generator=generator) * 6.28
    cos, sin = angles.cos(), angles.sin()
    freqs = torch.stack((torch.stack((cos, -sin), -1), torch.stack((sin, cos), -1)), -2)  # [1, 1, 6, 2, 2, 2]
    with torch.inference_mode(False), torch.enable_grad():
        x = torch.randn(2, 1, 6, 4, generator=generator, requires_grad=True)
        weights = torch.randn(2, 1, 6, 4, generator=generator)
        with rope.rope_backward():
            out = op(x, freqs)
        (out * weights).sum().backward()
        reference = x.detach().clone().requires_grad_(True)
        expected = _rotate(reference, freqs)
        (expected * weights).sum().backward()
        assert torch.allclose(out, expected, atol=1e-6)
        assert torch.allclose(x.grad, reference.grad, atol=1e-6)
        outside = x.detach().clone().requires_grad_(True)
        with pytest.raises(RuntimeError):
            op(outside, freqs).sum().backward()  # nothing stayed registered


def _without_comfy_kitchen_the_block_changes_nothing(comfy_rt):
    rope = comfy_rt.pack_module("nodes.integration.rope_autograd")
    assert rope._kitchen_rope() is None
    with torch.inference_mode(False), torch.enable_grad():
        x = torch.randn(2, 3, requires_grad=True)
        with rope.rope_backward():
            y = torch.sin(x)
        y.sum().backward()
        assert torch.equal(x.grad, torch.cos(x.detach()))


if HAS_KITCHEN:
    test_gradient_inside_the_block_and_none_outside = _gradient_inside_the_block_and_none_outside
else:
    test_without_comfy_kitchen_the_block_changes_nothing = _without_comfy_kitchen_the_block_changes_nothing
