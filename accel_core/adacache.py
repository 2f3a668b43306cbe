"""AdaCache + MoReg: content-adaptive reuse of the whole transformer block stack (arXiv 2411.02397).

Host-agnostic (pure torch, no ComfyUI). A sampling run is driven step by step:

* ``AdaCacheRun.begin_step(step, cache_allowed)`` decides whether this step computes the block stack or reuses it.
* On a computed step the host reports, per conditioning chunk, the metric block's residual (``observe_metric``) and
  the block stack's residual (``store_residual``). On a skipped step it asks for ``cached_residual``.
* ``AdaCacheRun.end_step()`` turns the metric residuals into the distance c and picks, from the codebook, how many
  steps to go before the next computed step.

Why one cached residual for the whole stack: the official code skips every block together with per-block residuals
that are constant while skipping, so the skipped output equals the stack input plus the sum of those residuals, i.e.
the stack residual of the last computed step (O(1) memory per chunk instead of O(blocks)).

Models with an audio stream (LTX-2, MiniMax H3) report the audio tokens' metric residual under the ``AUDIO``
modality: it gets its own distance and codebook rate, and a step is reused only as long as every modality's rate
allows, so audio is never reused on a decision taken from video alone (MoReg's motion is measured on the visual
tokens only).
"""
import dataclasses
import math
from typing import Any, Callable, Hashable, Optional, Sequence

import torch

from .settings import range_error, setting

# Codebooks (threshold -> steps to reuse), each with the step count it was tuned for; all official but medium_30.
PRESETS = {
    "fast_30": (30, "0.08:6,0.16:5,0.24:4,0.32:3,0.40:2,1.00:1"),
    # ours, between the two (chosen on the trained bench model: python -m bench.variants.adacache --trained --sweep)
    "medium_30": (30, "0.06:5,0.12:4,0.18:3,0.24:2,1.00:1"),
    "slow_30": (30, "0.08:3,0.16:2,0.24:1,0.32:1,0.40:1,1.00:1"),
    "fast_100": (100, "0.03:12,0.05:10,0.07:8,0.09:6,0.11:4,1.00:3"),
}
CUSTOM = "custom"

# What a skipped step adds to the stack input: the last computed residual as it is ("hold", the paper), or its
# first-order extrapolation in sigma from the last two computed residuals ("linear", ours, FORA/TaylorSeer-style).
REUSE_MODES = ("hold", "linear")

# What m is divided by: "fixed" = moreg_normaliser (the paper's 0.385, tuned on Open-Sora); "run_minimum" = the
# smallest m of this run so far (ours): the factor is then >= 1 and grows only while motion rises above its floor.
MOREG_REFERENCES = ("fixed", "run_minimum")

FORCED_FIRST = 2  # the first step gives the first metric residual, the second the first distance
FORCED_LAST = 2   # the final steps shape fine detail: the official code always computes them

VISUAL, AUDIO = "visual", "audio"  # modalities of the metric residual; VISUAL drives MoReg


@dataclasses.dataclass(frozen=True)
class Codebook:
    """Ascending thresholds and the number of steps to reuse for each; above the last threshold the last rate."""
    thresholds: tuple
    rates: tuple

    def rate_for(self, distance: float) -> int:
        for threshold, rate in zip(self.thresholds, self.rates):
            if distance < threshold:
                return rate
        return self.rates[-1]

    @property
    def reuses(self) -> bool:
        """Whether any distance reuses a step (a preset scaled to a few-step run has only rate 1 left)."""
        return max(self.rates) > 1

    def __str__(self):
        return ",".join(f"{t:g}:{r}" for t, r in zip(self.thresholds, self.rates))


