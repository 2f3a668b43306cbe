"""AT-EDM token pruning (Wang et al., CVPR 2024), host-agnostic: G-WPR scores, keep selection, similarity recovery
(optionally merging the pruned tokens into their kept source, ToMe-style), and the DSAP / level schedule that decides
how hard each attention stage prunes at a given step.

An "attention stage" is one run of transformer blocks between two convolutional parts of the network (in a UNet,
one SpatialTransformer). The stage's first self-attention scores every token by G-WPR from its own q and k, keeps the
top ceil((1 - ratio) * N) tokens and gives every pruned token a source: its most similar kept token. Outputs are
computed for K query rows only; everything after it runs on K rows, and before the features go back to convolutions
each pruned token adds its source's update to its own features (TokenPlan). The K rows are the kept tokens (AT-EDM's
pruning) or, with merging, the mean of each kept token's group. In a DiT the "stage" is a configurable block range:
the range's first block ranks the tokens, the range runs on the K rows, and after it every token is refilled the
same way.

Choices that are ours (the paper's text was unavailable; see bench/NOTES.md for the measurements behind them):
  * G-WPR weighting: attention probabilities averaged over heads, uniform start s0 = 1/N, s <- A^T s renormalised to
    sum 1 each round (a power iteration of the attention graph). One round equals the attention each token receives.
  * Similarity: cosine similarity of the token features at pruning time.
  * Local recovery (an option): the best-scored token of every small window (2 x 2 up to ratio 0.75) is always
    kept and a pruned token takes the update of the most similar kept token of its own window: N * 4 * C instead
    of the global search's pruned x kept * C, but 3-4 dB lower PSNR on the trained tiny UNets.
  * Recovery copies the update, not the output, of the source (see recover_residual).
  * Merging (the default): 1.3-4.2 dB above plain pruning at the same FLOPs on the trained tiny UNets (TokenPlan).
This module never imports ComfyUI.
"""
import functools
import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from ..kernels.scoring import attention_transpose_product
from ..kernels.tokens import complement_index, gather_tokens, scatter_tokens, topk_keep_index
from .settings import range_error, setting

MAX_RATIO = 0.95
RECOVERY_MODES = ("merge", "local merge", "similarity", "local", "passthrough")
WINDOWED_RECOVERY = ("local merge", "local")  # the source is searched within windows (local_windows)
MERGING_RECOVERY = ("merge", "local merge")  # the pruned part runs on group means (TokenPlan)
AUTO_LEVELS = "auto"


def kept_count(num_tokens: int, ratio: float) -> int:
    """ceil((1 - ratio) * N), at least one token; rounded first so that 0.7 * 10 does not become 7.000000001 -> 8."""
    return max(1, math.ceil(round((1.0 - ratio) * num_tokens, 6)))


GOLDEN_FRACTION = 0.6180339887498949  # frac(i * golden ratio) spreads the sample evenly inside its strides


def score_query_rows(num_tokens: int, fraction: float, device: torch.device) -> Optional[torch.Tensor]:
    """The query rows G-WPR reads: None (all) when fraction >= 1, else count = round(fraction * N) rows, one in each of
    count equal strides of the token order, at a golden-ratio offset inside its stride (so that on an image grid the
    sample does not fall into the same few columns), ascending and built on ``device`` (no host copy)."""
    if fraction >= 1.0:
        return None
    count = max(1, round(fraction * num_tokens))
    step = torch.arange(count, device=device, dtype=torch.float64)
    return ((step + (step * GOLDEN_FRACTION).frac()) * (num_tokens / count)).floor().long()


