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

from .family_facts_2026 import FACTS

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
        raise ValueError(f"unknown family {family!r}; known: {FAMILIES + FAMILIES_2026}") from None
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


def _known_to_this_comfyui(params_class, unet_config, optional=("txt_ids_dims", "meanflow_sum")):
    """``unet_config`` without the ``optional`` keys this ComfyUI's ``params_class`` does not have.

    Newer ComfyUI added params whose value here reproduces the older behaviour (Flux ``txt_ids_dims=[]``,
    HunyuanVideo ``meanflow_sum=False``); older ones reject them as unexpected keyword arguments.
    """
    fields = {field.name for field in dataclasses.fields(params_class)}
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
# the model families of 2026 (issue 23); devtools.harness.family_facts_2026 holds what each one honours


class MissingModelClass(RuntimeError):
    """The running ComfyUI has no config class for the requested family (it is newer than this ComfyUI)."""


def _config_class(family, name):
    """``comfy.supported_models.<name>``, or MissingModelClass naming the first ComfyUI version that has it."""
    config_class = getattr(supported, name, None)
    if config_class is None:
        import comfyui_version
        minimum = FACTS[family]["min_comfyui"]
        raise MissingModelClass(f"tiny {family!r} needs ComfyUI >= {minimum} (comfy.supported_models.{name}); "
                                f"this is ComfyUI {comfyui_version.__version__}")
    return config_class


def _case(family, patcher, latent, extra, seed, frames=1, dim=TEXT_DIM):
    """A TinyCase with a random text pair ``dim`` wide; ``extra(generator)`` makes each prompt's extra keys."""
    g = torch.Generator().manual_seed(seed + 1)
    pos, neg = _text_pair(g, dim=dim)
    return TinyCase(patcher, latent, [[pos, extra(g)]], [[neg, extra(g)]], family, frames)


def _pooled(generator):
    return {"pooled_output": _randn(generator, 1, POOLED_DIM)}


def _no_extra(generator):
    return {}


def build_flux2(height=12, width=16, seed=0):
    """Flux.2 (Flux2 config, model_base.Flux2): 128-channel latent (the Flux2 latent format is 2x2-patchified
    already), patch 1, global modulation shared by all blocks, 2 double + 2 single blocks, hidden 64 = 2 heads x 32
    (narrow: model_base.Flux2 left-pads the text to 512 tokens), 4-axis RoPE."""
    import comfy.ldm.flux.model as flux_model
    unet_config = dict(image_model="flux2", in_channels=128, out_channels=128, vec_in_dim=None,
                       context_in_dim=TEXT_DIM, hidden_size=64, mlp_ratio=3.0, num_heads=2, depth=2,
                       depth_single_blocks=2, axes_dim=[8, 8, 8, 8], theta=2000, patch_size=1, qkv_bias=False,
                       guidance_embed=True, txt_ids_dims=[3], global_modulation=True, mlp_silu_act=True,
                       ops_bias=False, default_ref_method="index", ref_index_scale=10.0)
    unet_config = _known_to_this_comfyui(flux_model.FluxParams, unet_config)
    patcher = make_patcher(_config_class("flux2", "Flux2"), unet_config, seed)
    # ComfyUI 0.3.75's model_base.Flux2 reads a pooled output, which Flux.2 (no vector input) ignores
    extra = lambda g: {"guidance": 4.0, "pooled_output": _randn(g, 1, POOLED_DIM)}  # noqa: E731
    return _case("flux2", patcher, torch.zeros(1, 128, height, width), extra, seed)


