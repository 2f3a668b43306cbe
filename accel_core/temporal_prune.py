"""F3-style pruning of redundant temporal attention (after Su et al., arXiv 2312.03459), host-agnostic.

The paper prunes temporal attention "when aggregate temporal attention values are ranked below a certain ratio"; its
exact aggregation is not public, so ours is stated here and in the README:

    aggregate(unit) = mean of the unit's samples; one sample per (calibration attention call, batch element, head
                      for a module unit, query frame i), valued at the mean over frame i's scored query tokens of
                      the softmax mass they place on keys of frames j != i.

A value near 0 means the unit already behaves per frame, so restricting it to its own frame changes little. Text
(non-video) keys take part in the softmax but count as no frame, so their mass is not "temporal". Units are ranked
over the whole model and the lowest ``floor(ratio * units)`` are pruned; ties go to the unit seen first. The pruned
set is computed once per sampling run, after ``calibration_steps`` computed steps starting at ``start_sigma``, and
stays frozen until the run ends.

Mode ``adaptive`` (DiTs) goes F3's way to the end: instead of pruning a fraction of the heads, every (block, head)
gets the cheapest pattern of ``accel_core.head_patterns`` (dense, within-frame, local window, temporal) that keeps
``mass_threshold`` of its attention, chosen inside the first computed step from ``start_percent`` on (no
calibration steps) and reused for the run, or loaded from a pattern file.
"""
import dataclasses
import math
from typing import Hashable, Optional

import torch

from . import head_patterns
from .settings import range_error, setting

WAIT, CALIBRATE, PRUNE = "wait", "calibrate", "prune"
# identity: a pruned unit attends within its own frame; skip: it is removed (module units: the whole temporal block);
# adaptive: per-head sparse patterns (DiTs only)
ADAPTIVE = "adaptive"
MODES = ("identity", "skip", ADAPTIVE)
_HEAD_FIELDS = {f.name: f for f in dataclasses.fields(head_patterns.HeadPatternSettings)}


def _adaptive(name, label=None):
    """A field of ``HeadPatternSettings`` (same default, range and tooltip), marked as the adaptive mode's."""
    field = _HEAD_FIELDS[name]
    spec = field.metadata["setting"]
    spec = dataclasses.replace(spec, tooltip="adaptive mode: " + spec.tooltip, label=label or spec.label,
                               optional=True)
    return dataclasses.field(default=field.default, metadata={"setting": spec})


@dataclasses.dataclass(frozen=True)
class TemporalPruneSettings:
    """The node's settings, in input order; ``error()`` is the one check behind prompt validation and
    ``apply_temporal_prune``."""
    ratio: float = setting(0.5, "Fraction of temporal attention units to prune (lowest cross-frame attention first). "
                                "0 only measures and logs, leaving the output unchanged.",
                           minimum=0.0, maximum=1.0, step=0.05)
    mode: str = setting(
        "identity", "identity: a pruned unit lets each frame attend only to itself (SVD: just the value and output "
                    "projections; DiTs: attention within each latent frame, text still visible). skip: SVD bypasses "
                    "the whole temporal block through its residual (the spatial/temporal mix still applies); on DiTs "
                    "the pruned head's output is dropped. adaptive (DiTs): no pruning ratio; every head gets the "
                    "cheapest of dense / within-frame / local window / temporal attention that keeps mass_threshold "
                    "of its attention, chosen inside the first step from start_percent (no calibration steps).",
        options=MODES)
    start_percent: float = setting(0.1, "Sampling progress at which calibration starts; steps before it run dense. "
                                        "adaptive: where the head patterns start (chosen in that first step).",
                                   minimum=0.0, maximum=1.0, step=0.01)
    calibration_steps: int = setting(
        2, "Computed steps (from start_percent) used to measure the units before the pruned set is frozen for the "
           "rest of the run. Recomputed on every run.", minimum=1, maximum=100, label="calib. steps", advanced=True)
    # adaptive mode only (added after the F3 inputs: saved workflows store widget values by position; optional
    # inputs, so API-format prompts saved before them still validate)
    mass_threshold: float = _adaptive("mass_threshold", label="mass threshold")
    dense_blocks: int = _adaptive("dense_blocks", label="dense blocks")
    window_frames: int = _adaptive("window_frames")
    window_height: int = _adaptive("window_height")
    window_width: int = _adaptive("window_width")
    temporal_size: int = _adaptive("temporal_size")
    rows_per_frame: int = _adaptive("rows_per_frame")
    pattern_file: str = setting(
        "", "adaptive mode: optional JSON file of the chosen head patterns (relative paths: in ComfyUI's output "
            "folder). Missing: the patterns measured in this run are written to it. Present: they are loaded and "
            "nothing is measured, unless the file was made with other pattern settings or on another latent size "
            "(then the run measures again, says so in the log and leaves the file as it is). Empty: no file.",
        label="pattern file", advanced=True, optional=True)

    def error(self) -> Optional[str]:
        """The message for invalid settings, or None when they are valid."""
        if not 0.0 <= self.ratio <= 1.0:
            return f"ratio must be between 0 and 1, got {self.ratio}"
        if self.mode not in MODES:
            return f"mode must be one of {', '.join(MODES)}, got {self.mode!r}"
        if not 0.0 <= self.start_percent <= 1.0:
            return f"start_percent must be between 0 and 1, got {self.start_percent}"
        if self.calibration_steps < 1:
            return f"calibration_steps must be at least 1, got {self.calibration_steps}"
        return range_error(self) or self.head_patterns.error()

    @property
    def head_patterns(self) -> "head_patterns.HeadPatternSettings":
        """The adaptive mode's settings (its ``start_percent`` is this node's)."""
        return head_patterns.HeadPatternSettings(**{name: getattr(self, name) for name in _HEAD_FIELDS})


