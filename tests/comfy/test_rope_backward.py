"""The RoPE backward the motion guider needs exists only inside ``rope_backward()``: the gradient through
comfy_kitchen's fused op equals the pure-torch rotation's, and outside the block the op is forward-only again."""
import pytest
import torch


def _rotate(x, freqs):
    """The interleaved rotation in plain torch: each (even, odd) pair times its 2x2 matrix."""
    pairs = x.reshape(*x.shape[:-1], -1, 1, 2)
    return (freqs[..., 0] * pairs[..., 0] + freqs[..., 1] * pairs[..., 1]).reshape(x.shape)


def _kitchen_op():
    import comfy_kitchen  # noqa: F401 - registers torch.ops.comfy_kitchen
    return torch.ops.comfy_kitchen.apply_rope1


def test_gradient_inside_the_block_and_none_outside(comfy_rt):
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