def build_z_image(height=12, width=16, seed=0):
    """Z-Image (ZImage config, model_base.Lumina2, NextDiT): 16-channel Flux latent, patch 2, 2 refiner + 3 main
    single-stream layers over [text, image], dim 256 = 2 heads x 128 (Z-Image's modulation needs dim >= 256)."""
    unet_config = dict(image_model="lumina2", patch_size=2, in_channels=16, dim=256, n_layers=3, n_refiner_layers=1,
                       n_heads=2, n_kv_heads=2, multiple_of=16, ffn_dim_multiplier=8.0 / 3.0, qk_norm=True,
                       cap_feat_dim=TEXT_DIM, axes_dims=[32, 48, 48], axes_lens=[256, 64, 64], rope_theta=256.0,
                       z_image_modulation=True, time_scale=1000.0)
    patcher = make_patcher(_config_class("z_image", "ZImage"), unet_config, seed)
    return _case("z_image", patcher, torch.zeros(1, 16, height, width), _no_extra, seed)


def build_qwen_image_edit(height=12, width=16, seed=0):
    """Qwen-Image-Edit: the Qwen-Image model (same tiny sizes as ``build_qwen_image``) given one reference latent
    the way TextEncodeQwenImageEdit does (``reference_latents`` in the conditioning); its tokens follow the
    noise tokens in the image stream."""
    case = build_qwen_image(height, width, seed)
    g = torch.Generator().manual_seed(seed + 2)
    reference = _randn(g, 1, 16, 1, height, width)
    case.positive[0][1]["reference_latents"] = [reference]
    case.negative[0][1]["reference_latents"] = [reference]
    case.family = "qwen_image_edit"
    return case


def _hunyuan15_config(**changes):
    config = dict(image_model="hunyuan_video", in_channels=65, out_channels=32, patch_size=[1, 1, 1],
                  vec_in_dim=None, context_in_dim=TEXT_DIM, hidden_size=128, mlp_ratio=4.0, num_heads=2, depth=2,
                  depth_single_blocks=2, axes_dim=[16, 24, 24], theta=256, qkv_bias=True, guidance_embed=False,
                  byt5=False, meanflow=False, use_cond_type_embedding=True, vision_in_dim=32, meanflow_sum=True)
    config.update(changes)
    return _known_to_this_comfyui(comfy.ldm.hunyuan_video.model.HunyuanVideoParams, config,
                                  optional=("meanflow_sum",))


def build_hunyuan_video15(frames=DEFAULT_FRAMES, height=8, width=12, seed=0):
    """HunyuanVideo 1.5 T2V (HunyuanVideo15 config and model_base): 32-channel latent, patch 1 (a smaller default
    grid: one token per latent pixel), 2 double + 2 single blocks, hidden 128 = 2 heads x 64; input = noise 32 +
    image condition 32 (zeros for T2V) + mask 1."""
    patcher = make_patcher(_config_class("hunyuan_video15", "HunyuanVideo15"), _hunyuan15_config(), seed)
    # model_base.HunyuanVideo reads a pooled output even though HunyuanVideo 1.5 has no vector input
    return _case("hunyuan_video15", patcher, torch.zeros(1, 32, frames, height, width), _pooled, seed, frames)


def build_hunyuan_image21(height=12, width=16, seed=0):
    """HunyuanImage 2.1 (HunyuanImage21 config and model_base, the HunyuanVideo class with a 2-D patch):
    64-channel latent, patch [1, 1], 2 double + 2 single blocks, 2-axis RoPE."""
    config = _hunyuan15_config(in_channels=64, out_channels=64, patch_size=[1, 1], axes_dim=[32, 32],
                               use_cond_type_embedding=False, vision_in_dim=None, meanflow_sum=False)
    patcher = make_patcher(_config_class("hunyuan_image21", "HunyuanImage21"), config, seed)
    return _case("hunyuan_image21", patcher, torch.zeros(1, 64, height, width), _no_extra, seed)