def parse_codebook(text: str) -> Codebook:
    """Parse "0.08:6,0.16:5,..." into a Codebook; raises ValueError saying what is wrong."""
    entries = [e.strip() for e in str(text).replace(";", ",").split(",") if e.strip()]
    if not entries:
        raise ValueError("codebook is empty: expected threshold:rate pairs such as '0.08:6,0.16:5,1.00:1'")
    thresholds, rates = [], []
    for entry in entries:
        parts = entry.split(":")
        if len(parts) != 2:
            raise ValueError(f"codebook entry '{entry}' is not threshold:rate (e.g. '0.08:6')")
        try:
            threshold = float(parts[0])
        except ValueError:
            raise ValueError(f"codebook entry '{entry}': threshold '{parts[0].strip()}' is not a number") from None
        try:
            rate = int(parts[1])
        except ValueError:
            raise ValueError(f"codebook entry '{entry}': rate '{parts[1].strip()}' is not a whole number") from None
        if not math.isfinite(threshold) or threshold <= 0:
            raise ValueError(f"codebook entry '{entry}': threshold must be a positive number")
        if rate < 1:
            raise ValueError(f"codebook entry '{entry}': rate must be at least 1 (1 = compute every step)")
        if thresholds and threshold <= thresholds[-1]:
            raise ValueError(f"codebook thresholds must be strictly ascending: {threshold:g} follows {thresholds[-1]:g}")
        thresholds.append(threshold)
        rates.append(rate)
    return Codebook(tuple(thresholds), tuple(rates))


def scale_codebook(codebook: Codebook, reference_steps: int, steps: int) -> Codebook:
    """Adapt a codebook tuned for ``reference_steps`` to a schedule of ``steps``.

    With N steps over the same trajectory the per-step change shrinks like 1/N, so thresholds are multiplied by
    reference/N; a reuse should span the same fraction of the schedule, so rates are multiplied by N/reference
    (rounded half up, at least 1).
    """
    if steps == reference_steps:
        return codebook
    factor = steps / reference_steps
    return Codebook(tuple(t / factor for t in codebook.thresholds),
                    tuple(max(1, math.floor(r * factor + 0.5)) for r in codebook.rates))


def resolve_codebook(preset: str, custom_codebook: str, steps: int) -> Codebook:
    """The codebook a run of ``steps`` steps uses: a scaled preset, or the custom string as given."""
    if preset == CUSTOM:
        return parse_codebook(custom_codebook)
    if preset not in PRESETS:
        raise ValueError(f"unknown preset '{preset}'; choose one of {', '.join([*PRESETS, CUSTOM])}")
    reference_steps, text = PRESETS[preset]
    return scale_codebook(parse_codebook(text), reference_steps, steps)


