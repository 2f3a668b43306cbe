"""Sampling-progress windows as sigmas.

Progress is global: ``model_sampling.percent_to_sigma`` maps a fraction of the whole noise range to a sigma, so a
KSamplerAdvanced segment or one of WAN 2.2's two samplers covers just the part of a window that falls in it (as
core EasyCache does). A window [start, end) includes its start and excludes its end.
"""
from typing import Any

import torch


class SigmaWindow:
    def __init__(self, model_sampling: Any, start_percent: float = 0.0, end_percent: float = 1.0):
        self.start_sigma = float(model_sampling.percent_to_sigma(start_percent))
        self.end_sigma = float(model_sampling.percent_to_sigma(end_percent))

    def contains(self, sigma: float) -> bool:
        return self.end_sigma < float(sigma) <= self.start_sigma


def call_sigma(timestep: torch.Tensor) -> float:
    """The sigma of a model call (ComfyUI passes one per batch entry; entries of one step agree)."""
    return float(timestep.reshape(-1).max())
