"""FreeAccel_MotionTransferGuider's example workflow: WAN 2.1, with the reference clip generated in the workflow;
its texts are in examples.json."""
from .builder import examples, wan21_loaders

FRAMES, WIDTH, HEIGHT = 33, 832, 480


def _wan21_motion_transfer(wf):
    unet, clip, vae = wan21_loaders(wf)
    shift = wf.add("ModelSamplingSD3", shift=7.0)
    wf.link(unet, "MODEL", shift, "model")

    positive = wf.add("CLIPTextEncode", text="a red fox running through fresh snow, static camera")
    negative = wf.add("CLIPTextEncode", text="blurry, static, low quality, distorted")
    empty = wf.add("CLIPTextEncode", title="Reference prompt (empty)", text="")
    clip_motion = wf.add("CLIPTextEncode", title="Reference clip prompt",
                         text="a brown dog running from left to right across a green meadow, static camera")
    for encode in (positive, negative, empty, clip_motion):
        wf.link(clip, "CLIP", encode, "clip")

    latent = wf.add("EmptyHunyuanLatentVideo", width=WIDTH, height=HEIGHT, length=FRAMES, batch_size=1)
    reference = wf.add("KSampler", title="Reference clip", seed=7, steps=30, cfg=6.0, sampler_name="uni_pc",
                       scheduler="simple", denoise=1.0)
    for (source, output), name in zip(((shift, "MODEL"), (clip_motion, "CONDITIONING"), (negative, "CONDITIONING"),
                                       (latent, "LATENT")), ("model", "positive", "negative", "latent_image")):
        wf.link(source, output, reference, name)

    guider = wf.add("FreeAccel_MotionTransferGuider", cfg=5.8, mode="fastvmt", guided_steps=10, iterations=10)
    wf.link(shift, "MODEL", guider, "model")
    wf.link(positive, "CONDITIONING", guider, "positive")
    wf.link(negative, "CONDITIONING", guider, "negative")
    wf.link(reference, "LATENT", guider, "reference")
    wf.link(empty, "CONDITIONING", guider, "reference_conditioning")
    noise = wf.add("RandomNoise", noise_seed=42)
    sampler = wf.add("KSamplerSelect", sampler_name="euler")
    sigmas = wf.add("BasicScheduler", scheduler="simple", steps=50, denoise=0.75)
    wf.link(shift, "MODEL", sigmas, "model")
    sample = wf.add("SamplerCustomAdvanced")
    wf.link(noise, "NOISE", sample, "noise")
    wf.link(guider, "GUIDER", sample, "guider")
    wf.link(sampler, "SAMPLER", sample, "sampler")
    wf.link(sigmas, "SIGMAS", sample, "sigmas")
    wf.link(reference, "LATENT", sample, "latent_image")
    wf.decode_save((sample, "output"), (vae, "VAE"), "SaveAnimatedWEBP",
                   dict(filename_prefix="wan21_motion_transfer", fps=16.0))
    wf.group("Reference clip", [clip_motion, latent, reference])
    wf.group("FreeAccel", [guider])


WORKFLOWS = examples("motion_transfer", {"wan21_motion_transfer.json": _wan21_motion_transfer},
                     frames=FRAMES, width=WIDTH, height=HEIGHT)