def build_cogvideox(frames=DEFAULT_FRAMES, height=12, width=16, seed=0, i2v=False):
    """CogVideoX 1.0 (CogVideoX_T2V / CogVideoX_I2V config, model_base.CogVideoX): 16-channel latent, patch 2,
    3-D RoPE, 3 blocks, 2 heads x 64, text + video in one joint attention. With ``i2v`` the model takes 32 input
    channels (noise + image condition, given as ``concat_latent_image``)."""
    unet_config = dict(image_model="cogvideox", num_attention_heads=2, attention_head_dim=64,
                       in_channels=32 if i2v else 16, out_channels=16, time_embed_dim=64, text_embed_dim=TEXT_DIM,
                       num_layers=3, sample_width=width, sample_height=height, sample_frames=frames, patch_size=2,
                       use_rotary_positional_embeddings=True, use_learned_positional_embeddings=False)
    name = "CogVideoX_I2V" if i2v else "CogVideoX_T2V"
    family = "cogvideox_i2v" if i2v else "cogvideox"
    patcher = make_patcher(_config_class(family, name), unet_config, seed)
    g = torch.Generator().manual_seed(seed + 1)
    pos, neg = _text_pair(g)
    extra = {}
    if i2v:
        image = torch.zeros(1, 16, frames, height, width)
        image[:, :, :1] = _randn(g, 1, 16, 1, height, width)
        extra = {"concat_latent_image": image}
    return TinyCase(patcher, torch.zeros(1, 16, frames, height, width), [[pos, dict(extra)]], [[neg, dict(extra)]],
                    family, frames)


def build_cogvideox_i2v(**overrides):
    """CogVideoX 1.0 I2V: ``build_cogvideox(i2v=True)``."""
    return build_cogvideox(i2v=True, **overrides)


def _nested(*tensors):
    import comfy.nested_tensor
    return comfy.nested_tensor.NestedTensor(tensors)


def build_ltxav(frames=DEFAULT_FRAMES, height=6, width=8, audio_frames=8, seed=0):
    """LTX-2 (LTXAV config, model_base.LTXAV, LTXAVModel): one model over a video stream (128-channel latent,
    patch 1, 2 heads x 32) and an audio stream (8 channels x 16 mel bins, 2 heads x 16), 2 blocks, each with
    video self/cross attention, audio self/cross attention and audio<->video cross attention. The latent is a
    NestedTensor (video, audio) as LTXVConcatAVLatent makes it."""
    unet_config = dict(image_model="ltxav", in_channels=128, audio_in_channels=128, cross_attention_dim=64,
                       audio_cross_attention_dim=32, attention_head_dim=32, audio_attention_head_dim=16,
                       num_attention_heads=2, audio_num_attention_heads=2, caption_channels=TEXT_DIM, num_layers=2,
                       connector_attention_head_dim=32, connector_num_attention_heads=2, connector_num_layers=1)
    patcher = make_patcher(_config_class("ltxav", "LTXAV"), unet_config, seed)
    g = torch.Generator().manual_seed(seed + 1)
    # the text as the LTX-2 text encoder hands it over: [video context, audio context], each caption_channels wide
    # (0.33 then skips its own text connectors; 0.8 has none)
    pos, neg = _text_pair(g, dim=2 * TEXT_DIM)
    latent = _nested(torch.zeros(1, 128, frames, height, width), torch.zeros(1, 8, audio_frames, 16))
    return TinyCase(patcher, latent, [[pos, {"frame_rate": 25}]], [[neg, {"frame_rate": 25}]], "ltxav", frames)


def build_minimax_h3(frames=DEFAULT_FRAMES, height=6, width=8, audio_frames=4, seed=0):
    """MiniMax H3 (MiniMaxH3 config and model_base, MiniMaxH3Model): video (24-channel latent, patch (1, 2, 2)) and
    audio (32 channels x 2 rows) tokens packed into one sequence after the text, 2 blocks, 2 heads x 64. The latent
    is a NestedTensor (video, audio) as EmptyMiniMaxH3LatentAV makes it."""
    unet_config = dict(image_model="minimax_h3", hidden_size=128, num_layers=2, token_refiner_num_layers=1,
                       num_attention_heads=2, attention_head_dim=64, ffn_hidden_size=256, latents_dim=24,
                       audio_latents_dim=32, text_dim=TEXT_DIM, timestep_input_dim=256, time_embed_hidden_size=128,
                       time_embed_dim=64, rope_inv_freq_len=8)
    patcher = make_patcher(_config_class("minimax_h3", "MiniMaxH3"), unet_config, seed)
    # a checkpoint buffer (the model allocates it empty): RoPE inverse frequencies, theta 10000 over 8 per axis
    inv_freq = patcher.model.diffusion_model.rope.inv_freq
    inv_freq.copy_(10000.0 ** (-torch.arange(inv_freq.numel(), dtype=torch.float32) / inv_freq.numel()))
    g = torch.Generator().manual_seed(seed + 1)
    pos, neg = _text_pair(g)
    latent = _nested(torch.zeros(1, 24, frames, height, width), torch.zeros(1, 32, 2, audio_frames))
    return TinyCase(patcher, latent, [[pos, {}]], [[neg, {}]], "minimax_h3", frames)


