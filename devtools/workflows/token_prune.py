"""FreeAccel_TokenPrune's example workflows: SDXL and SD1.5 text-to-image; their texts are in examples.json."""
from .builder import examples, freeaccel_patch


def _text_to_image(wf, ckpt_name, size, steps, cfg, prefix, ratio):
    ckpt = wf.add("CheckpointLoaderSimple", ckpt_name=ckpt_name)
    positive = wf.add("CLIPTextEncode", text="a lighthouse on a rocky coast at sunset, dramatic clouds, detailed")
    negative = wf.add("CLIPTextEncode", text="blurry, low quality, watermark")
    wf.link(ckpt, "CLIP", positive, "clip")
    wf.link(ckpt, "CLIP", negative, "clip")
    prune = freeaccel_patch(wf, ckpt, "FreeAccel_TokenPrune", ratio=ratio, dsap="on", dsap_percent=0.3, levels="auto")
    latent = wf.add("EmptyLatentImage", width=size, height=size, batch_size=1)
    wf.sample_decode_save((prune, "MODEL"), (positive, "CONDITIONING"), (negative, "CONDITIONING"),
                          (latent, "LATENT"), (ckpt, "VAE"),
                          dict(seed=42, steps=steps, cfg=cfg, sampler_name="euler", scheduler="normal", denoise=1.0),
                          "SaveImage", dict(filename_prefix=prefix))


def _sdxl(wf):
    _text_to_image(wf, "sd_xl_base_1.0.safetensors", 1024, 25, 7.0, "sdxl_tokenprune", 0.5)


def _sd15(wf):
    _text_to_image(wf, "v1-5-pruned-emaonly-fp16.safetensors", 512, 25, 7.0, "sd15_tokenprune", 0.5)


WORKFLOWS = examples("token_prune", {"sdxl_tokenprune.json": _sdxl, "sd15_tokenprune.json": _sd15})
