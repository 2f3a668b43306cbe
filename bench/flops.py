"""FLOP counting with torch's FlopCounterMode, including CPU attention.

torch's counter has formulas for the CUDA SDPA kernels but not for the fused CPU kernel that SDPA dispatches to on
this machine, so attention FLOPs would silently read as zero. Registering the same formula for the CPU op makes
attention-saving techniques measurable on CPU.
"""
import torch
from torch.utils.flop_counter import FlopCounterMode, register_flop_formula, sdpa_flop_count

_CPU_SDPA = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _register_once():
    try:
        register_flop_formula(_CPU_SDPA, get_raw=False)(_cpu_sdpa_flops)
    except RuntimeError as err:  # already registered (module imported under two names)
        if "already" not in str(err).lower():
            raise


_register_once()


def count_flops(fn, *args, **kwargs):
    """Run ``fn`` and return (its result, total FLOPs, FLOPs per aten op name)."""
    with FlopCounterMode(display=False) as counter:
        result = fn(*args, **kwargs)
    per_op = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return result, int(counter.get_total_flops()), per_op