def _wan_variant(family, config_name, frames, height, width, seed, **changes):
    """A tiny WAN of ``config_name`` (2 blocks, dim 128 = 2 heads x 64) and its random text pair."""
    unet_config = dict(image_model="wan2.1", patch_size=(1, 2, 2), text_len=512, in_dim=16, dim=128, ffn_dim=256,
                       freq_dim=256, text_dim=TEXT_DIM, out_dim=16, num_heads=2, num_layers=2, window_size=(-1, -1),
                       qk_norm=True, cross_attn_norm=True, eps=1e-6)
    unet_config.update(changes)
    patcher = make_patcher(_config_class(family, config_name), unet_config, seed)
    g = torch.Generator().manual_seed(seed + 1)
    pos, neg = _text_pair(g)
    return patcher, torch.zeros(1, 16, frames, height, width), pos, neg, g


def build_wan22_animate(frames=DEFAULT_FRAMES, height=12, width=16, seed=0):
    """Wan 2.2 Animate (WAN22_Animate config and model_base, AnimateWanModel): input = noise 16 + image condition
    20 (zeros here), pose latents (``pose_video_latent``) added onto latent frames 1.. after the patch embedding;
    no face video (its motion encoder works on 512-pixel faces)."""
    patcher, latent, pos, neg, g = _wan_variant("wan22_animate", "WAN22_Animate", frames, height, width, seed,
                                                model_type="animate", in_dim=36, motion_encoder_dim=32)
    pose = _randn(g, 1, 16, frames - 1, height, width)
    return TinyCase(patcher, latent, [[pos, {"pose_video_latent": pose}]], [[neg, {"pose_video_latent": pose}]],
                    "wan22_animate", frames)


def build_wan22_s2v(frames=DEFAULT_FRAMES, height=12, width=16, seed=0):
    """Wan 2.2 S2V (WAN22_S2V config and model_base, WanModel_S2V): a reference latent frame whose tokens follow the
    video tokens (``reference_latents``), audio features (``audio_embed``, [B, 25 layers, dim, 4 x frames]) injected
    after the listed blocks by cross-attention (not tokens of the sequence)."""
    patcher, latent, pos, neg, g = _wan_variant("wan22_s2v", "WAN22_S2V", frames, height, width, seed,
                                                model_type="s2v", audio_dim=32, num_audio_token=4,
                                                audio_inject_layers=[0, 1])
    reference = _randn(g, 1, 16, 1, height, width)
    audio = _randn(g, 1, 25, 32, 4 * frames)  # 25 wav2vec layers, weighted by the model
    extra = lambda: {"reference_latents": [reference], "audio_embed": audio}  # noqa: E731
    return TinyCase(patcher, latent, [[pos, extra()]], [[neg, extra()]], "wan22_s2v", frames)


def build_wan21_humo(frames=DEFAULT_FRAMES, height=12, width=16, seed=0):
    """HuMo (WAN21_HuMo config and model_base, HumoWanModel): a reference latent frame whose tokens follow the video
    tokens (``reference_latents``); no audio (its fixed-size audio projection is 1280 x 40 wide)."""
    patcher, latent, pos, neg, g = _wan_variant("wan21_humo", "WAN21_HuMo", frames, height, width, seed,
                                                model_type="humo")
    reference = _randn(g, 1, 16, 1, height, width)
    return TinyCase(patcher, latent, [[pos, {"reference_latents": [reference]}]],
                    [[neg, {"reference_latents": [reference]}]], "wan21_humo", frames)


