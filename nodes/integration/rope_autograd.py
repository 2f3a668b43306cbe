"""A backward for comfy_kitchen's fused RoPE op, which WAN calls when comfy_kitchen is installed, for the duration of
one differentiable forward.

The op is forward-only ("no autograd formula was registered"), so no gradient could reach a latent through WAN's
self-attention (the motion-transfer guider differentiates the model with respect to its latent). Inside
``rope_backward()`` a torch-function mode routes the op through a local autograd function whose forward is the op
itself (so no forward result changes) and whose backward is the transposed rotation. Nothing is registered with
torch: outside the block, and in other threads, the op is as comfy_kitchen made it.
"""
import contextlib
from typing import Any, Iterator, Optional

import torch
from torch.overrides import TorchFunctionMode


def _kitchen_rope() -> Optional[Any]:
    """comfy_kitchen's RoPE op, or None without comfy_kitchen (ComfyUI's pure-torch RoPE is differentiable)."""
    try:
        return torch.ops.comfy_kitchen.apply_rope1
    except (AttributeError, RuntimeError):
        return None


class _RopeWithBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(freqs)
        return _kitchen_rope()(x, freqs)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        # RoPE rotates each (even, odd) pair by a 2x2 matrix: the input gradient is the transposed rotation of grad
        freqs, = ctx.saved_tensors
        return _kitchen_rope()(grad.contiguous(), freqs.transpose(-1, -2)), None


class _RouteRope(TorchFunctionMode):
    def __init__(self, op: Any):
        super().__init__()
        self.calls = (op, op.default)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.calls:  # the mode is off inside this handler, so the op below is the plain one
            return _RopeWithBackward.apply(*args, **(kwargs or {}))
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def rope_backward() -> Iterator[None]:
    """Within the block, comfy_kitchen's RoPE op (if installed) backpropagates."""
    op = _kitchen_rope()
    if op is None:
        yield
        return
    with _RouteRope(op):
        yield