@dataclasses.dataclass(frozen=True)
class AdaCacheSettings:
    """The node's settings, in input order; ``error()`` is the one check behind prompt validation and
    ``apply_adacache``."""
    preset: str = setting(
        "slow_30",  # the preset that keeps >= 35 dB worst-case on the trained bench model
        "Codebook (distance threshold -> steps to reuse), scaled to your step count. fast_30 / slow_30: official "
        "30-step tables; medium_30: ours, between them; fast_100: official 100-step table; custom: use codebook "
        "(custom_codebook). On the bench's trained tiny WAN (worst case of 8 clips): slow_30 computes 1 step in 1.7 "
        "at 37.8 dB, medium_30 + MoReg 1 in 2.1 at 36.0 dB, fast_30 + MoReg 1 in 3.0 at 33.7 dB.",
        options=(*PRESETS, CUSTOM))
    custom_codebook: str = setting(
        "0.08:6,0.16:5,0.24:4,0.32:3,0.40:2,1.00:1",
        "Used when preset is custom, as written (no scaling): comma-separated threshold:rate pairs with ascending "
        "thresholds; a distance below a threshold reuses the stack for that many steps (1 = compute every step). "
        "'1.00:1' never reuses.",
        label="codebook", multiline=True, advanced=True)
    metric_block: int = setting(
        -1, "Block whose residual change measures the content change (-1 = the middle block, as in the paper). "
            "Blocks are counted double-stream first, then single-stream.",
        minimum=-1, maximum=1000, advanced=True)
    moreg: bool = setting(
        False, "Motion regularisation (video models only): frame-to-frame differences of the metric residual raise "
               "the distance when they rise, so the steps where motion forms are computed.")
    start_percent: float = setting(0.0, "Sampling progress before which every step is computed.",
                                   minimum=0.0, maximum=1.0, step=0.01)
    end_percent: float = setting(1.0, "Sampling progress after which every step is computed.",
                                 minimum=0.0, maximum=1.0, step=0.01)
    offload: bool = setting(
        False, "Keep the cached residuals in CPU memory instead of next to the activations (saves VRAM, costs a copy "
               "per step).", advanced=True)
    reuse: str = setting(
        "hold", "What a skipped step adds to the block-stack input: hold = the residual of the last computed step "
                "(the paper); linear = that residual extrapolated in sigma from the last two computed steps (keeps "
                "two residuals per conditioning).",
        options=REUSE_MODES, advanced=True)
    moreg_reference: str = setting(
        "run_minimum", "What MoReg divides the motion score by. fixed = moreg_normaliser (the paper; below it MoReg "
                       "makes the node reuse more); run_minimum = the smallest score of this run so far (ours): "
                       "MoReg only adds computed steps, where motion rises.",
        options=MOREG_REFERENCES, advanced=True)
    moreg_normaliser: float = setting(
        0.385, "With moreg_reference fixed, MoReg's motion score m is used as (m / normaliser) ^ exponent; the "
               "official value is 0.385.",
        minimum=0.001, maximum=10.0, step=0.001, advanced=True)
    moreg_exponent: float = setting(8.0, "Exponent of the MoReg motion factor; the official value is 8.",
                                    minimum=0.1, maximum=32.0, step=0.1, advanced=True)

    def error(self) -> Optional[str]:
        """The message for invalid settings, or None when they are valid."""
        if self.preset != CUSTOM and self.preset not in PRESETS:
            return f"unknown preset '{self.preset}'; choose one of {', '.join([*PRESETS, CUSTOM])}"
        if self.preset == CUSTOM:
            try:
                parse_codebook(self.custom_codebook)
            except ValueError as err:
                return f"custom_codebook: {err}"
        start, end = self.start_percent, self.end_percent
        if not (0.0 <= start <= 1.0 and 0.0 <= end <= 1.0):
            return f"start_percent and end_percent must lie in [0, 1] (got {start:g}, {end:g})"
        if start >= end:
            return f"start_percent ({start:g}) must be smaller than end_percent ({end:g})"
        if not self.moreg_normaliser > 0:
            return f"moreg_normaliser must be positive (got {self.moreg_normaliser:g})"
        if not self.moreg_exponent > 0:
            return f"moreg_exponent must be positive (got {self.moreg_exponent:g})"
        if self.metric_block < -1:
            return f"metric_block must be -1 (middle block) or a block index >= 0 (got {self.metric_block})"
        if self.moreg_reference not in MOREG_REFERENCES:
            return f"moreg_reference must be one of {', '.join(MOREG_REFERENCES)} (got '{self.moreg_reference}')"
        if self.reuse not in REUSE_MODES:
            return f"reuse must be one of {', '.join(REUSE_MODES)} (got '{self.reuse}')"
        return range_error(self)

    def moreg_config(self) -> Optional["MoReg"]:
        """The MoReg parameters, or None with MoReg off."""
        if not self.moreg:
            return None
        return MoReg(self.moreg_normaliser, self.moreg_exponent, reference=self.moreg_reference)


def percent_of_sigma(percent_to_sigma: Callable[[float], float], sigma: float, iterations: int = 40) -> float:
    """Invert a decreasing ``percent_to_sigma`` by bisection: the sampling progress (0..1) at which ``sigma`` occurs."""
    low, high = 0.0, 1.0
    if sigma >= float(percent_to_sigma(1e-9)):
        return 0.0
    if sigma <= 0.0:
        return 1.0
    for _ in range(iterations):
        middle = 0.5 * (low + high)
        if float(percent_to_sigma(middle)) > sigma:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def effective_steps(percent_to_sigma: Callable[[float], float], sample_sigmas: Sequence[float]) -> int:
    """Step count of the full schedule this run is part of, from the fraction of the noise range it covers.

    A KSamplerAdvanced segment or WAN 2.2 high/low-noise half covers part of the range with the step density of the
    whole schedule; codebooks are scaled by that density, not by the segment's own length.
    """
    steps = len(sample_sigmas) - 1
    covered = (percent_of_sigma(percent_to_sigma, float(sample_sigmas[-1]))
               - percent_of_sigma(percent_to_sigma, float(sample_sigmas[0])))
    if covered <= steps / 1000.0:  # degenerate range: keep the run's own count
        return steps
    return max(steps, math.floor(steps / covered + 0.5))