def build_wan22_camera(frames=DEFAULT_FRAMES, height=12, width=16, seed=0):
    """Wan 2.2 Fun Camera (WAN22_Camera config, model_base.WAN21_Camera, CameraWanModel): input = noise 16 + image
    condition 20, camera Plücker embeddings (``camera_conditions``, 6 channels at 8x the latent resolution) added
    after the patch embedding."""
    patcher, latent, pos, neg, g = _wan_variant("wan22_camera", "WAN22_Camera", frames, height, width, seed,
                                                model_type="camera_2.2", in_dim=36, in_dim_control_adapter=6)
    camera = _randn(g, 1, 6, frames, height * 8, width * 8)
    return TinyCase(patcher, latent, [[pos, {"camera_conditions": camera}]], [[neg, {"camera_conditions": camera}]],
                    "wan22_camera", frames)


def build_wan21_causal_ar(frames=DEFAULT_FRAMES, height=12, width=16, seed=0):
    """WAN 2.1 CausalAR (WAN21_CausalAR_T2V config, model_base.WAN21_CausalAR, CausalWanModel), sampled as a plain
    model call over the whole clip."""
    patcher, latent, pos, neg, _ = _wan_variant("wan21_causal_ar", "WAN21_CausalAR_T2V", frames, height, width, seed,
                                                model_type="t2v")
    return TinyCase(patcher, latent, [[pos, {}]], [[neg, {}]], "wan21_causal_ar", frames)


def build_wan22_wandancer(frames=DEFAULT_FRAMES, height=12, width=16, seed=0):
    """WanDancer (WAN22_WanDancer config and model_base, WanDancerModel): input = noise 16 + image condition 20;
    no music features."""
    patcher, latent, pos, neg, _ = _wan_variant("wan22_wandancer", "WAN22_WanDancer", frames, height, width, seed,
                                                model_type="wandancer", in_dim=36, audio_inject_layers=[0, 1],
                                                music_dim=32, music_heads=2, music_latent_dim=32)
    return TinyCase(patcher, latent, [[pos, {}]], [[neg, {}]], "wan22_wandancer", frames)


def _kandinsky5_config(**changes):
    config = dict(image_model="kandinsky5", in_visual_dim=16, out_visual_dim=16, in_text_dim=TEXT_DIM,
                  in_text_dim2=POOLED_DIM, time_dim=64, model_dim=128, ff_dim=256, patch_size=(1, 2, 2),
                  num_text_blocks=1, num_visual_blocks=2, axes_dims=(16, 24, 24))
    config.update(changes)
    return config


def build_kandinsky5(frames=DEFAULT_FRAMES, height=12, width=16, seed=0):
    """Kandinsky 5 video (Kandinsky5 config and model_base): 16-channel latent, input = noise 16 + image condition 16
    (zeros) + mask 1, patch (1, 2, 2), 1 text + 2 visual blocks (text and video in separate streams: the visual
    blocks cross-attend to the text), model dim 128 = 2 heads x 64; pooled CLIP ``pooled_output``."""
    config = _kandinsky5_config(visual_embed_dim=33 * 4)
    patcher = make_patcher(_config_class("kandinsky5", "Kandinsky5"), config, seed)
    return _case("kandinsky5", patcher, torch.zeros(1, 16, frames, height, width), _pooled, seed, frames)


def build_kandinsky5_image(height=12, width=16, seed=0):
    """Kandinsky 5 image (Kandinsky5Image config and model_base): the Kandinsky 5 class without the image
    condition (input 16 x patch 4), 16-channel Flux latent."""
    config = _kandinsky5_config(visual_embed_dim=16 * 4, rope_scale_factor=(1.0, 1.0, 1.0))
    patcher = make_patcher(_config_class("kandinsky5_image", "Kandinsky5Image"), config, seed)
    return _case("kandinsky5_image", patcher, torch.zeros(1, 16, height, width), _pooled, seed)


