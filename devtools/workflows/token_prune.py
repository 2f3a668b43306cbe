"""FreeAccel_TokenPrune's example workflows: SDXL and SD1.5 text-to-image."""
from .builder import Example

_NOTE = ("**TokenPrune (AT-EDM)** ranks the tokens of each attention stage by G-WPR at its first self-attention, "
         "joins every other token to its most similar top token, computes that attention for the top `1 - ratio` "
         "rows only and runs the rest of the stage on them: with `recovery` merge (default) each row is the mean of "
         "its group (ToMe-style), and every token adds its group's update before the convolutions. DSAP spares the "
         "outer stage of each level during the first `dsap_percent` of sampling. `levels = auto` prunes stages with "
         "at least `min_tokens` tokens. {extra}")


def _text_to_image(wf, ckpt_name, size, steps, cfg, prefix, ratio):
    ckpt = wf.add("CheckpointLoaderSimple", ckpt_name=ckpt_name)
    positive = wf.add("CLIPTextEncode", text="a lighthouse on a rocky coast at sunset, dramatic clouds, detailed")
    negative = wf.add("CLIPTextEncode", text="blurry, low quality, watermark")
    wf.link(ckpt, "CLIP", positive, "clip")
    wf.link(ckpt, "CLIP", negative, "clip")
    prune = wf.add("FreeAccel_TokenPrune", ratio=ratio, dsap="on", dsap_percent=0.3, levels="auto")
    wf.link(ckpt, "MODEL", prune, "model")
    latent = wf.add("EmptyLatentImage", width=size, height=size, batch_size=1)
    wf.sample_decode_save((prune, "MODEL"), (positive, "CONDITIONING"), (negative, "CONDITIONING"),
                          (latent, "LATENT"), (ckpt, "VAE"),
                          dict(seed=42, steps=steps, cfg=cfg, sampler_name="euler", scheduler="normal", denoise=1.0),
                          "SaveImage", dict(filename_prefix=prefix))
    wf.group("FreeAccel", [prune])


def _sdxl(wf):
    _text_to_image(wf, "sd_xl_base_1.0.safetensors", 1024, 25, 7.0, "sdxl_tokenprune", 0.5)


def _sd15(wf):
    _text_to_image(wf, "v1-5-pruned-emaonly-fp16.safetensors", 512, 25, 7.0, "sd15_tokenprune", 0.5)


WORKFLOWS = {
    "sdxl_tokenprune.json": Example(
        title="SDXL text to image with TokenPrune",
        description="Runs each attention stage on the top half of its tokens (AT-EDM, merge recovery). SDXL base, "
                    "1024x1024, 25 steps.",
        note=_NOTE.format(extra="On SDXL at 1024x1024 `auto` prunes every attention level (4096 and 1024 tokens); "
                                "most of the saving comes from the 10-block stages, which run on the kept tokens. "
                                "Measured (docs/results.md; real-width SDXL UNet, random weights, CPU): a pruned "
                                "step ran 1.93x faster than the unpatched model, a 20-step run with DSAP on about "
                                "1.75x (core ToMe does nothing on SDXL)."),
        build=_sdxl),
    "sd15_tokenprune.json": Example(
        title="SD1.5 text to image with TokenPrune",
        description="Runs each attention stage on the top half of its tokens (AT-EDM, merge recovery). SD1.5, "
                    "512x512, 25 steps.",
        note=_NOTE.format(extra="SD1.5 has one transformer block per stage, so most of the saving is the first "
                                "self-attention's pruned queries. Measured (docs/results.md; real-width SD1.5 UNet, "
                                "random weights, CPU): a pruned step ran 1.50x faster than the unpatched model "
                                "(plain pruning 1.63x, core ToMe 0.5 1.58x in the same run); DSAP steps gain less. "
                                "On a model already using fused attention (SDPA, xformers) the gain at 512x512 is "
                                "small (1.17x; ToMe 1.13x). Quality: on a trained tiny SD1.5-layout UNet TokenPrune "
                                "lost 10-15 dB more than core ToMe at the same FLOPs, also with merge; prefer ToMe "
                                "on SD1.5."),
        build=_sd15),
}