@dataclasses.dataclass(frozen=True)
class MoReg:
    """Motion regularisation: more motion in the metric residual -> larger distance -> fewer reused steps."""
    normaliser: float = 0.385
    exponent: float = 8.0
    gradient_scale: float = 10.0
    reference: str = "fixed"  # one of MOREG_REFERENCES
    window: tuple = (0.1, 0.9)  # fraction of the run's steps where the motion factor applies (else it is 1)

    def active(self, step: int, steps: int) -> bool:
        return round(self.window[0] * steps) <= step <= round(self.window[1] * steps)

    def factor(self, motion: float, floor: float) -> float:
        """m' for motion score ``motion``; ``floor`` is the smallest score of the run so far (this one included)."""
        reference = floor if self.reference == "run_minimum" else self.normaliser
        return (motion / reference) ** self.exponent if reference > 0 else 1.0


@dataclasses.dataclass
class StepRecord:
    step: int
    computed: bool
    distance: float = None  # c after division by k and MoReg, None when there was nothing to compare
    motion: float = None
    rate: int = None        # steps to the next computed step, chosen at this computed step
    # the distances of the other modalities (e.g. audio), each with its own codebook rate; empty for visual-only models
    modality_distances: dict = dataclasses.field(default_factory=dict)
    limited_by: str = None  # the modality whose rate was the smallest, when it was not the visual one


class Decisions:
    """When to compute: the codebook schedule plus the always-computed first and last steps.

    ``steps`` is the number of steps of this run; step indices are 0-based within the run.
    """

    def __init__(self, codebook, steps, moreg=None):
        self.codebook = codebook
        self.steps = steps
        self.moreg = moreg
        self.restart()

    def restart(self) -> None:
        self.next_compute = 0
        self.last_computed = None
        self.previous_motion_factor = 1.0
        self.motion_floor = math.inf

    def forced(self, step: int) -> bool:
        return step < FORCED_FIRST or step >= self.steps - FORCED_LAST

    def should_compute(self, step: int, cache_allowed: bool = True) -> bool:
        return self.forced(step) or not cache_allowed or step >= self.next_compute

    def update(self, step: int, relative_change: float, motion: Optional[float] = None,
               other_changes: Optional[dict] = None) -> StepRecord:
        """Record a computed step; ``relative_change`` = Σ|p_t − p_prev| / Σ|p_prev| of the visual tokens or None,
        ``other_changes`` the same per other modality. Returns the record."""
        record = StepRecord(step, True, motion=motion)
        if motion is not None:
            self.motion_floor = min(self.motion_floor, motion)
        if relative_change is None or self.last_computed is None:
            record.rate = 1
        else:
            k = step - self.last_computed
            distance = relative_change / k
            if self.moreg is not None:
                active = motion is not None and self.moreg.active(step, self.steps)
                factor = self.moreg.factor(motion, self.motion_floor) if active else 1.0
                gradient = self.moreg.gradient_scale * (factor - self.previous_motion_factor) / k
                distance *= factor + abs(gradient)
                self.previous_motion_factor = factor
            record.distance = distance
            record.rate = self.codebook.rate_for(distance)
            for modality, change in (other_changes or {}).items():
                record.modality_distances[modality] = change / k
                rate = self.codebook.rate_for(change / k)
                if rate < record.rate:
                    record.rate, record.limited_by = rate, modality
        self.last_computed = step
        self.next_compute = step + record.rate
        return record


def _l1(t):
    return t.abs().sum(dtype=torch.float64).item()


class _MetricSums:
    """L1 sums of one step, kept per modality and chunk so batched and separate cond/uncond runs add up the same
    way."""

    def __init__(self):
        self.terms = {}  # modality -> key -> [change, reference, motion_diff, motion_norm]

    def add(self, key, change, reference, motion_diff, motion_norm, modality=VISUAL):
        terms = self.terms.setdefault(modality, {}).setdefault(key, [0.0, 0.0, 0.0, 0.0])
        for i, value in enumerate((change, reference, motion_diff, motion_norm)):
            terms[i] += value

    def totals(self, order, modality=VISUAL):
        totals = [0.0, 0.0, 0.0, 0.0]
        terms = self.terms.get(modality, {})
        for key in sorted(terms, key=order):
            for i, value in enumerate(terms[key]):
                totals[i] += value
        return totals

    def other_modalities(self):
        return sorted(m for m in self.terms if m != VISUAL)  # sorted: every process reduces them in one order


