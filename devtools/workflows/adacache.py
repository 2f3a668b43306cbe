"""FreeAccel_AdaCache's example workflows: WAN 2.1 T2V (MoReg on) and Flux dev."""
from .builder import HF, wan21_text_to_video

_NOTE = ("**AdaCache + MoReg** reuses the whole transformer stack for several steps when the content changes slowly "
         "(measured at the middle block) and computes more often when it changes fast. The first two and last two "
         "steps always run. Presets are 30- and 100-step codebooks (official ones and our medium_30), scaled to your "
         "step count; slow_30 is the safest, fast_30 the fastest. "
         "{extra} The console reports `AdaCache: computed X of Y steps (rates ...)` after sampling.")


def _wan21(wf):
    wf.note(_NOTE.format(extra="MoReg (on here) computes the steps where motion between frames rises."),
            title="About this workflow")
    shift, positive, negative, vae = wan21_text_to_video(wf)
    cache = wf.add("FreeAccel_AdaCache", preset="medium_30", moreg=True)
    wf.link(shift, "MODEL", cache, "model")
    latent = wf.add("EmptyHunyuanLatentVideo", width=832, height=480, length=33, batch_size=1)
    wf.sample_decode_save((cache, "MODEL"), (positive, "CONDITIONING"), (negative, "CONDITIONING"),
                          (latent, "LATENT"), (vae, "VAE"),
                          dict(seed=42, steps=30, cfg=6.0, sampler_name="uni_pc", scheduler="simple", denoise=1.0),
                          "SaveWEBM", dict(filename_prefix="wan21_t2v_adacache", fps=16.0))
    wf.group("FreeAccel", [cache])


def _flux(wf):
    wf.note(_NOTE.format(extra="MoReg is for video models and stays off for Flux."), title="About this workflow")
    unet = wf.add("UNETLoader", unet_name="flux1-dev.safetensors")
    wf.model_file(unet, "flux1-dev.safetensors",
                  f"{HF}/black-forest-labs/FLUX.1-dev/resolve/main/flux1-dev.safetensors", "diffusion_models")
    clip = wf.add("DualCLIPLoader", clip_name1="clip_l.safetensors", clip_name2="t5xxl_fp16.safetensors",
                  type="flux")
    wf.model_file(clip, "clip_l.safetensors",
                  f"{HF}/comfyanonymous/flux_text_encoders/resolve/main/clip_l.safetensors", "text_encoders")
    wf.model_file(clip, "t5xxl_fp16.safetensors",
                  f"{HF}/comfyanonymous/flux_text_encoders/resolve/main/t5xxl_fp16.safetensors", "text_encoders")
    vae = wf.add("VAELoader", vae_name="ae.safetensors")
    wf.model_file(vae, "ae.safetensors", f"{HF}/black-forest-labs/FLUX.1-dev/resolve/main/ae.safetensors", "vae")
    positive = wf.add("CLIPTextEncode", text="a lighthouse on a rocky coast at sunset, detailed, photographic")
    wf.link(clip, "CLIP", positive, "clip")
    guidance = wf.add("FluxGuidance", guidance=3.5)
    wf.link(positive, "CONDITIONING", guidance, "conditioning")
    negative = wf.add("ConditioningZeroOut")
    wf.link(positive, "CONDITIONING", negative, "conditioning")
    cache = wf.add("FreeAccel_AdaCache", preset="medium_30", moreg=False)
    wf.link(unet, "MODEL", cache, "model")
    latent = wf.add("EmptySD3LatentImage", width=1024, height=1024, batch_size=1)
    wf.sample_decode_save((cache, "MODEL"), (guidance, "CONDITIONING"), (negative, "CONDITIONING"),
                          (latent, "LATENT"), (vae, "VAE"),
                          dict(seed=42, steps=30, cfg=1.0, sampler_name="euler", scheduler="simple", denoise=1.0),
                          "SaveImage", dict(filename_prefix="flux_adacache"))
    wf.group("FreeAccel", [cache])


WORKFLOWS = {"wan21_t2v_adacache.json": _wan21, "flux_adacache.json": _flux}
