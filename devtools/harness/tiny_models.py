"""Tiny random-weight instances of the REAL ComfyUI model classes, for tests and plumbing benchmarks on CPU.

Each model is built the way ``comfy.sd.load_diffusion_model_state_dict`` builds one (model config class from
``comfy.supported_models`` -> ``get_model()`` -> ``ModelPatcher``), only with small dimensions and deterministic
random weights instead of a checkpoint. ComfyUI's layers are created with ``torch.empty``, so every parameter is
initialised here. Import only after ``devtools.harness.comfy_env.boot`` (this module imports ComfyUI).

Latent grids are deliberately not square (height != width) so that a transposed reshape cannot go unnoticed.
"""
import dataclasses
import math

import torch

import comfy.ldm.flux.model
import comfy.ldm.hunyuan_video.model
import comfy.model_management
import comfy.model_patcher
import comfy.sample
import comfy.supported_models as supported
import comfy.utils

FAMILIES = ("wan21", "wan22", "hunyuan_video", "ltxv", "mochi", "flux", "qwen_image", "sd15", "sdxl", "svd")

DEFAULT_FRAMES = 3  # latent frames of the video families: enough for a first, a middle and a last frame
TEXT_TOKENS = 16  # DiT text length (padded to this; some families carry an attention mask)
CLIP_TOKENS = 77  # the UNet families' CLIP context length
TEXT_DIM = 64  # width of the fake text-encoder output every family is given
POOLED_DIM = 32  # width of the fake pooled (CLIP) vector for the families that take one


@dataclasses.dataclass
class TinyCase:
    patcher: comfy.model_patcher.ModelPatcher
    latent: torch.Tensor  # what KSampler gets (after comfy.sample.fix_empty_latent_channels)
    positive: list  # CONDITIONING: [[tensor, {extra keys}]]
    negative: list
    family: str
    frames: int  # latent frames; 1 for image families
    noise_mask: torch.Tensor = None  # the latent's "noise_mask" (0 = keep), e.g. WAN 2.2 TI2V's start frame


def build(family, **overrides):
    """A fresh TinyCase of ``family``. Common overrides: ``frames`` (video families), ``height`` / ``width`` (latent
    grid), ``seed`` (weights and conditioning; same seed -> bit-identical weights)."""
    try:
        builder = _BUILDERS[family]
    except KeyError:
        raise ValueError(f"unknown family {family!r}; known: {FAMILIES}") from None
    return builder(**overrides)


def sample(case, model=None, steps=4, cfg=3.0, seed=0, sampler="euler", scheduler="simple", denoise=1.0,
           start_step=None, last_step=None, latent=None):
    """Run comfy.sample.sample as KSampler / KSamplerAdvanced do; returns the output latent.

    ``model`` defaults to the case's own patcher (pass a patched clone to test a technique); ``latent`` defaults to
    the case's latent.
    """
    model = case.patcher if model is None else model
    latent = case.latent if latent is None else latent
    latent = comfy.sample.fix_empty_latent_channels(model, latent)
    noise = comfy.sample.prepare_noise(latent, seed)
    return comfy.sample.sample(model, noise, steps, cfg, sampler, scheduler, case.positive, case.negative, latent,
                               denoise=denoise, start_step=start_step, last_step=last_step,
                               noise_mask=case.noise_mask, disable_pbar=True, seed=seed)


# ---------------------------------------------------------------------------------------------------------------
# construction


