"""FreeAccel_AdaCache's example workflows: WAN 2.1 T2V (MoReg on) and Flux dev; their texts are in examples.json."""
from .builder import examples, freeaccel_patch, wan21_text_to_video_example


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


WORKFLOWS = examples("adacache", {"wan21_t2v_adacache.json": _wan21, "flux_adacache.json": _flux})