class AdaCacheRun:
    """Per-sampling-run state: decisions, metric residuals and the stack-residual cache, keyed by chunk.

    A chunk key identifies one conditioning (e.g. ComfyUI's cond uuid); ``key_order`` maps a key to a sort key so
    that sums over chunks are always added in the same order.
    """

    def __init__(self, codebook, steps, moreg=None, storage_device=None, key_order=None, reuse="hold",
                 reduce_sums=None):
        self.decisions = Decisions(codebook, steps, moreg)
        self.steps = steps
        self.storage_device = storage_device
        self.key_order = key_order or (lambda key: 0)
        self.reuse = reuse
        # totals -> totals over every process that holds part of the tokens (sequence parallelism), or None
        self.reduce_sums = reduce_sums
        self.records = []
        self.resets = 0
        self._clear_tensors()
        self.current_step = None
        self.current_sigma = None
        self.computing = True
        self._repeat = False

    def _clear_tensors(self):
        self.previous_metric = {}
        self.pending_metric = {}
        self.residuals = {}  # key -> [(sigma, residual) of the last computed steps], newest last
        self.metadata = None
        self.sums = _MetricSums()

    # --- step protocol -------------------------------------------------------------------------------------------
    def begin_step(self, step: int, cache_allowed: bool = True, sigma: Optional[float] = None) -> bool:
        """Decide for one model evaluation at ``step`` (at noise level ``sigma``, which ``linear`` reuse needs);
        repeated evaluations of a step keep its decision."""
        self.current_sigma = sigma
        if step == self.current_step:
            self._repeat = True
        else:
            if self.current_step is not None and step < self.current_step:
                self.decisions.restart()  # the sampler went back (restart-style samplers)
            self._repeat = False
            self.current_step = step
            self.computing = self.decisions.should_compute(step, cache_allowed)
        self.pending_metric = {}
        self.sums = _MetricSums()
        return self.computing

    def end_step(self) -> None:
        if self._repeat:
            return None
        if not self.computing:
            record = StepRecord(self.current_step, False)
        else:
            change, reference, motion_diff, motion_norm = self._totals(VISUAL)
            relative = change / reference if reference > 0 else None
            motion = motion_diff / motion_norm if self.decisions.moreg is not None and motion_norm > 0 else None
            others = {}
            for modality in self.sums.other_modalities():
                change, reference = self._totals(modality)[:2]
                if reference > 0:
                    others[modality] = change / reference
            record = self.decisions.update(self.current_step, relative, motion, others)
            self.previous_metric.update(self.pending_metric)
        self.pending_metric = {}
        self.records.append(record)
        return record

    def _totals(self, modality):
        totals = self.sums.totals(self.key_order, modality)
        return totals if self.reduce_sums is None else self.reduce_sums(totals)

    def force_compute(self) -> None:
        """This evaluation must compute after all (a chunk has no cached residual, or the state was reset)."""
        self.computing = True

    # --- tensors ---------------------------------------------------------------------------------------------------
    def check_metadata(self, tensor) -> None:
        """Reset everything when the token shape, dtype or device changes (``tensor``: the stack input, or a tuple
        of its streams); returns False after a reset."""
        if isinstance(tensor, torch.Tensor):
            metadata = (tuple(tensor.shape[1:]), tensor.dtype, tensor.device)
        else:
            metadata = tuple((tuple(t.shape[1:]), t.dtype, t.device) for t in tensor)
        if self.metadata is None:
            self.metadata = metadata
            return True
        if metadata == self.metadata:
            return True
        self._clear_tensors()
        self.metadata = metadata
        self.decisions.restart()
        self.resets += 1
        self.force_compute()
        return False

    def _stored(self, tensor):
        return tensor if self.storage_device is None else tensor.to(self.storage_device)

    def observe_metric(self, key: Hashable, residual: torch.Tensor, frames: int = 1, modality: str = VISUAL) -> None:
        """Metric-block residual p of one chunk on a computed step ([B, tokens, dim], image tokens only, or the
        audio tokens under ``AUDIO``)."""
        stored_key = key if modality == VISUAL else (modality, key)
        previous = self.previous_metric.get(stored_key)
        change = reference = motion_diff = motion_norm = 0.0
        if previous is not None and previous.shape == residual.shape:
            previous = previous.to(residual.device)
            change, reference = _l1(residual - previous), _l1(previous)
        if self.decisions.moreg is not None and modality == VISUAL:
            motion_diff, motion_norm = motion_terms(residual, frames)
        self.sums.add(key, change, reference, motion_diff, motion_norm, modality)
        self.pending_metric[stored_key] = self._stored(residual)

    def store_residual(self, key: Hashable, residual: torch.Tensor) -> None:
        previous = self.residuals.get(key, [])[-1:] if self.reuse == "linear" else []
        self.residuals[key] = previous + [(self.current_sigma, self._stored(residual))]

    def cached_residual(self, key: Hashable, like: torch.Tensor) -> Optional[torch.Tensor]:
        """What a skipped step adds for ``key``, on ``like``'s device/dtype; None if nothing of that shape is cached.

        hold: the last computed residual. linear: r1 + (r1 - r0) (sigma - s1) / (s1 - s0) from the last two computed
        residuals r0, r1 at sigmas s0, s1 (the last one alone until there are two).
        """
        history = self.residuals.get(key)
        if not history or history[-1][1].shape != like.shape:
            return None
        sigma_last, last = history[-1]
        last = last.to(device=like.device, dtype=like.dtype)
        sigma_before, before = history[0]
        if len(history) < 2 or before.shape != like.shape or None in (self.current_sigma, sigma_last, sigma_before) \
                or sigma_last == sigma_before:
            return last
        before = before.to(device=like.device, dtype=like.dtype)
        slope = (self.current_sigma - sigma_last) / (sigma_last - sigma_before)
        return last + (last - before) * slope

    # --- reporting -------------------------------------------------------------------------------------------------
    def summary(self) -> str:
        computed = [r for r in self.records if r.computed]
        rates = ",".join(str(r.rate) for r in computed)
        text = f"computed {len(computed)} of {len(self.records)} steps (rates {rates})"
        limited = sorted({r.limited_by for r in computed if r.limited_by})
        if limited:
            text += "; " + ", ".join(f"{m} distance set {sum(r.limited_by == m for r in computed)} rates"
                                     for m in limited)
        if self.resets:
            text += f"; state reset {self.resets}x on a shape/dtype/device change"
        return text

    def release(self) -> None:
        self._clear_tensors()
        self.pending_metric = {}

    def finish(self) -> "RunRecord":
        """End of the run: drop the tensors and return its record."""
        self.release()
        return RunRecord(tuple(self.records), self.summary())


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """What one sampling run did: a StepRecord per step, and the one-line summary the log shows."""
    steps: tuple
    summary: str

    @property
    def computed_steps(self) -> list:
        return [record.step for record in self.steps if record.computed]