def build_krea2(height=12, width=16, seed=0):
    """Krea 2 (Krea2 config and model_base, SingleStreamDiT): 16-channel latent, patch 2, 2 single-stream blocks over
    [text, image] (features 128 = 2 heads x 64), a text-fusion transformer over 2 text-encoder layers given as one
    [B, tokens, 2 x dim] tensor."""
    unet_config = dict(image_model="krea2", features=128, tdim=64, txtdim=TEXT_DIM, heads=2, kvheads=2,
                       multiplier=2, layers=2, patch=2, channels=16, txtlayers=2, txtheads=2, txtkvheads=2)
    patcher = make_patcher(_config_class("krea2", "Krea2"), unet_config, seed)
    return _case("krea2", patcher, torch.zeros(1, 16, 1, height, width), _no_extra, seed,
                       dim=2 * TEXT_DIM)


def build_hidream(height=12, width=16, seed=0):
    """HiDream I1 (HiDream config and model_base): 16-channel latent, patch 2, 1 double-stream + 1 single-stream
    block with a 2-expert MoE MLP, 2 heads x 64; text = T5 (``cross_attn``) + per-block Llama layers
    (``conditioning_llama3``, [B, layers, tokens, dim]) + pooled CLIP."""
    unet_config = dict(image_model="hidream", patch_size=2, in_channels=16, out_channels=16, num_layers=1,
                       num_single_layers=1, attention_head_dim=64, num_attention_heads=2,
                       caption_channels=[TEXT_DIM, TEXT_DIM], text_emb_dim=POOLED_DIM, num_routed_experts=2,
                       num_activated_experts=1, axes_dims_rope=(32, 16, 16), max_resolution=(64, 64),
                       llama_layers=[0, 1])
    patcher = make_patcher(_config_class("hidream", "HiDream"), unet_config, seed)
    extra = lambda g: {"pooled_output": _randn(g, 1, POOLED_DIM),  # noqa: E731
                       "conditioning_llama3": _randn(g, 1, 2, 8, TEXT_DIM)}
    return _case("hidream", patcher, torch.zeros(1, 16, height, width), extra, seed)


def build_cosmos_predict2(frames=DEFAULT_FRAMES, height=12, width=16, seed=0):
    """Cosmos Predict2 text-to-image/video (CosmosT2IPredict2 config, model_base.CosmosPredict2, MiniTrainDIT):
    16-channel Wan 2.1 latent (+ padding mask channel), patch 2 x 2 x 1, 3-D RoPE, 2 blocks, 2 heads x 64."""
    unet_config = dict(image_model="cosmos_predict2", max_img_h=64, max_img_w=64, max_frames=32, in_channels=16,
                       out_channels=16, patch_spatial=2, patch_temporal=1, concat_padding_mask=True,
                       model_channels=128, num_blocks=2, num_heads=2, crossattn_emb_channels=TEXT_DIM,
                       pos_emb_cls="rope3d", pos_emb_learnable=True, pos_emb_interpolation="crop", min_fps=1,
                       max_fps=30, use_adaln_lora=True, adaln_lora_dim=32, extra_per_block_abs_pos_emb=False,
                       rope_h_extrapolation_ratio=4.0, rope_w_extrapolation_ratio=4.0,
                       rope_t_extrapolation_ratio=1.0)
    patcher = make_patcher(_config_class("cosmos_predict2", "CosmosT2IPredict2"), unet_config, seed)
    return _case("cosmos_predict2", patcher, torch.zeros(1, 16, frames, height, width), _no_extra, seed, frames)


def build_mage_flow(height=12, width=16, seed=0):
    """MageFlow (MageFlow config and model_base, MageFlowTransformer2DModel): the Qwen-Image block layout on the
    128-channel Flux2 latent, 2 blocks, 2 heads x 64."""
    unet_config = dict(image_model="mage_flow", in_channels=128, out_channels=128, num_layers=2,
                       attention_head_dim=64, num_attention_heads=2, joint_attention_dim=TEXT_DIM,
                       axes_dims_rope=(16, 24, 24))
    patcher = make_patcher(_config_class("mage_flow", "MageFlow"), unet_config, seed)
    return _case("mage_flow", patcher, torch.zeros(1, 128, height, width), _no_extra, seed)


