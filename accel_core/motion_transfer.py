"""Training-free video motion transfer by attention motion flow (AMF) guidance: DiTFlow and its FastVMT acceleration.

At a guided denoising step the latent is optimised with AdamW so that the AMF of the generated video (from Q/K of one
transformer block) matches the AMF of the reference video. FastVMT removes two redundancies of DiTFlow:
- motion redundancy: only frame pairs j in [i, i + span) are compared, and pairs j != i use a two-pass local window
  (kernels.amf) instead of the full frame;
- gradient redundancy: a real forward/backward runs only every ``recompute_every`` iterations; the iterations between
  reuse the last gradient (AdamW still steps and updates its moments).

This module is host-agnostic: the model is reached only through a ``loss_fn(latent) -> loss`` callback.
"""
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ..kernels import amf
from .settings import range_error, setting

MODES = ("fastvmt", "ditflow")
# softmax temperature of the AMF: FastVMT's released call uses 1.0; DiTFlow's config uses motion_temp = 2
TEMPERATURE = {"fastvmt": 1.0, "ditflow": 2.0}
AMF_WEIGHT = 5.0  # L = 5 * L_AMF + L_track, as released
FAR_PAIR_WEIGHT = 0.8  # pair weights fall linearly from 1 (same frame) to this at distance span - 1


@dataclass(frozen=True)
class MotionTransferSettings:
    """The guider's settings; ``error()`` is the one check behind prompt validation and ``motion_transfer_guider``.

    ``guided_steps``: how many of the schedule's first steps optimise the latent (0: plain CFG); ``amf_block``: the
    transformer block whose self-attention Q/K give the motion flow.
    """
    cfg: float = setting(5.0, "Classifier-free guidance scale of the denoising steps.",
                         minimum=0.0, maximum=100.0, step=0.1, round=0.01)
    mode: str = setting("fastvmt", "fastvmt: frame pairs within temporal_span, local-window AMF and gradient reuse. "
                                   "ditflow: the unaccelerated baseline (all frame pairs, full attention, a real "
                                   "backward every iteration).", options=MODES)
    guided_steps: int = setting(10, "How many of the schedule's first steps optimise the latent (0 = plain CFG).",
                                minimum=0, maximum=1000)
    iterations: int = setting(10, "AdamW iterations per guided step.", minimum=1, maximum=100)
    lr_start: float = setting(0.003, "Learning rate of the first iteration of each guided step.",
                              minimum=0.0, maximum=1.0, step=0.0001, round=0.00001, advanced=True)
    lr_end: float = setting(0.002, "Learning rate the schedule falls towards linearly over the iterations.",
                            minimum=0.0, maximum=1.0, step=0.0001, round=0.00001, advanced=True)
    amf_block: int = setting(
        14,  # FastVMT reads Q/K of block index 14 on both Wan2.1 1.3B (30 blocks) and 14B (40 blocks)
        "Transformer block whose self-attention Q/K give the motion flow (FastVMT: 14); clamped to the model's last "
        "block. Later blocks are not run.", minimum=0, maximum=200, advanced=True)
    temporal_span: int = setting(4, "fastvmt: each frame is compared with itself and the next span-1 frames.",
                                 minimum=1, maximum=64, advanced=True)
    tile_height: int = setting(3, "fastvmt: query tile height in tokens; a tile shares one search window.",
                               minimum=1, maximum=64, advanced=True)
    tile_width: int = setting(4, "fastvmt: query tile width in tokens.", minimum=1, maximum=64, advanced=True)
    window_height: int = setting(21, "fastvmt: height in tokens of the search window around a tile's match.",
                                 minimum=1, maximum=512, advanced=True)
    window_width: int = setting(21, "fastvmt: width in tokens of the search window around a tile's match.",
                                minimum=1, maximum=512, advanced=True)
    recompute_every: int = setting(
        3, "fastvmt: a real forward/backward every this many iterations (0, 3, 6, 9 of 10); the others reuse the last "
           "gradient.", minimum=1, maximum=100, advanced=True)

    def error(self) -> Optional[str]:
        """The message for invalid settings, or None when they are valid."""
        if self.mode not in MODES:
            return f"mode must be one of {', '.join(MODES)}, got {self.mode!r}"
        for name in ("iterations", "recompute_every", "temporal_span"):
            if getattr(self, name) < 1:
                return f"{name} must be at least 1, got {getattr(self, name)}"
        if self.lr_start <= 0 or self.lr_end <= 0:
            return f"learning rates must be positive (lr_start {self.lr_start}, lr_end {self.lr_end})"
        return range_error(self)

    @property
    def fast(self) -> bool:
        return self.mode == "fastvmt"

    @property
    def temperature(self) -> float:
        return TEMPERATURE[self.mode]

    @property
    def tile(self) -> tuple:
        """(height, width) in tokens of a query tile that shares one search window."""
        return self.tile_height, self.tile_width

    @property
    def window(self) -> tuple:
        """(height, width) in tokens of the search window around a tile's match."""
        return self.window_height, self.window_width


def frame_pairs(num_frames: int, settings: MotionTransferSettings) -> list:
    return amf.frame_pairs(num_frames, settings.temporal_span if settings.fast else None)