def gwpr_scores(q: torch.Tensor, k: torch.Tensor, iterations: int, *, query_index: Optional[torch.Tensor] = None,
                scale: Optional[float] = None, chunk_size: int = 1024) -> torch.Tensor:
    """G-WPR importance per token: s0 = 1/N, then `iterations` rounds of s <- normalise(A^T s).

    q, k: [B, H, N, D] of the stage's first self-attention; A = softmax(q k^T * scale) averaged over heads. With a
    query_index only those rows of A take part (a sampled estimate that bounds the extra cost). Returns float32 [B, N]
    summing to 1 per batch element.
    """
    batch, _, tokens, _ = q.shape
    scores = torch.full((batch, tokens), 1.0 / tokens, dtype=torch.float32, device=q.device)
    for _ in range(iterations):
        received = attention_transpose_product(q, k, scores, scale=scale, chunk_size=chunk_size,
                                               query_index=query_index).float()
        scores = received / received.sum(dim=-1, keepdim=True)
    return scores


@functools.lru_cache(maxsize=64)
def _window_members(height, width, window_h, window_w, device):
    """[windows, window_h * window_w] token positions of each window of the height x width grid (row-major
    tokens); -1 marks the places of partial windows at the grid's bottom and right edges that hold no token."""
    rows, cols = -(-height // window_h), -(-width // window_w)
    grid = torch.full((rows * window_h, cols * window_w), -1, dtype=torch.long)
    grid[:height, :width] = torch.arange(height * width).view(height, width)
    members = grid.view(rows, window_h, cols, window_w).transpose(1, 2).reshape(rows * cols, window_h * window_w)
    return members.to(device)


def local_windows(height: int, width: int, ratio: float, device: torch.device) -> torch.Tensor:
    """The windows local recovery uses on a height x width token grid pruned at ``ratio``: s x s windows for the
    smallest power of two s whose window count does not exceed the kept count, so every window can keep one token
    (a grid one token high uses 1 x s*s windows). Returns the [windows, s*s] LongTensor of _window_members."""
    kept = kept_count(height * width, ratio)
    side = 2
    while True:
        window_h = min(side, height)
        window_w = -(-side * side // window_h)
        if -(-height // window_h) * -(-width // window_w) <= kept:
            return _window_members(height, width, window_h, window_w, torch.device(device))
        side *= 2


def _windowed(values, members, fill):
    """values [B, N, ...] -> [B, windows, m, ...] laid out as ``members``; the places marked -1 get ``fill``."""
    padded = torch.cat([values, values.new_full((values.shape[0], 1, *values.shape[2:]), fill)], dim=1)
    return padded[:, members]  # -1 indexes the appended fill row


def keep_index_for(scores: torch.Tensor, ratio: float, windows: Optional[torch.Tensor] = None) -> torch.Tensor:
    """[B, K] positions of the tokens kept at ``ratio`` (K = kept_count(N, ratio)), ascending (spatial order
    preserved): the K best-scored tokens; with ``windows`` (see local_windows) the best token of every window is
    kept first and the remaining places go to the best-scored of the rest."""
    kept = kept_count(scores.shape[1], ratio)
    if windows is not None:
        best = _windowed(scores, windows, float("-inf")).argmax(dim=-1)  # [B, windows]: first best on ties
        anchors = windows.expand(scores.shape[0], -1, -1).gather(2, best.unsqueeze(-1)).squeeze(-1)
        scores = scores.scatter(1, anchors, float("inf"))
    return topk_keep_index(scores, kept)


def recovery_source(features: torch.Tensor, keep_index: torch.Tensor, windows: Optional[torch.Tensor] = None,
                    chunk_size: int = 1024) -> torch.Tensor:
    """For every position, the slot in the kept list whose stage output it takes: a kept token its own slot, a
    pruned token the slot of the kept token with the highest cosine similarity of `features` (ties: lowest slot),
    searched among every kept token, or with ``windows`` (keep_index_for's) among the kept tokens of its window.

    features: [B, N, C] token features at pruning time; keep_index: [B, K]. Returns LongTensor [B, N]. The global
    pruned x kept similarity matrix is built in chunks of `chunk_size` pruned rows to bound memory; the windowed
    search costs N * window size * C.
    """
    if windows is not None:
        return _window_recovery_source(features, keep_index, windows)
    batch, tokens, _ = features.shape
    kept = keep_index.shape[1]
    pruned_index = complement_index(keep_index, tokens)
    unit = F.normalize(features.float(), dim=-1)
    kept_unit_t = gather_tokens(unit, keep_index).transpose(1, 2)
    pruned_unit = gather_tokens(unit, pruned_index)
    nearest = [torch.bmm(pruned_unit[:, start:start + chunk_size], kept_unit_t).argmax(dim=-1)
               for start in range(0, pruned_unit.shape[1], chunk_size)]
    own_slot = torch.arange(kept, device=features.device).expand(batch, kept)
    source = scatter_tokens(torch.zeros(batch, tokens, dtype=torch.long, device=features.device),
                            keep_index, own_slot)
    if nearest:
        source = scatter_tokens(source, pruned_index, torch.cat(nearest, dim=1))
    return source


def _window_recovery_source(features, keep_index, windows):
    batch, tokens, _ = features.shape
    is_kept = torch.zeros(batch, tokens, dtype=torch.bool, device=features.device).scatter(1, keep_index, True)
    slot = is_kept.long().cumsum(dim=1) - 1  # a kept position's place in the ascending kept list
    unit = _windowed(F.normalize(features.float(), dim=-1), windows, 0.0)  # [B, windows, m, C]
    similarity = torch.matmul(unit, unit.transpose(-1, -2))  # [B, windows, m (token), m (candidate)]
    candidate_kept = _windowed(is_kept, windows, False).unsqueeze(2)
    nearest = similarity.masked_fill(~candidate_kept, float("-inf")).argmax(dim=-1)  # first kept on ties
    members = windows.expand(batch, -1, -1)
    nearest_slot = slot.gather(1, members.gather(2, nearest).flatten(1))
    positions = members.flatten(1) % (tokens + 1)  # -1 (no token) -> the extra column dropped below
    source = nearest_slot.new_zeros(batch, tokens + 1).scatter(1, positions, nearest_slot)[:, :tokens]
    return torch.where(is_kept, slot, source)


def recover_passthrough(features: torch.Tensor, keep_index: torch.Tensor, kept_out: torch.Tensor) -> torch.Tensor:
    """Full-length stage output where pruned tokens keep their features from pruning time."""
    return scatter_tokens(features, keep_index, kept_out)


def recover_residual(features: torch.Tensor, keep_index: torch.Tensor, kept_out: torch.Tensor,
                     source: torch.Tensor) -> torch.Tensor:
    """Full-length output of a pruned UNet stage or DiT block range (our choice): kept tokens get their output; a
    pruned token keeps its own features from pruning time plus the update (output - input) that its source kept
    token received (see recovery_source). Copying the source's whole output instead would replace the token's own
    features: in a DiT the residual stream is the only carrier of a token's identity, and on the trained tiny UNets
    it lost 4-9 dB (bench/NOTES.md).
    """
    features = features.to(kept_out.dtype)
    refilled = add_source_update(features, gather_tokens(features, keep_index), kept_out, source)
    return scatter_tokens(refilled, keep_index, kept_out)


def add_source_update(features: torch.Tensor, rows_in: torch.Tensor, rows_out: torch.Tensor,
                      source: torch.Tensor) -> torch.Tensor:
    """Full-length output: every token keeps its own ``features`` [B, N, C] and adds the update (rows_out - rows_in,
    [B, K, C]) of the row ``source`` [B, N] points it to. After a merged range every token, kept ones included, is
    refilled this way (rows_in: the group means the range ran on, see group_mean)."""
    return features.to(rows_out.dtype) + gather_tokens(rows_out - rows_in.to(rows_out.dtype), source)


def group_mean(values: torch.Tensor, source: torch.Tensor, groups: int) -> torch.Tensor:
    """values [B, N, ...], source [B, N] (each position's group, 0 <= source < groups, every group used) ->
    [B, groups, ...]: the mean over each group's members, summed in float32, in values' dtype."""
    index = source.view(*source.shape, *[1] * (values.dim() - 2)).expand(values.shape)
    summed = values.new_zeros(values.shape[0], groups, *values.shape[2:], dtype=torch.float32)
    summed.scatter_add_(1, index, values.float())
    members = torch.zeros(source.shape[0], groups, dtype=torch.float32, device=source.device)
    members.scatter_add_(1, source, torch.ones(source.shape, dtype=torch.float32, device=source.device))
    return (summed / members.view(*members.shape, *[1] * (values.dim() - 2))).to(values.dtype)


class TokenPlan:
    """One pruning of N tokens down to K rows: the kept positions, each position's recovery source (None:
    passthrough) and whether the pruned tokens merge into their source's group.

    Pruning (AT-EDM): the K rows are the kept tokens; a pruned token later adds its source's update. Merging (our
    choice, ToMe-style): the K rows are the means of the groups {kept token + the pruned tokens whose source it is},
    and every token adds its group's update; on the trained tiny UNets this gained 1.3-4.2 dB over pruning at the
    same FLOPs (bench/NOTES.md)."""

    def __init__(self, keep_index, source, tokens, merge):
        self.keep_index, self.source, self.tokens = keep_index, source, tokens
        self.merge = merge and source is not None
        self.features = self.reduced = None

    def rows(self, values: torch.Tensor) -> torch.Tensor:
        """values [B, N, ...] -> the [B, K, ...] rows the pruned part computes on (kept tokens or group means)."""
        if self.merge:
            return group_mean(values, self.source, self.keep_index.shape[1])
        return gather_tokens(values, self.keep_index)

    def spread(self, rows: torch.Tensor) -> torch.Tensor:
        """[B, K, ...] results of rows() -> [B, N, ...]: each position gets its source's row (zeros without one)."""
        if self.source is not None:
            return gather_tokens(rows, self.source)
        zeros = rows.new_zeros(rows.shape[0], self.tokens, *rows.shape[2:])
        return scatter_tokens(zeros, self.keep_index, rows)

    def reduce(self, features: torch.Tensor) -> torch.Tensor:
        """rows(features), remembering both for restore()."""
        self.features, self.reduced = features, self.rows(features)
        return self.reduced

    def restore(self, kept_out: torch.Tensor) -> torch.Tensor:
        """Full-length output from the K rows' output ``kept_out`` of the pruned part (reduce() ran first)."""
        if self.source is None:
            return recover_passthrough(self.features.to(kept_out.dtype), self.keep_index, kept_out)
        if self.merge:
            return add_source_update(self.features, self.reduced, kept_out, self.source)
        return recover_residual(self.features, self.keep_index, kept_out, self.source)


def recovery_windows(settings: "PruneSettings", height: int, width: int, ratio: float,
                     device: torch.device) -> Optional[torch.Tensor]:
    """The windows of ``settings``' recovery on a height x width token grid (local_windows), or None unless it
    searches within windows ("local", "local merge")."""
    return local_windows(height, width, ratio, device) if settings.recovery in WINDOWED_RECOVERY else None


def plan_tokens(q: torch.Tensor, k: torch.Tensor, features: torch.Tensor, settings: "PruneSettings", ratio: float,
                windows: Optional[torch.Tensor]) -> TokenPlan:
    """The TokenPlan at ``ratio``: G-WPR scores from q / k [B, H, N, D] over ``settings``' query rows pick the kept
    tokens, and the recovery source of every token is searched by cosine similarity of ``features`` [B, N, C]
    (within ``windows``, recovery_windows', when given; none for "passthrough")."""
    rows = score_query_rows(q.shape[2], settings.score_queries, q.device)
    keep_index = keep_index_for(gwpr_scores(q, k, settings.iterations, query_index=rows), ratio, windows)
    source = None if settings.recovery == "passthrough" else recovery_source(features, keep_index, windows)
    return TokenPlan(keep_index, source, q.shape[2], merge=settings.recovery in MERGING_RECOVERY)


def resolve_block_range(block_start: int, block_end: int, default: tuple, block_count: int, what: str) -> tuple:
    """The inclusive (first, last) block index a DiT prunes: -1 takes the default (first, last) pair's entry.
    Raises ValueError naming the valid indices when the range is empty or outside the model's blocks."""
    first = default[0] if block_start == -1 else block_start
    last = default[1] if block_end == -1 else block_end
    if not 0 <= first <= last < block_count:
        raise ValueError(f"block range {first}..{last} does not fit this model's {block_count} {what} "
                         f"(indices 0..{block_count - 1}; block_start must not exceed block_end)")
    return first, last


def parse_levels(text: str) -> Optional[tuple]:
    """"auto" -> None (select stages by token count), else a sorted tuple of downsample factors from "1, 2, 4"."""
    cleaned = text.strip().lower()
    if cleaned == AUTO_LEVELS:
        return None
    parts = [part.strip() for part in cleaned.split(",") if part.strip()]
    if not parts:
        raise ValueError("levels is empty: use 'auto' or a comma-separated list of downsample factors such as '1,2'")
    factors = set()
    for part in parts:
        if not part.isdigit() or int(part) < 1 or int(part) & (int(part) - 1):
            raise ValueError(f"levels: '{part}' is not a downsample factor (1, 2, 4, 8, ...); use 'auto' or e.g. '1,2'")
        factors.add(int(part))
    return tuple(sorted(factors))


@dataclass(frozen=True)
class Stage:
    """One attention stage: its resolution level (downsample factor vs. the latent) and whether DSAP spares it early
    (it is the first stage of a down level or the last stage of an up level)."""
    level: int
    dsap_protected: bool


def classify_stages(stages: list) -> list:
    """stages: ordered (section, level) pairs with section "input" | "middle" | "output" -> list of Stage."""
    first_down, last_up = {}, {}
    for position, (section, level) in enumerate(stages):
        if section == "input":
            first_down.setdefault(level, position)
        elif section == "output":
            last_up[level] = position
    protected = set(first_down.values()) | set(last_up.values())
    return [Stage(level, position in protected) for position, (_, level) in enumerate(stages)]


@dataclass(frozen=True)
class PruneSettings:
    """The node's settings, in input order; ``error()`` is the one check behind prompt validation and
    ``apply_token_prune``."""
    ratio: float = setting(0.5, "Fraction of tokens pruned in each selected stage (0 = unchanged model). AT-EDM's "
                                "main SD-XL setting prunes about 0.6.",
                           minimum=0.0, maximum=MAX_RATIO, step=0.05)
    dsap: bool = setting(True, "Denoising-steps-aware pruning: during the first dsap_percent of sampling, the first "
                               "stage of every down level and the last stage of every up level are not pruned (early "
                               "steps set the layout). off = prune every selected stage always.", on_off=True)
    dsap_percent: float = setting(0.3, "Part of the sampling (0-1, by sigma) during which DSAP spares those stages.",
                                  minimum=0.0, maximum=1.0, step=0.05, advanced=True)
    levels: str = setting(
        AUTO_LEVELS, "Which resolution levels prune: 'auto' = every stage with at least min_tokens tokens, or "
                     "downsample factors such as '1,2' (1 = full latent resolution; SDXL has attention at 2 and 4, "
                     "SD1.5 at 1, 2, 4 and 8; a Flux / WAN block range counts as level 1).", advanced=True)
    min_tokens: int = setting(
        1024, "With levels = auto: a stage prunes only when it has at least this many tokens (1024 = 32x32 tokens; "
              "at 512x512 SD1.5 that is levels 1 and 2, at 1024x1024 SDXL every attention level).",
        minimum=1, maximum=1 << 20, advanced=True)
    recovery: str = setting(
        "merge", "How pruned tokens are refilled before the convolutions: each keeps its own features and adds the "
                 "update of its source, the most similar kept token. merge = searched in the whole stage, and the "
                 "stage computes each kept token's group (itself and the tokens it is the source of) as their mean "
                 "(ToMe-style; best quality, same cost); similarity = the same search, kept tokens computed alone "
                 "(AT-EDM's pruning); local merge / local = the source is searched in the token's 2x2 window (larger "
                 "above ratio 0.75; on Flux / WAN runs of 4 tokens along a row), whose best token is always kept: "
                 "cheaper, lower quality; passthrough = pruned tokens take no update from the stage.",
        options=RECOVERY_MODES)
    iterations: int = setting(1, "G-WPR power-iteration rounds (each costs one extra pass over the attention scores; "
                                 "1 = attention each token receives).", minimum=1, maximum=10, advanced=True)
    score_queries: float = setting(
        0.0625,  # 256 of 4096 rows; 0.25 cost as much as attention
        "Fraction of query rows (spread evenly over the image) used to estimate the scores; bounds the scoring cost "
        "to this fraction of one attention map per round.",
        minimum=0.01, maximum=1.0, step=0.0005, advanced=True)  # a step below 0.001 shows 4 decimals: 0.0625
    block_start: int = setting(
        -1, "Flux / WAN only: first block that runs on the kept tokens; its self-attention ranks them. Flux counts "
            "double-stream blocks (0-18 on Flux dev), WAN its blocks (0-29 on 1.3B / 5B, 0-39 on 14B). -1 = block 1 "
            "(the first block always sees every token).", minimum=-1, maximum=1000, advanced=True)
    block_end: int = setting(
        -1, "Flux / WAN only: last block (inclusive) that runs on the kept tokens; after it the pruned tokens are "
            "refilled. -1 = the last double-stream block on Flux, the second-to-last block on WAN.",
        minimum=-1, maximum=1000, advanced=True)

    def error(self) -> Optional[str]:
        """The message for invalid settings, or None when they are valid."""
        if not 0.0 <= self.ratio <= MAX_RATIO:
            return f"ratio must be within [0, {MAX_RATIO}], got {self.ratio}"
        if not 0.0 <= self.dsap_percent <= 1.0:
            return f"dsap_percent must be within [0, 1], got {self.dsap_percent}"
        if self.iterations < 1:
            return f"iterations must be at least 1, got {self.iterations}"
        if not 0.0 < self.score_queries <= 1.0:
            return f"score_queries must be within (0, 1], got {self.score_queries}"
        if self.recovery not in RECOVERY_MODES:
            return f"recovery must be one of {RECOVERY_MODES}, got '{self.recovery}'"
        try:
            parse_levels(self.levels)
        except ValueError as err:
            return str(err)
        if self.block_start < -1 or self.block_end < -1:
            return (f"block_start and block_end must be block indices or -1 (default), got {self.block_start} and "
                    f"{self.block_end}")
        if 0 <= self.block_end < self.block_start:
            return f"block_end ({self.block_end}) must not be below block_start ({self.block_start})"
        return range_error(self)

    @functools.cached_property
    def level_factors(self) -> Optional[tuple]:
        """The selected downsample factors as a tuple, or None for "auto"."""
        return parse_levels(self.levels)

    def stage_ratio(self, stage: Stage, tokens: int, dsap_early: bool) -> float:
        """The ratio this stage prunes at: 0 when its level is not selected, or when DSAP spares it because the
        model call falls in the first dsap_percent of sampling (``dsap_early``)."""
        levels = self.level_factors
        selected = tokens >= self.min_tokens if levels is None else stage.level in levels
        if not selected:
            return 0.0
        if self.dsap and stage.dsap_protected and dsap_early:
            return 0.0
        return self.ratio
