"""FreeAccel_AdaCache's example workflows: WAN 2.1 T2V (MoReg on), Flux dev, and three families of 2026 after ComfyUI's
own templates: WAN 2.2 14B T2V (two experts, AdaCache on each), Flux.2 dev, HunyuanVideo 1.5 T2V (AdaCache, then
Local Window Attention); their texts are in examples.json."""
from .builder import examples, freeaccel_patch, wan21_text_to_video_example

# Settings of the 2026 examples (their notes say why)
WAN22_STEPS, WAN22_SPLIT = 20, 10  # video_wan2_2_14B_t2v: 20 steps, high-noise expert on 0-10, low-noise on 10-20
VIDEO_CACHE = dict(preset="medium_30", moreg=True)
# Local Window Attention's defaults, written out so the example shows them
LOCAL_WINDOW = dict(frames=3, height=15, width=27, start_block=0, end_block=-1, start_percent=0.0, end_percent=1.0,
                    implementation="auto")


def _wan21(wf):
    wan21_text_to_video_example(wf, "SaveWEBM", "wan21_t2v_adacache", "FreeAccel_AdaCache", preset="medium_30",
                                moreg=True)


def _flux(wf):
    unet = wf.add("UNETLoader", unet_name="flux1-dev.safetensors")
    clip = wf.add("DualCLIPLoader", clip_name1="clip_l.safetensors", clip_name2="t5xxl_fp16.safetensors",
                  type="flux")
    vae = wf.add("VAELoader", vae_name="ae.safetensors")
    positive = wf.add("CLIPTextEncode", text="a lighthouse on a rocky coast at sunset, detailed, photographic")
    wf.link(clip, "CLIP", positive, "clip")
    guidance = wf.add("FluxGuidance", guidance=3.5)
    wf.link(positive, "CONDITIONING", guidance, "conditioning")
    negative = wf.add("ConditioningZeroOut")
    wf.link(positive, "CONDITIONING", negative, "conditioning")
    cache = freeaccel_patch(wf, unet, "FreeAccel_AdaCache", preset="medium_30", moreg=False)
    latent = wf.add("EmptySD3LatentImage", width=1024, height=1024, batch_size=1)
    wf.sample_decode_save((cache, "MODEL"), (guidance, "CONDITIONING"), (negative, "CONDITIONING"),
                          (latent, "LATENT"), (vae, "VAE"),
                          dict(seed=42, steps=30, cfg=1.0, sampler_name="euler", scheduler="simple", denoise=1.0),
                          "SaveImage", dict(filename_prefix="flux_adacache"))


def _custom_sample_decode_save(wf, guider, sigmas, latent, vae, save_type, save_widgets):
    """RandomNoise + KSamplerSelect (euler) + SamplerCustomAdvanced -> VAEDecode -> a save node: the tail of the
    Flux.2 and HunyuanVideo 1.5 templates. ``guider``, ``sigmas``, ``latent`` and ``vae`` are node handles."""
    noise = wf.add("RandomNoise", noise_seed=42)
    sampler = wf.add("KSamplerSelect", sampler_name="euler")
    sample = wf.add("SamplerCustomAdvanced")
    wf.link(noise, "NOISE", sample, "noise")
    wf.link(guider, "GUIDER", sample, "guider")
    wf.link(sampler, "SAMPLER", sample, "sampler")
    wf.link(sigmas, "SIGMAS", sample, "sigmas")
    wf.link(latent, "LATENT", sample, "latent_image")
    wf.decode_save((sample, "output"), (vae, "VAE"), save_type, save_widgets)


def _wan22_t2v_14b(wf):
    """video_wan2_2_14B_t2v without its Lightning LoRA switch: 640x640, 81 frames, shift 5 per expert, cfg 3.5, euler
    simple, 20 steps split at 10 over two KSamplerAdvanced; AdaCache after each expert's ModelSamplingSD3."""
    experts = {}
    for expert in ("high", "low"):
        experts[expert] = wf.add("UNETLoader", unet_name=f"wan2.2_t2v_{expert}_noise_14B_fp8_scaled.safetensors")
    clip = wf.add("CLIPLoader", clip_name="umt5_xxl_fp8_e4m3fn_scaled.safetensors", type="wan")
    vae = wf.add("VAELoader", vae_name="wan_2.1_vae.safetensors")
    positive = wf.add("CLIPTextEncode", text="a red fox running through fresh snow, tracking shot")
    negative = wf.add("CLIPTextEncode", text="blurry, static, low quality")
    wf.link(clip, "CLIP", positive, "clip")
    wf.link(clip, "CLIP", negative, "clip")
    caches = []
    for expert, unet in experts.items():
        shift = wf.add("ModelSamplingSD3", shift=5.0)
        wf.link(unet, "MODEL", shift, "model")
        cache = wf.add("FreeAccel_AdaCache", title=f"AdaCache ({expert} noise)", **VIDEO_CACHE)
        wf.link(shift, "MODEL", cache, "model")
        caches.append(cache)
    wf.group("FreeAccel", caches)
    latent = wf.add("EmptyHunyuanLatentVideo", width=640, height=640, length=81, batch_size=1)
    segment = dict(steps=WAN22_STEPS, cfg=3.5, sampler_name="euler", scheduler="simple")
    high = wf.add("KSamplerAdvanced", title=f"KSampler (high noise, steps 0-{WAN22_SPLIT})", add_noise="enable",
                  noise_seed=42, start_at_step=0, end_at_step=WAN22_SPLIT, return_with_leftover_noise="enable",
                  **segment)
    low = wf.add("KSamplerAdvanced", title=f"KSampler (low noise, steps {WAN22_SPLIT}-{WAN22_STEPS})",
                 add_noise="disable", noise_seed=0, start_at_step=WAN22_SPLIT, end_at_step=WAN22_STEPS,
                 return_with_leftover_noise="disable", **segment)
    for sampler, cache, start in ((high, caches[0], latent), (low, caches[1], high)):
        wf.link(cache, "MODEL", sampler, "model")
        wf.link(positive, "CONDITIONING", sampler, "positive")
        wf.link(negative, "CONDITIONING", sampler, "negative")
        wf.link(start, "LATENT", sampler, "latent_image")
    wf.decode_save((low, "LATENT"), (vae, "VAE"), "SaveWEBM",
                   dict(filename_prefix="wan22_t2v_14b_adacache", fps=16.0))


