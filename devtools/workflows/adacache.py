"""FreeAccel_AdaCache's example workflows: WAN 2.1 T2V (MoReg on) and Flux dev."""
from .builder import Example, wan21_text_to_video

_NOTE = ("**AdaCache + MoReg** reuses the whole transformer stack for several steps when the content changes slowly "
         "(measured at the middle block) and computes more often when it changes fast. The first two and last two "
         "steps always run. Presets are 30- and 100-step codebooks (official ones and our medium_30), scaled to your "
         "step count; slow_30 is the safest, fast_30 the fastest. "
         "{extra} The console reports `AdaCache: computed X of Y steps (rates ...)` after sampling.")


def _wan21(wf):
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
    cache = wf.add("FreeAccel_AdaCache", preset="medium_30", moreg=False)
    wf.link(unet, "MODEL", cache, "model")
    latent = wf.add("EmptySD3LatentImage", width=1024, height=1024, batch_size=1)
    wf.sample_decode_save((cache, "MODEL"), (guidance, "CONDITIONING"), (negative, "CONDITIONING"),
                          (latent, "LATENT"), (vae, "VAE"),
                          dict(seed=42, steps=30, cfg=1.0, sampler_name="euler", scheduler="simple", denoise=1.0),
                          "SaveImage", dict(filename_prefix="flux_adacache"))
    wf.group("FreeAccel", [cache])


WORKFLOWS = {
    "wan21_t2v_adacache.json": Example(
        title="WAN 2.1 text to video with AdaCache + MoReg",
        description="Skips the steps where the video changes slowly. WAN 2.1 T2V 1.3B, 832x480, 33 frames, "
                    "30 steps.",
        note=_NOTE.format(extra="MoReg (on here) computes the steps where motion between frames rises."),
        build=_wan21),
    "flux_adacache.json": Example(
        title="Flux dev text to image with AdaCache",
        description="Reuses the transformer for the steps where the image changes slowly. Flux.1 dev, 1024x1024, "
                    "30 steps.",
        note=_NOTE.format(extra="MoReg is for video models and stays off for Flux."),
        build=_flux),
}