def build_lens(height=12, width=16, seed=0):
    """Lens (Lens config and model_base, LensTransformer2DModel): dual-stream MMDiT on the 128-channel Flux2 latent,
    2 blocks, 2 heads x 64, single-layer text features."""
    unet_config = dict(image_model="lens", patch_size=2, in_channels=128, out_channels=32, num_layers=2,
                       attention_head_dim=64, num_attention_heads=2, enc_hidden_dim=TEXT_DIM,
                       axes_dims_rope=(8, 28, 28), multi_layer_encoder_feature=False)
    patcher = make_patcher(_config_class("lens", "Lens"), unet_config, seed)
    return _case("lens", patcher, torch.zeros(1, 128, height, width), _no_extra, seed)


def build_joyimage(height=12, width=16, seed=0):
    """JoyImage (JoyImage config and model_base, JoyImageTransformer3DModel): 16-channel Wan 2.1 latent with a time
    axis of 1, patch (1, 2, 2), 2 double-stream blocks with joint attention, hidden 128 = 2 heads x 64."""
    unet_config = dict(image_model="joyimage", patch_size=[1, 2, 2], in_channels=16, out_channels=16,
                       hidden_size=128, num_attention_heads=2, text_dim=TEXT_DIM, mlp_width_ratio=2.0, num_layers=2)
    patcher = make_patcher(_config_class("joyimage", "JoyImage"), unet_config, seed,
                           after_init={"rope_dim_list": [16, 24, 24]})
    return _case("joyimage", patcher, torch.zeros(1, 16, 1, height, width), _no_extra, seed)


def build_chroma_radiance(height=32, width=48, seed=0):
    """Chroma Radiance (ChromaRadiance config and model_base): pixel space (3 channels, patch 16), the Chroma
    double/single blocks (2 + 2, hidden 128 = 2 heads x 64) with a NeRF pixel decoder."""
    import comfy.ldm.chroma_radiance.model as radiance
    unet_config = dict(image_model="chroma_radiance", in_channels=3, out_channels=3, context_in_dim=TEXT_DIM,
                       hidden_size=128, mlp_ratio=2.0, num_heads=2, depth=2, depth_single_blocks=2,
                       axes_dim=[16, 24, 24], theta=10000, patch_size=16, qkv_bias=True, in_dim=64, out_dim=128,
                       hidden_dim=64, n_layers=1, txt_ids_dims=[], vec_in_dim=None, nerf_hidden_size=16,
                       nerf_mlp_ratio=2, nerf_depth=1, nerf_max_freqs=4, nerf_tile_size=0,
                       nerf_final_head_type="conv", nerf_embedder_dtype=None, use_x0=False,
                       use_sequential_txt_ids=False)
    unet_config = _known_to_this_comfyui(radiance.ChromaRadianceParams, unet_config,
                                         optional=("txt_ids_dims", "vec_in_dim", "use_x0", "use_sequential_txt_ids"))
    patcher = make_patcher(_config_class("chroma_radiance", "ChromaRadiance"), unet_config, seed)
    # ComfyUI 0.3.75's model_base.Flux (Chroma's base) reads a pooled output, which Chroma ignores
    return _case("chroma_radiance", patcher, torch.zeros(1, 3, height, width), _pooled, seed)