def cross_frame_mass(mass: torch.Tensor) -> torch.Tensor:
    """[..., F, F] frame-pair mass (row i = query frame) -> [..., F]: each query frame's mass on other frames."""
    return mass.sum(dim=-1) - mass.diagonal(dim1=-2, dim2=-1)


def lowest_fraction(aggregates: dict, ratio: float) -> frozenset:
    """The ``floor(ratio * len)`` units with the lowest aggregate, as a frozenset; ties go to the earlier unit.

    aggregates: dict unit -> float, in the order the units were first seen.
    """
    count = math.floor(ratio * len(aggregates) + 1e-9)  # the epsilon keeps e.g. 0.3 * 10 from flooring to 2
    ranked = sorted(enumerate(aggregates.items()), key=lambda item: (item[1][1], item[0]))
    return frozenset(unit for _, (unit, _) in ranked[:count])


class TemporalScores:
    """Running mean of per-unit cross-frame mass (float64 sums, so batched and split cond/uncond agree)."""

    def __init__(self):
        self._sums = {}
        self._counts = {}

    def add(self, units: list, values: torch.Tensor) -> None:
        """values [..., len(units)]: samples of each unit's cross-frame mass (all leading entries weigh the same)."""
        if values.shape[-1] != len(units):
            raise ValueError(f"{values.shape[-1]} value columns for {len(units)} units")
        flat = values.detach().reshape(-1, len(units)).double()
        sums = flat.sum(dim=0).tolist()
        for unit, total in zip(units, sums):
            self._sums[unit] = self._sums.get(unit, 0.0) + total
            self._counts[unit] = self._counts.get(unit, 0) + flat.shape[0]

    def aggregates(self) -> dict:
        return {unit: self._sums[unit] / self._counts[unit] for unit in self._sums}


class CalibrationSchedule:
    """Phase of each computed step: WAIT before ``start_sigma``, then CALIBRATE for ``calibration_steps`` steps, then
    PRUNE. A step is one distinct sigma value seen by the model (cond and uncond calls of a step share it)."""

    def __init__(self, start_sigma, calibration_steps):
        self.start_sigma = float(start_sigma)
        self.calibration_steps = calibration_steps
        self._sigma = None
        self._phase = WAIT
        self._calibrated = 0

    @property
    def calibrated(self) -> int:
        """How many calibration steps have started so far."""
        return self._calibrated

    def phase(self, sigma: float) -> str:
        sigma = float(sigma)
        if sigma != self._sigma:
            self._sigma = sigma
            if sigma > self.start_sigma:
                self._phase = WAIT
            elif self._calibrated < self.calibration_steps:
                self._calibrated += 1
                self._phase = CALIBRATE
            else:
                self._phase = PRUNE
        return self._phase


class TemporalPruneRun:
    """State of one sampling run: schedule, scores, and the pruned set frozen at the first PRUNE step."""

    def __init__(self, ratio, start_sigma, calibration_steps):
        self.ratio = ratio
        self.schedule = CalibrationSchedule(start_sigma, calibration_steps)
        self.scores = TemporalScores()
        self.phase = WAIT
        self.pruned = None  # frozenset once frozen

    def begin_forward(self, sigma: float) -> None:
        """Call once per model call with its sigma; returns the phase for that call."""
        self.phase = self.schedule.phase(sigma)
        if self.phase == PRUNE and self.pruned is None:
            self.pruned = lowest_fraction(self.scores.aggregates(), self.ratio)
        return self.phase

    @property
    def calibrating(self) -> bool:
        return self.phase == CALIBRATE

    def is_pruned(self, unit: Hashable) -> bool:
        return self.phase == PRUNE and unit in self.pruned

    def summary(self) -> dict:
        aggregates = self.scores.aggregates()
        return {"aggregates": aggregates, "pruned": self.pruned if self.pruned is not None else frozenset(),
                "units": len(aggregates), "calibrated_steps": self.schedule.calibrated}


def frame_ids(prefix: int, frames: int, tokens_per_frame: int, suffix: int,
              device: Optional[torch.device] = None) -> torch.Tensor:
    """Frame index of each token of a sequence laid out as [prefix | frames x tokens_per_frame | suffix].

    Prefix and suffix tokens (reference latents, text) get -1: they belong to no frame.
    """
    video = torch.arange(frames * tokens_per_frame, device=device) // tokens_per_frame
    return torch.cat([torch.full((prefix,), -1, dtype=torch.long, device=device), video,
                      torch.full((suffix,), -1, dtype=torch.long, device=device)])


def sample_queries(frame_of_token: torch.Tensor, per_frame: int) -> torch.Tensor:
    """Up to ``per_frame`` evenly spaced query positions of every frame (deterministic), ascending, as a LongTensor.

    The same rows are chosen for every call with the same layout, so split and batched cond/uncond see equal samples.
    """
    chosen = []
    for frame in range(int(frame_of_token.max().item()) + 1):
        positions = torch.nonzero(frame_of_token == frame).flatten()
        count = min(per_frame, positions.numel())
        chosen.append(positions[(torch.arange(count, device=positions.device) * positions.numel()) // count])
    return torch.cat(chosen).sort().values
