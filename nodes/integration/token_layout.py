"""Where the video tokens of one model call sit in a video model's attention sequence, per family.

A joint self-attention sequence is [prefix (reference latent) | frames x height x width video tokens, row-major |
text]. The layout is read at APPLY_MODEL level from the latent, the conditioning and the diffusion model's own patch
size (Mochi calls no DIFFUSION_MODEL wrapper, so this level serves every family alike). Every node that needs to
know which token is which (TemporalAttnPrune, LocalWindowAttention) asks here through the family table
(integration.families.token_layout), so there is one answer per family. Each family's function below takes
(BaseModel, x, c_crossattn, conds) and returns (TokenLayout, key lengths of the model's cross-attentions).
"""
import math

import torch
import comfy.utils

from ...accel_core.temporal_prune import frame_ids


class TokenLayout:
    """The token layout of one model call.

    ``text`` is the exact text length, or with ``text_exact`` False a lower bound (HunyuanVideo adds byT5 / vision
    tokens). ``video_ids`` overrides the frame ids of the video part when tokens were dropped (LTXV keyframe
    conditioning): the video tokens then no longer form a full grid. ``video_batch``: videos per batch entry group
    (SVD keeps frames in the batch dimension).
    """

    def __init__(self, frames, height, width, prefix=0, text=0, text_exact=True, video_ids=None, video_batch=1,
                 video_last=False):
        self.frames, self.height, self.width = frames, height, width
        self.prefix, self.text, self.text_exact = prefix, text, text_exact
        self.video_last = video_last  # every token before the video is prefix, however many (MiniMax H3's packing)
        self.video_ids, self.video_batch = video_ids, video_batch
        self._frame_ids = {}

    @property
    def tokens_per_frame(self):
        return self.height * self.width

    @property
    def video_tokens(self):
        return self.video_ids.numel() if self.video_ids is not None else self.frames * self.tokens_per_frame

    @property
    def full_grid(self):
        """True when every video token of the frames x height x width grid is in the sequence."""
        return self.video_ids is None

    def prefix_for(self, length):
        """The prefix length of a joint self-attention of ``length`` tokens."""
        return length - self.video_tokens - self.text if self.video_last else self.prefix

    def matches(self, length):
        """True when a self-attention of ``length`` tokens is the joint one over this layout."""
        minimum = self.prefix + self.video_tokens + self.text
        return length == minimum or ((not self.text_exact or self.video_last) and length > minimum)

    def frame_ids_for(self, length):
        """Frame id per token (-1: no frame) for a joint self-attention of ``length`` tokens, else None."""
        if not self.matches(length):
            return None
        if length not in self._frame_ids:
            prefix = self.prefix_for(length)
            if self.video_ids is None:
                ids = frame_ids(prefix, self.frames, self.tokens_per_frame, length - prefix - self.video_tokens)
            else:
                none = torch.full((1,), -1, dtype=torch.long)
                ids = torch.cat([none.expand(prefix), self.video_ids.long().cpu(),
                                 none.expand(length - self.prefix - self.video_tokens)])
            self._frame_ids[length] = ids
        return self._frame_ids[length]