def build_hidream_o1(height=64, width=96, seed=0):
    """HiDream-O1 (HiDreamO1 config and model_base, HiDreamO1Transformer): pixel space (3 channels, patch 32), a
    Qwen3-VL-style decoder (2 layers, hidden 128 = 2 heads x 64) over [text tokens, image tokens]; text is given as
    token ids (``text_input_ids``), as its tokenizer-only text encoder does; the vision tower (used for reference
    images only) is 1 block wide 32."""
    text = dict(vocab_size=1024, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=2, head_dim=64, rope_dims=[12, 10, 10])
    vision = dict(hidden_size=32, num_heads=2, intermediate_size=64, depth=1, deepstack_visual_indexes=(),
                  num_position_embeddings=64)
    patcher = make_patcher(_config_class("hidream_o1", "HiDreamO1"),
                           {"image_model": "hidream_o1", "text_config_overrides": text,
                            "vision_config_overrides": vision}, seed)
    g = torch.Generator().manual_seed(seed + 1)
    ids = lambda: {"text_input_ids": torch.randint(0, 1000, (1, TEXT_TOKENS), generator=g)}  # noqa: E731
    return TinyCase(patcher, torch.zeros(1, 3, height, width), [[torch.zeros(1, 1, 1), ids()]],
                    [[torch.zeros(1, 1, 1), ids()]], "hidream_o1", 1)


def build_sd35(height=12, width=16, seed=0):
    """SD 3.5 medium layout (SD3 config and model_base, MMDiT behind OpenAISignatureMMDITWrapper): 16-channel
    latent, patch 2, 2 joint blocks (hidden 64 x depth = 128, 2 heads), RMS q/k norm, an extra image self-attention
    in block 0 (MMDiT-X), pooled ``pooled_output``."""
    unet_config = dict(in_channels=16, out_channels=16, patch_size=2, depth=2, input_size=None,
                       adm_in_channels=POOLED_DIM, pos_embed_scaling_factor=None, num_patches=32 * 32,
                       pos_embed_max_size=32, qk_norm="rms", x_block_self_attn_layers=[0],
                       context_embedder_config={"target": "torch.nn.Linear",
                                                "params": {"in_features": TEXT_DIM, "out_features": 128}})
    patcher = make_patcher(_config_class("sd35", "SD3"), unet_config, seed)
    # a checkpoint buffer (the model allocates it empty): the fixed 2-D sin-cos position table
    import comfy.ldm.modules.diffusionmodules.mmdit as mmdit
    table = patcher.model.diffusion_model.pos_embed
    table.copy_(torch.from_numpy(mmdit.get_2d_sincos_pos_embed(table.shape[-1], 32)).reshape(table.shape))
    return _case("sd35", patcher, torch.zeros(1, 16, height, width), _pooled, seed)


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


_BUILDERS_2026 = {"flux2": build_flux2, "z_image": build_z_image, "qwen_image_edit": build_qwen_image_edit,
                  "hunyuan_video15": build_hunyuan_video15, "hunyuan_image21": build_hunyuan_image21,
                  "cogvideox": build_cogvideox, "cogvideox_i2v": build_cogvideox_i2v,
                  "ltxav": build_ltxav, "minimax_h3": build_minimax_h3, "wan22_animate": build_wan22_animate,
                  "wan22_s2v": build_wan22_s2v, "wan21_humo": build_wan21_humo, "wan22_camera": build_wan22_camera,
                  "wan21_causal_ar": build_wan21_causal_ar, "wan22_wandancer": build_wan22_wandancer,
                  "kandinsky5": build_kandinsky5, "kandinsky5_image": build_kandinsky5_image, "krea2": build_krea2,
                  "hidream": build_hidream, "cosmos_predict2": build_cosmos_predict2, "mage_flow": build_mage_flow,
                  "lens": build_lens, "joyimage": build_joyimage, "chroma_radiance": build_chroma_radiance,
                  "hidream_o1": build_hidream_o1, "sd35": build_sd35}
FAMILIES_2026 = tuple(_BUILDERS_2026)

_BUILDERS = {"wan21": build_wan21, "wan22": build_wan22, "hunyuan_video": build_hunyuan_video, "ltxv": build_ltxv,
             "mochi": build_mochi, "flux": build_flux, "qwen_image": build_qwen_image, "sd15": build_sd15,
             "sdxl": build_sdxl, "svd": build_svd, **_BUILDERS_2026}
