"""Within-frame self-attention over a video token sequence (the pruned-head path of TemporalAttnPrune).

Every video token attends only to the tokens of its own latent frame plus the non-video tokens (text, reference
latents: frame id -1), which stay visible to every frame. Non-video queries keep full attention. This equals dense
attention with a block-diagonal frame mask, but costs about 1/F of it: when all frames have the same token count the
frames are folded into the batch and each frame is one small dense attention call; otherwise the block-diagonal mask
is applied as a chunked ``mask_mod``.
"""
from typing import Optional

import torch

from .attention import attention


def _as_4d(mask):
    """ComfyUI mask convention -> 4-D: [Lq, Lk] -> [1, 1, Lq, Lk], [B, Lq, Lk] -> [B, 1, Lq, Lk]."""
    if mask is None or mask.dim() == 4:
        return mask
    if mask.dim() == 2:
        return mask.view(1, 1, *mask.shape)
    if mask.dim() == 3:
        return mask.unsqueeze(1)
    raise ValueError(f"attention mask must have 2 to 4 dims, got shape {tuple(mask.shape)}")


def _frame_groups(frame_of_token):
    """(positions of non-video tokens [T], positions of video tokens grouped by frame [F, n]) or None when the
    frames differ in size."""
    order = torch.argsort(frame_of_token, stable=True)
    text_count = int((frame_of_token < 0).sum().item())
    counts = torch.bincount(frame_of_token[frame_of_token >= 0])
    if counts.numel() == 0 or bool((counts != counts[0]).any()):
        return None
    return order[:text_count], order[text_count:].view(counts.numel(), int(counts[0].item()))


def _fold_frames(x, frames):
    """[B, H, F*n, D] (frame-major) -> [B*F, H, n, D]."""
    b, h, _, d = x.shape
    return x.view(b, h, frames, -1, d).transpose(1, 2).reshape(b * frames, h, -1, d)


def _repeat_per_frame(x, frames):
    """[B, H, T, D] -> [B*F, H, T, D] (the same rows for every frame of a batch element)."""
    return x.unsqueeze(1).expand(-1, frames, -1, -1, -1).reshape(x.shape[0] * frames, *x.shape[1:])


def _folded_key_mask(key_mask, video, text, batch, frames):
    """Key mask [mb, mh, 1, L] -> [B*F, mh, 1, n + T] in the folded key order (frame's own keys, then text)."""
    mh = key_mask.shape[1]
    own = key_mask[..., video.flatten()].view(key_mask.shape[0], mh, frames, -1)     # [mb, mh, F, n]
    own = own.transpose(1, 2).expand(batch, -1, -1, -1)                              # [B, F, mh, n]
    shared = key_mask[..., text].unsqueeze(1).expand(batch, frames, mh, 1, -1)       # [B, F, mh, 1, T]
    own = own.unsqueeze(3)                                                           # [B, F, mh, 1, n]
    return torch.cat([own, shared], dim=-1).reshape(batch * frames, mh, 1, -1)


def frame_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, frame_of_token: torch.Tensor, *,
                    mask: Optional[torch.Tensor] = None, backend: str = "auto",
                    scale: Optional[float] = None) -> torch.Tensor:
    """Self-attention of q, k, v [B, H, L, D] restricted to each video token's own frame (plus non-video keys).

    frame_of_token: LongTensor [L], frame index per token or -1 for tokens that belong to no frame. mask: optional
    ComfyUI-style attention mask (bool or additive) over [Lq, Lk], applied on top. Returns [B, H, L, D].
    """
    frame_of_token = frame_of_token.to(q.device)
    mask = _as_4d(mask)
    groups = _frame_groups(frame_of_token)
    if groups is None or (mask is not None and mask.shape[-2] != 1):
        def same_frame(b, h, q_idx, kv_idx):
            fq, fk = frame_of_token[q_idx], frame_of_token[kv_idx]
            return (fq == fk) | (fk < 0) | (fq < 0)
        return attention(q, k, v, backend=backend, mask=mask, mask_mod=same_frame, scale=scale)

    text, video = groups
    batch, frames = q.shape[0], video.shape[0]
    flat = video.flatten()
    folded_q = _fold_frames(q[:, :, flat], frames)
    folded_k = torch.cat([_fold_frames(k[:, :, flat], frames), _repeat_per_frame(k[:, :, text], frames)], dim=2)
    folded_v = torch.cat([_fold_frames(v[:, :, flat], frames), _repeat_per_frame(v[:, :, text], frames)], dim=2)
    folded_mask = None if mask is None else _folded_key_mask(mask, video, text, batch, frames)
    video_out = attention(folded_q, folded_k, folded_v, backend=backend, mask=folded_mask, scale=scale)

    out = q.new_empty(q.shape)
    out[:, :, flat] = video_out.view(batch, frames, *video_out.shape[1:]).transpose(1, 2).flatten(2, 3)
    if text.numel():
        out[:, :, text] = attention(q[:, :, text], k, v, backend=backend, mask=mask, scale=scale)
    return out
