"""FreeAccel_MotionTransferGuider's example workflow: WAN 2.1 with a reference video."""
from .builder import wan21_loaders

_NOTE = (
    "**Motion Transfer Guider (FastVMT)** transfers the motion of a reference video to a new prompt, training-free. "
    "At the first `guided_steps` steps it optimises the latent (AdamW, `iterations` per step) so that the attention "
    "motion flow of block `amf_block` matches the reference's; `fastvmt` mode compares each frame with its next "
    "`temporal_span`-1 frames through a local search window and reuses gradients (`recompute_every`), `ditflow` is "
    "the unaccelerated baseline.\n\n"
    "Put a video named `reference.mp4` into ComfyUI's `input` folder (or pick another in **Load Video**). It is cut "
    "to 33 frames (ImageFromBatch), resized to 832x480 and VAE-encoded; that latent is both the motion reference and "
    "the SDEdit start: BasicScheduler `denoise` 0.75 noises it to the first guided step, as FastVMT does. The "
    "reference and the output must have the same length and size.")


def _wan21_motion_transfer(wf):
    wf.note(_NOTE, title="About this workflow")
    unet, clip, vae = wan21_loaders(wf)
    shift = wf.add("ModelSamplingSD3", shift=7.0)
    wf.link(unet, "MODEL", shift, "model")

    positive = wf.add("CLIPTextEncode", text="a red fox running through fresh snow, tracking shot")
    negative = wf.add("CLIPTextEncode", text="blurry, static, low quality, distorted")
    empty = wf.add("CLIPTextEncode", title="Reference prompt (empty)", text="")
    for encode in (positive, negative, empty):
        wf.link(clip, "CLIP", encode, "clip")

    video = wf.add("LoadVideo", file="reference.mp4")
    components = wf.add("GetVideoComponents")
    wf.link(video, "VIDEO", components, "video")
    frames = wf.add("ImageFromBatch", batch_index=0, length=33)
    wf.link(components, "images", frames, "image")
    resize = wf.add("ImageScale", upscale_method="bilinear", width=832, height=480, crop="center")
    wf.link(frames, "IMAGE", resize, "image")
    encode = wf.add("VAEEncode")
    wf.link(resize, "IMAGE", encode, "pixels")
    wf.link(vae, "VAE", encode, "vae")

    guider = wf.add("FreeAccel_MotionTransferGuider", cfg=5.8, mode="fastvmt", guided_steps=10, iterations=10)
    wf.link(shift, "MODEL", guider, "model")
    wf.link(positive, "CONDITIONING", guider, "positive")
    wf.link(negative, "CONDITIONING", guider, "negative")
    wf.link(encode, "LATENT", guider, "reference")
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
    wf.link(encode, "LATENT", sample, "latent_image")
    decode = wf.add("VAEDecode")
    wf.link(sample, "output", decode, "samples")
    wf.link(vae, "VAE", decode, "vae")
    save = wf.add("SaveAnimatedWEBP", filename_prefix="wan21_motion_transfer", fps=16.0)
    wf.link(decode, "IMAGE", save, "images")
    wf.group("FreeAccel", [guider])


WORKFLOWS = {"wan21_motion_transfer.json": _wan21_motion_transfer}