def init_weights_(module, seed):
    """Deterministic random weights: matrices and kernels ~ N(0, 1/fan_in), biases ~ N(0, 0.02), other vectors
    (norm scales, blend factors) = 1. Buffers are left as the model computed them."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if param.ndim >= 2:
                fan_in = param[0].numel()
                param.copy_(torch.randn(param.shape, generator=generator) / math.sqrt(fan_in))
            elif name.endswith("bias"):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
            else:
                param.fill_(1.0)
    return module


def make_patcher(config_class, unet_config, seed, after_init=None):
    """Mirror comfy.sd.load_diffusion_model_state_dict with random weights instead of a state dict.

    ``after_init`` entries are written over the config after the class merged its ``unet_extra_config`` (which
    would otherwise impose full-size head counts).
    """
    config = config_class(unet_config)
    config.unet_config.update(after_init or {})
    config.set_inference_dtype(torch.float32, None)
    model = config.get_model({}, "")
    init_weights_(model.diffusion_model, seed)
    offload = comfy.model_management.unet_offload_device()
    return comfy.model_patcher.ModelPatcher(model.to(offload), load_device=comfy.model_management.get_torch_device(),
                                            offload_device=offload)


def _known_to_this_comfyui(params_class, unet_config):
    """``unet_config`` without the keys this ComfyUI's ``params_class`` does not have.

    Newer ComfyUI added params whose value here reproduces the older behaviour (Flux ``txt_ids_dims=[]``,
    HunyuanVideo ``meanflow_sum=False``); older ones reject them as unexpected keyword arguments.
    """
    fields = {field.name for field in dataclasses.fields(params_class)}
    optional = {"txt_ids_dims", "meanflow_sum"}
    return {key: value for key, value in unet_config.items() if key in fields or key not in optional}


def _randn(generator, *shape):
    return torch.randn(shape, generator=generator)


def _text_pair(generator, tokens=TEXT_TOKENS, dim=TEXT_DIM):
    return _randn(generator, 1, tokens, dim), _randn(generator, 1, tokens, dim)


def _padding_mask(valid, tokens=TEXT_TOKENS):
    """A T5-style attention mask: 1 for the first ``valid`` tokens, 0 for padding."""
    mask = torch.zeros(1, tokens, dtype=torch.long)
    mask[:, :valid] = 1
    return mask


# ---------------------------------------------------------------------------------------------------------------
# video DiTs


def _wan(config_class, channels, frames, height, width, seed):
    unet_config = dict(image_model="wan2.1", model_type="t2v", patch_size=(1, 2, 2), text_len=512, in_dim=channels,
                       dim=128, ffn_dim=256, freq_dim=256, text_dim=TEXT_DIM, out_dim=channels, num_heads=2,
                       num_layers=4, window_size=(-1, -1), qk_norm=True, cross_attn_norm=True, eps=1e-6)
    patcher = make_patcher(config_class, unet_config, seed)
    g = torch.Generator().manual_seed(seed + 1)
    pos, neg = _text_pair(g)
    latent = torch.zeros(1, channels, frames, height, width)
    return patcher, latent, [[pos, {}]], [[neg, {}]], g


def build_wan21(frames=DEFAULT_FRAMES, height=12, width=16, seed=0):
    """WAN 2.1 T2V (WanModel): 16-channel latent, patch (1, 2, 2), 4 blocks, dim 128 = 2 heads x 64."""
    patcher, latent, pos, neg, _ = _wan(supported.WAN21_T2V, 16, frames, height, width, seed)
    return TinyCase(patcher, latent, pos, neg, "wan21", frames)


def build_wan22(frames=DEFAULT_FRAMES, height=12, width=16, seed=0, ti2v=True):
    """WAN 2.2 TI2V 5B layout: WAN22_T2V config (in_dim = out_dim = 48, the Wan22 latent format, model_base.WAN22).

    With ``ti2v`` (default) the case is image-to-video the way Wan22ImageToVideoLatent makes it: a given first latent
    frame and a noise_mask that is 0 there, so ComfyUI feeds the model one timestep per latent frame (the block
    modulation ``vec`` is then per frame rather than per sample).
    """
    patcher, latent, pos, neg, g = _wan(supported.WAN22_T2V, 48, frames, height, width, seed)
    noise_mask = None
    if ti2v:
        latent[:, :, :1] = _randn(g, 1, 48, 1, height, width)
        noise_mask = torch.ones(1, 1, frames, height, width)
        noise_mask[:, :, :1] = 0.0
    return TinyCase(patcher, latent, pos, neg, "wan22", frames, noise_mask)


def build_hunyuan_video(frames=DEFAULT_FRAMES, height=12, width=16, seed=0):
    """HunyuanVideo 1.0 T2V: patch [1, 2, 2], 4 double + 4 single blocks, hidden 128 = 2 heads x 64."""
    unet_config = dict(image_model="hunyuan_video", in_channels=16, out_channels=16, patch_size=[1, 2, 2],
                       vec_in_dim=POOLED_DIM, context_in_dim=TEXT_DIM, hidden_size=128, mlp_ratio=4.0, num_heads=2,
                       depth=4, depth_single_blocks=4, axes_dim=[16, 24, 24], theta=256, qkv_bias=True,
                       guidance_embed=True, byt5=False, meanflow=False, use_cond_type_embedding=False,
                       vision_in_dim=None, meanflow_sum=False)
    unet_config = _known_to_this_comfyui(comfy.ldm.hunyuan_video.model.HunyuanVideoParams, unet_config)
    patcher = make_patcher(supported.HunyuanVideo, unet_config, seed)
    g = torch.Generator().manual_seed(seed + 1)
    pos, neg = _text_pair(g)
    extra = lambda: {"pooled_output": _randn(g, 1, POOLED_DIM), "guidance": 6.0}  # noqa: E731
    return TinyCase(patcher, torch.zeros(1, 16, frames, height, width), [[pos, extra()]], [[neg, extra()]],
                    "hunyuan_video", frames)


def build_ltxv(frames=DEFAULT_FRAMES, height=6, width=8, seed=0):
    """LTX-Video (LTXVModel): 128-channel latent, patch 1 (one token per latent pixel), 4 blocks, 2 heads x 32,
    T5-style padded text with an attention mask."""
    unet_config = dict(image_model="ltxv", in_channels=128, cross_attention_dim=64, attention_head_dim=32,
                       num_attention_heads=2, caption_channels=TEXT_DIM, num_layers=4)
    patcher = make_patcher(supported.LTXV, unet_config, seed)
    g = torch.Generator().manual_seed(seed + 1)
    pos, neg = _text_pair(g)
    return TinyCase(patcher, torch.zeros(1, 128, frames, height, width),
                    [[pos, {"attention_mask": _padding_mask(12), "frame_rate": 25}]],
                    [[neg, {"attention_mask": _padding_mask(7), "frame_rate": 25}]], "ltxv", frames)


def build_mochi(frames=DEFAULT_FRAMES, height=12, width=16, seed=0):
    """Mochi (AsymmDiTJoint): 12-channel latent, patch 2, 4 blocks, visual 64 = 2 heads x 32, text stream 64 wide,
    T5-style padded text with an attention mask (the valid-token counts differ, so cond and uncond run separately,
    as they do in ComfyUI). AsymmetricJointBlock insists on a visual MLP width of 12288, hence the odd ratio."""
    unet_config = dict(image_model="mochi_preview", depth=4, patch_size=2, num_heads=2, hidden_size_x=64,
                       hidden_size_y=64, mlp_ratio_x=12288 / 64, mlp_ratio_y=4.0, learn_sigma=False, in_channels=12,
                       qk_norm=True, qkv_bias=False, out_bias=True, attn_drop=0.0, patch_embed_bias=True,
                       posenc_preserve_area=True, timestep_mlp_bias=True, attend_to_padding=False,
                       timestep_scale=1000.0, use_t5=True, t5_feat_dim=TEXT_DIM, t5_token_length=TEXT_TOKENS,
                       rope_theta=10000.0)
    patcher = make_patcher(supported.GenmoMochi, unet_config, seed)
    g = torch.Generator().manual_seed(seed + 1)
    pos, neg = _text_pair(g)
    return TinyCase(patcher, torch.zeros(1, 12, frames, height, width),
                    [[pos, {"attention_mask": _padding_mask(12)}]], [[neg, {"attention_mask": _padding_mask(7)}]],
                    "mochi", frames)


# ---------------------------------------------------------------------------------------------------------------
# image DiTs


def build_flux(height=12, width=16, seed=0):
    """Flux dev (guidance-distilled): patch 2, 4 double + 4 single blocks, hidden 128 = 2 heads x 64."""
    unet_config = dict(image_model="flux", guidance_embed=True, in_channels=16, out_channels=16,
                       vec_in_dim=POOLED_DIM, context_in_dim=TEXT_DIM, hidden_size=128, mlp_ratio=4.0, num_heads=2,
                       depth=4, depth_single_blocks=4, axes_dim=[16, 24, 24], theta=10000, patch_size=2,
                       qkv_bias=True, txt_ids_dims=[])
    unet_config = _known_to_this_comfyui(comfy.ldm.flux.model.FluxParams, unet_config)
    patcher = make_patcher(supported.Flux, unet_config, seed)
    g = torch.Generator().manual_seed(seed + 1)
    pos, neg = _text_pair(g)
    extra = lambda: {"pooled_output": _randn(g, 1, POOLED_DIM), "guidance": 3.5}  # noqa: E731
    return TinyCase(patcher, torch.zeros(1, 16, height, width), [[pos, extra()]], [[neg, extra()]], "flux", 1)


def build_qwen_image(height=12, width=16, seed=0):
    """Qwen-Image (QwenImageTransformer2DModel): 16-channel latent with a time axis of 1, patch 2, 4 blocks,
    inner 128 = 2 heads x 64."""
    unet_config = dict(image_model="qwen_image", patch_size=2, in_channels=64, out_channels=16, num_layers=4,
                       attention_head_dim=64, num_attention_heads=2, joint_attention_dim=TEXT_DIM,
                       axes_dims_rope=(16, 24, 24))
    patcher = make_patcher(supported.QwenImage, unet_config, seed)
    g = torch.Generator().manual_seed(seed + 1)
    pos, neg = _text_pair(g)
    # EmptySD3LatentImage gives [B, 16, H, W]; KSampler adds the time axis (Wan21 latent format is 3-D)
    return TinyCase(patcher, torch.zeros(1, 16, 1, height, width), [[pos, {}]], [[neg, {}]], "qwen_image", 1)


# ---------------------------------------------------------------------------------------------------------------
# UNets


def _unet_config(**changes):
    config = dict(use_checkpoint=False, image_size=32, use_spatial_transformer=True, legacy=False, in_channels=4,
                  out_channels=4, model_channels=32, num_res_blocks=[1, 1], channel_mult=[1, 2],
                  transformer_depth=[1, 1], transformer_depth_output=[1, 1, 1, 1], transformer_depth_middle=1,
                  context_dim=TEXT_DIM, use_linear_in_transformer=False, adm_in_channels=None,
                  use_temporal_resblock=False, use_temporal_attention=False)
    config.update(changes)
    return config


def build_sd15(height=16, width=24, seed=0):
    """SD 1.5 layout: attention at every level (the highest resolution included), 2 levels, 2 heads."""
    patcher = make_patcher(supported.SD15, _unet_config(), seed, after_init={"num_heads": 2, "num_head_channels": -1})
    g = torch.Generator().manual_seed(seed + 1)
    pos, neg = _text_pair(g, CLIP_TOKENS)
    return TinyCase(patcher, torch.zeros(1, 4, height, width), [[pos, {}]], [[neg, {}]], "sd15", 1)


def build_sdxl(height=16, width=24, seed=0):
    """SDXL layout: no attention at the highest resolution, 3 levels, linear proj_in, pooled + size conditioning
    through ``y`` (adm = pooled + 6 x 256 size embeddings), head dim 16."""
    config = _unet_config(num_res_blocks=[1, 1, 1], channel_mult=[1, 2, 2], transformer_depth=[0, 1, 1],
                          transformer_depth_output=[0, 0, 1, 1, 1, 1], use_linear_in_transformer=True,
                          num_classes="sequential", adm_in_channels=POOLED_DIM + 6 * 256)
    patcher = make_patcher(supported.SDXL, config, seed, after_init={"num_heads": -1, "num_head_channels": 16})
    g = torch.Generator().manual_seed(seed + 1)
    pos, neg = _text_pair(g, CLIP_TOKENS)
    sizes = {"width": width * 8, "height": height * 8, "crop_w": 0, "crop_h": 0,
             "target_width": width * 8, "target_height": height * 8}
    return TinyCase(patcher, torch.zeros(1, 4, height, width),
                    [[pos, dict(sizes, pooled_output=_randn(g, 1, POOLED_DIM))]],
                    [[neg, dict(sizes, pooled_output=_randn(g, 1, POOLED_DIM))]], "sdxl", 1)


def build_svd(frames=DEFAULT_FRAMES, height=16, width=24, seed=0):
    """SVD img2vid: frames live in the batch dimension; temporal attention (time_stack) and temporal resblocks;
    the start image latent is concatenated to the input channels."""
    config = _unet_config(in_channels=8, use_linear_in_transformer=True, adm_in_channels=768,
                          num_classes="sequential", extra_ff_mix_layer=True, use_spatial_context=True,
                          merge_strategy="learned_with_images", merge_factor=0.0, video_kernel_size=[3, 1, 1],
                          use_temporal_resblock=True, use_temporal_attention=True,
                          disable_temporal_crossattention=False)
    patcher = make_patcher(supported.SVD_img2vid, config, seed, after_init={"num_heads": -1, "num_head_channels": 16})
    g = torch.Generator().manual_seed(seed + 1)
    start_latent = _randn(g, 1, 4, height, width)
    image_embed = _randn(g, 1, 1, TEXT_DIM)  # the CLIP-vision embedding SVD_img2vid_Conditioning passes
    extra = {"motion_bucket_id": 127, "fps": 6, "augmentation_level": 0.0}
    return TinyCase(patcher, torch.zeros(frames, 4, height, width),
                    [[image_embed, dict(extra, concat_latent_image=start_latent)]],
                    [[torch.zeros_like(image_embed), dict(extra, concat_latent_image=torch.zeros_like(start_latent))]],
                    "svd", frames)


# ---------------------------------------------------------------------------------------------------------------
# model files for UNETLoader


# The WAN 2.1 T2V file of save_unet_file (also what bench.trained.train_tiny trains): as small as UNETLoader's detection
# allows, which derives num_heads = dim // 128 and a 4096-wide text input.
WAN21_FILE_CONFIG = dict(image_model="wan2.1", model_type="t2v", patch_size=(1, 2, 2), text_len=512, in_dim=16,
                         dim=256, ffn_dim=512, freq_dim=256, text_dim=4096, out_dim=16, num_heads=2, num_layers=4,
                         window_size=(-1, -1), qk_norm=True, cross_attn_norm=True, eps=1e-6)


def save_unet_file(family, path, seed=0):
    """Write a diffusion-model file that ComfyUI's UNETLoader (comfy.sd.load_diffusion_model) detects as ``family``.

    "wan21": a complete WAN 2.1 T2V, as small as detection allows (it derives num_heads = dim // 128 and builds
    a 4096-wide text input): dim 256 = 2 heads x 128, 4 blocks, 16-channel latent. Loads and samples like a real one.

    "flux": detection pins Flux to 24 heads x 128 (hidden 3072) and an MLP ratio of 4, so no complete Flux file can
    be small. This file holds only the tensors detection reads (img_in, vector_in, guidance_in and one key per
    block), so it loads as a Flux dev model with 1 double + 1 single block whose other weights are left as ComfyUI
    allocated them: for loading and model-family tests only, never for sampling.
    """
    if family == "wan21":
        model = make_patcher(supported.WAN21_T2V, WAN21_FILE_CONFIG, seed).model.diffusion_model
        state_dict = {k: v.contiguous() for k, v in model.state_dict().items()}
    elif family == "flux":
        g = torch.Generator().manual_seed(seed)
        hidden, head_dim = 3072, 128
        state_dict = {
            "img_in.weight": _randn(g, hidden, 16 * 2 * 2) / 8.0,  # 16 latent channels x patch 2 x 2
            "vector_in.in_layer.weight": _randn(g, hidden, 768) / math.sqrt(768),
            "guidance_in.in_layer.weight": _randn(g, hidden, 256) / 16.0,
            "double_blocks.0.img_attn.norm.key_norm.scale": torch.ones(head_dim),
            "single_blocks.0.norm.key_norm.scale": torch.ones(head_dim),
        }
    else:
        raise ValueError(f"save_unet_file supports 'wan21' and 'flux', not {family!r}")
    comfy.utils.save_torch_file(state_dict, path)
    return path


_BUILDERS = {"wan21": build_wan21, "wan22": build_wan22, "hunyuan_video": build_hunyuan_video, "ltxv": build_ltxv,
             "mochi": build_mochi, "flux": build_flux, "qwen_image": build_qwen_image, "sd15": build_sd15,
             "sdxl": build_sdxl, "svd": build_svd}