def _patched(size, patch):
    return -(-size // patch)  # the DiTs pad to a multiple of the patch size


def _token_counts(*tensors):
    """Sequence lengths (dim -2 of [B, L, C]) of the tensors that are present: a model's cross-attention keys."""
    return {t.shape[-2] for t in tensors if t is not None}


def svd(model, x, c_crossattn, conds):
    frames = int(conds.get("num_video_frames", x.shape[0]))
    return TokenLayout(frames, 1, 1, video_batch=max(1, x.shape[0] // frames)), set()


def wan(model, x, c_crossattn, conds):
    pt, ph, pw = model.diffusion_model.patch_size
    frames = _patched(x.shape[2], pt)
    if conds.get("time_dim_concat") is not None:  # concatenated along time after both are padded (wan/model.py)
        frames += _patched(conds["time_dim_concat"].shape[2], pt)
    prefix = 0
    reference = conds.get("reference_latent")
    if reference is not None and getattr(model.diffusion_model, "ref_conv", None) is not None:
        prefix = (reference.shape[-2] // ph) * (reference.shape[-1] // pw)  # ref_conv: stride = spatial patch
    layout = TokenLayout(frames, _patched(x.shape[-2], ph), _patched(x.shape[-1], pw), prefix=prefix)
    return layout, _token_counts(c_crossattn, conds.get("clip_fea"))


def wan_with_extra_tokens(model, x, c_crossattn, conds):
    """Wan 2.2 Animate / S2V and HuMo: reference-frame (and S2V's motion) tokens follow the video tokens; they are
    counted like text (never windowed or pruned), as a lower bound."""
    layout, cross_lengths = wan(model, x, c_crossattn, conds)
    layout.text_exact = False
    return layout, cross_lengths


def hunyuan_video(model, x, c_crossattn, conds):
    pt, ph, pw = model.diffusion_model.patch_size
    reference = conds.get("ref_latent")  # I2V reference tokens go first (hunyuan_video/model.py)
    prefix = 0 if reference is None else math.prod(s // p for s, p in zip(reference.shape[2:], (pt, ph, pw)))
    layout = TokenLayout(x.shape[2] // pt, x.shape[3] // ph, x.shape[4] // pw, prefix=prefix,
                         text=c_crossattn.shape[1], text_exact=False)
    return layout, set()  # joint attention only: text is part of the sequence


def ltxv(model, x, c_crossattn, conds):
    pt, ph, pw = model.diffusion_model.patchifier.patch_size
    frames, height, width = x.shape[2] // pt, x.shape[3] // ph, x.shape[4] // pw
    video_ids = None
    if conds.get("keyframe_idxs") is not None and conds.get("denoise_mask") is not None:
        # the model drops tokens whose denoise mask is negative (lightricks/model.py _process_input)
        tokens = model.diffusion_model.patchifier.patchify(conds["denoise_mask"])[0]
        kept = ~torch.any(tokens < 0, dim=-1)[0]
        video_ids = (torch.arange(frames * height * width, device=kept.device) // (height * width))[kept]
    return TokenLayout(frames, height, width, video_ids=video_ids), _token_counts(c_crossattn)


def ltxav(model, x, c_crossattn, conds):
    """LTX-2: the video stream's self-attention is laid out as LTX-Video's; the audio stream (one token per audio
    latent frame) is never touched, and an audio self-attention as long as the video one makes the call ambiguous.
    The model gets video and audio packed into one tensor, with their shapes in ``latent_shapes``."""
    video, audio = comfy.utils.unpack_latents(x, conds["latent_shapes"])
    video_conds = {}
    if conds.get("keyframe_idxs") is not None and conds.get("denoise_mask") is not None:
        video_conds = {"keyframe_idxs": conds["keyframe_idxs"],
                       "denoise_mask": comfy.utils.unpack_latents(conds["denoise_mask"], conds["latent_shapes"])[0]}
    layout, cross_lengths = ltxv(model, video, c_crossattn, video_conds)
    return layout, cross_lengths | {audio.shape[2]}


def cogvideox(model, x, c_crossattn, conds):
    """CogVideoX: joint attention over [text, video]; 1.5 also patches time (patch_size_t)."""
    patch, patch_t = model.diffusion_model.patch_size, model.diffusion_model.patch_size_t or 1
    layout = TokenLayout(x.shape[2] // patch_t, x.shape[3] // patch, x.shape[4] // patch, prefix=c_crossattn.shape[1])
    return layout, set()


def kandinsky5(model, x, c_crossattn, conds):
    """Kandinsky 5: self-attention over the video tokens only (text by cross-attention; the text blocks' own
    self-attention has the text's length, so a text as long as the video makes the call ambiguous)."""
    pt, ph, pw = model.diffusion_model.patch_size
    layout = TokenLayout(_patched(x.shape[2], pt), _patched(x.shape[3], ph), _patched(x.shape[4], pw))
    return layout, _token_counts(c_crossattn)


def minimax_h3(model, x, c_crossattn, conds):
    """MiniMax H3: one packed sequence [text, references, audio, video]; the video rows (frame-major, patch (1, 2, 2))
    come last, and everything before them is attended as it is. Video and audio reach the model packed into one
    tensor, with their shapes in ``latent_shapes``."""
    video = comfy.utils.unpack_latents(x, conds["latent_shapes"])[0]
    pt, ph, pw = model.diffusion_model.patch_size
    return TokenLayout(video.shape[2] // pt, video.shape[3] // ph, video.shape[4] // pw, video_last=True), set()


def mochi(model, x, c_crossattn, conds):
    patch = model.diffusion_model.patch_size
    text = int(conds.get("num_tokens", 256))
    if c_crossattn is not None:
        text = min(text, c_crossattn.shape[1])  # the model crops q_y[:, :num_tokens]
    return TokenLayout(x.shape[2], x.shape[3] // patch, x.shape[4] // patch, text=text), set()


class ModelCall:
    """One model call: its token layout and stable names for its joint self-attention sites.

    A site is (block type, block index, n-th joint self-attention of that block in this call). Models that report
    their block (Flux-style ``block_index`` / ``block_type``, WAN via integration.compat) name sites by it; LTXV and
    Mochi report nothing, so their sites are numbered in call order, ("None", "None", n).
    """

    def __init__(self, layout, double_blocks=0):
        self.layout = layout
        self.double_blocks = double_blocks
        self._seen = {}

    def site(self, options):
        block = (options.get("block_type"), options.get("block_index"))
        ordinal = self._seen.get(block, 0)
        self._seen[block] = ordinal + 1
        return block + (ordinal,)

    def block_number(self, site):
        """Global block number of a site: single-stream blocks count after the double-stream ones; models that
        report no block count their joint self-attention calls."""
        block_type, block_index, ordinal = site
        if block_index is None:
            return ordinal
        return block_index + (self.double_blocks if block_type == "single" else 0)