def _flux2(wf):
    """image_flux2_text_to_image without its Turbo LoRA switch: 1024x1024, Flux2Scheduler 20 steps, FluxGuidance 4,
    BasicGuider, euler; AdaCache between the loader and the guider."""
    unet = wf.add("UNETLoader", unet_name="flux2_dev_fp8mixed.safetensors")
    clip = wf.add("CLIPLoader", clip_name="mistral_3_small_flux2_bf16.safetensors", type="flux2")
    vae = wf.add("VAELoader", vae_name="flux2-vae.safetensors")
    positive = wf.add("CLIPTextEncode", text="a lighthouse on a rocky coast at sunset, detailed, photographic")
    wf.link(clip, "CLIP", positive, "clip")
    guidance = wf.add("FluxGuidance", guidance=4.0)
    wf.link(positive, "CONDITIONING", guidance, "conditioning")
    cache = freeaccel_patch(wf, unet, "FreeAccel_AdaCache", preset="medium_30", moreg=False)
    guider = wf.add("BasicGuider")
    wf.link(cache, "MODEL", guider, "model")
    wf.link(guidance, "CONDITIONING", guider, "conditioning")
    sigmas = wf.add("Flux2Scheduler", steps=20, width=1024, height=1024)
    latent = wf.add("EmptyFlux2LatentImage", width=1024, height=1024, batch_size=1)
    _custom_sample_decode_save(wf, guider, sigmas, latent, vae, "SaveImage", dict(filename_prefix="flux2_adacache"))


def _hunyuan_video15(wf):
    """video_hunyuan_video_1.5_720p_t2v without its super-resolution stage: 1280x720, 121 frames, shift 7, CFGGuider
    6, BasicScheduler simple 20 steps, euler; AdaCache -> Local Window Attention where the template has EasyCache."""
    unet = wf.add("UNETLoader", unet_name="hunyuanvideo1.5_720p_t2v_fp16.safetensors")
    clip = wf.add("DualCLIPLoader", clip_name1="qwen_2.5_vl_7b_fp8_scaled.safetensors",
                  clip_name2="byt5_small_glyphxl_fp16.safetensors", type="hunyuan_video_15")
    vae = wf.add("VAELoader", vae_name="hunyuanvideo15_vae_fp16.safetensors")
    positive = wf.add("CLIPTextEncode", text="a paper airplane gliding between skyscrapers at sunset, the camera "
                                             "following it through the street canyons")
    negative = wf.add("CLIPTextEncode", text="")
    wf.link(clip, "CLIP", positive, "clip")
    wf.link(clip, "CLIP", negative, "clip")
    cache = wf.add("FreeAccel_AdaCache", **VIDEO_CACHE)
    wf.link(unet, "MODEL", cache, "model")
    window = wf.add("FreeAccel_LocalWindowAttention", **LOCAL_WINDOW)
    wf.link(cache, "MODEL", window, "model")
    wf.group("FreeAccel", [cache, window])
    shift = wf.add("ModelSamplingSD3", shift=7.0)
    wf.link(window, "MODEL", shift, "model")
    guider = wf.add("CFGGuider", cfg=6.0)
    wf.link(shift, "MODEL", guider, "model")
    wf.link(positive, "CONDITIONING", guider, "positive")
    wf.link(negative, "CONDITIONING", guider, "negative")
    sigmas = wf.add("BasicScheduler", scheduler="simple", steps=20, denoise=1.0)
    wf.link(shift, "MODEL", sigmas, "model")
    latent = wf.add("EmptyHunyuanVideo15Latent", width=1280, height=720, length=121, batch_size=1)
    _custom_sample_decode_save(wf, guider, sigmas, latent, vae, "SaveWEBM",
                               dict(filename_prefix="hunyuan_video15_adacache_local_window", fps=24.0))


WORKFLOWS = examples("adacache", {"wan21_t2v_adacache.json": _wan21, "flux_adacache.json": _flux,
                                  "wan22_t2v_14b_adacache.json": _wan22_t2v_14b, "flux2_adacache.json": _flux2,
                                  "hunyuan_video15_adacache_local_window.json": _hunyuan_video15})