def process_group_sum(group: Any = None) -> Optional[Callable[[list], list]]:
    """``totals -> totals summed over the processes of group`` when torch.distributed runs more than one process,
    else None.

    Under sequence parallelism (raylight, xDiT) each process holds part of the tokens, hence part of every L1 sum;
    summing the numerators and denominators before dividing gives every process the full-sequence distance, so all
    take the same decision (a process that skipped alone would desynchronise the group's collectives).
    """
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size(group) < 2:
        return None

    def reduce(totals):
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend(group) == "nccl" else "cpu"
        summed = torch.tensor(totals, dtype=torch.float64, device=device)
        dist.all_reduce(summed, group=group)
        return summed.tolist()

    return reduce


def motion_terms(residual: torch.Tensor, frames: int) -> tuple:
    """MoReg's L1 sums for m = Σ|p[:, S:] − p[:, :−S]| / (Σ|p[:, S:]| + Σ|p[:, :−S]|), S = tokens per frame."""
    tokens = residual.shape[1]
    if frames < 2:
        raise ValueError("MoReg needs a video latent with at least 2 frames; turn MoReg off for images")
    if tokens % frames:
        raise ValueError(f"MoReg: {tokens} image tokens do not split into {frames} latent frames")
    stride = tokens // frames
    later, earlier = residual[:, stride:], residual[:, :-stride]
    return _l1(later - earlier), _l1(later) + _l1(earlier)
