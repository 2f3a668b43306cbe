"""A backward for comfy_kitchen's fused RoPE op, which WAN calls when comfy_kitchen is installed.

The op is forward-only ("no autograd formula was registered"), so no gradient could reach a latent through WAN's
self-attention (the motion-transfer guider differentiates the model with respect to its latent). Registering the
formula changes no forward result.
"""
import torch

_ready = []  # [True] once comfy_kitchen's RoPE op is known to backpropagate


def _rope_backward(ctx, grad):
    # RoPE rotates each (even, odd) pair by a 2x2 matrix: the input gradient is the transposed rotation of grad
    return torch.ops.comfy_kitchen.apply_rope1(grad.contiguous(), ctx.freqs.transpose(-1, -2)), None


def _rope_setup_context(ctx, inputs, output):
    ctx.freqs = inputs[1]


def ensure_rope_backward():
    """Give comfy_kitchen's RoPE op the backward it lacks, once per process, and only if a probe shows the op cannot
    backpropagate (a later comfy_kitchen with its own formula is left alone)."""
    if _ready:
        return
    try:
        op = torch.ops.comfy_kitchen.apply_rope1
    except (AttributeError, RuntimeError):  # comfy_kitchen absent: ComfyUI's pure-torch RoPE is differentiable
        _ready.append(True)
        return
    with torch.inference_mode(False), torch.enable_grad():
        x = torch.ones(1, 1, 1, 2, requires_grad=True)
        try:
            op(x, torch.eye(2).reshape(1, 1, 1, 1, 2, 2)).sum().backward()
        except RuntimeError:
            torch.library.register_autograd("comfy_kitchen::apply_rope1", _rope_backward,
                                            setup_context=_rope_setup_context)
    _ready.append(True)