def pair_weights(pairs: list, settings: MotionTransferSettings, device: Optional[torch.device] = None) -> torch.Tensor:
    """FastVMT weights each pair 1 -> 0.8 linearly over its distance j - i in [0, span); DiTFlow weighs all equally."""
    if not settings.fast or settings.temporal_span == 1:
        return torch.ones(len(pairs), device=device)
    step = (1.0 - FAR_PAIR_WEIGHT) / (settings.temporal_span - 1)
    return torch.tensor([1.0 - step * (j - i) for i, j in pairs], device=device)


def learning_rate(iteration: int, settings: MotionTransferSettings) -> float:
    """The released schedule: lr_start + (lr_end - lr_start) * iteration / iterations (so it ends one step short)."""
    return settings.lr_start + (settings.lr_end - settings.lr_start) * iteration / settings.iterations


def recomputes(iteration: int, settings: MotionTransferSettings) -> bool:
    """Whether iteration runs a real forward/backward (DiTFlow: always; FastVMT: every recompute_every-th)."""
    return not settings.fast or iteration % settings.recompute_every == 0


def video_qk(x: torch.Tensor, grid: tuple) -> torch.Tensor:
    """Per-frame, head-averaged video tokens of a captured q or k.

    x: [B, heads, L, D]; the last F*H*W tokens are the video grid ``grid`` = (F, H, W) (WAN prepends reference
    tokens, if any). Returns [B, F, H*W, D]. Averaging over heads (not over groups of consecutive tokens, the released
    code's reshape quirk) is the intended "mean over heads".
    """
    frames, height, width = grid
    x = x[:, :, x.shape[2] - frames * height * width:].mean(dim=1)
    return x.unflatten(1, (frames, height * width))


@dataclass
class MotionFlow:
    flows: torch.Tensor  # [P, S, 2]
    window_means: dict  # (i, j) -> [tiles, D] mean key of each tile's window (windowed pairs only)


def motion_flow(q: torch.Tensor, k: torch.Tensor, grid: tuple, pairs: list, settings: MotionTransferSettings, *,
                hard: bool) -> "MotionFlow":
    """AMF of one video: q, k [F, S, D] with grid (F, H, W)."""
    _, height, width = grid
    flows, means = amf.motion_flow(q, k, height, width, pairs, temperature=settings.temperature, hard=hard,
                                   tile=settings.tile if settings.fast else None,
                                   window=settings.window if settings.fast else None)
    return MotionFlow(flows, means)


def amf_loss(reference: torch.Tensor, generated: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Pair-weighted AMF loss: per pair, the squared error summed over the tokens where the reference moves (the
    released loss sums over tokens too); then the weighted mean over pairs."""
    moving = (reference != 0).any(dim=-1, keepdim=True)
    per_pair = ((generated - reference.detach()) ** 2 * moving).sum(dim=(1, 2))
    return (per_pair * weights.to(per_pair.dtype)).mean()


def tracking_loss(window_means: dict, num_frames: int) -> Optional[torch.Tensor]:
    """FastVMT's window-tracking term: for each query frame, the mean L2 distance between the mean key vectors of the
    windows of consecutive target frames (same tile), averaged over the frames that have at least two such windows."""
    terms = []
    for i in range(num_frames):
        chain = [window_means[(i, j)] for j in range(i + 1, num_frames) if (i, j) in window_means]
        if len(chain) > 1:
            stacked = torch.stack(chain).float()
            terms.append(torch.linalg.vector_norm(stacked[1:] - stacked[:-1], dim=-1).mean())
    return torch.stack(terms).mean() if terms else None


def motion_loss(reference: torch.Tensor, generated: "MotionFlow", pairs: list, settings: MotionTransferSettings,
                num_frames: int) -> torch.Tensor:
    """The guidance loss of one video: 5 * AMF loss (+ the window-tracking term in FastVMT mode)."""
    loss = AMF_WEIGHT * amf_loss(reference, generated.flows, pair_weights(pairs, settings, reference.device))
    track = tracking_loss(generated.window_means, num_frames) if settings.fast else None
    return loss if track is None else loss + track


def optimize_latent(latent: torch.Tensor, loss_fn: Callable[[torch.Tensor], torch.Tensor],
                    settings: MotionTransferSettings,
                    on_iteration: Optional[Callable[[int], None]] = None) -> tuple:
    """AdamW on the latent with the (FastVMT) gradient-reuse schedule.

    ``loss_fn(z) -> scalar`` runs the model; it is called only on recompute iterations. Gradients are enabled here
    even inside an inference-mode caller (as ComfyUI's training node does); the returned latent and losses hold no
    graph. Returns (optimised latent, [loss of each recompute iteration]).
    """
    losses = []
    with torch.inference_mode(False), torch.enable_grad():
        z = latent.detach().clone().requires_grad_(True)
        optimizer = torch.optim.AdamW([z], lr=settings.lr_start)
        cached = None
        for iteration in range(settings.iterations):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(iteration, settings)
            if cached is None or recomputes(iteration, settings):
                loss = loss_fn(z)
                cached = torch.autograd.grad(loss, z)[0].detach()
                losses.append(loss.item())
                del loss
            z.grad = cached.clone()  # a reused step is exactly the surrogate (z * g).sum() of the released code
            optimizer.step()
            z.grad = None
            if on_iteration is not None:
                on_iteration(iteration)
        result = z.detach().clone()
    return result, losses
