"""Bench variants and example workflows of FreeAccel_TokenPrune.

Variants: TokenPrune with and without DSAP against ComfyUI's core TomePatchModel at the same ratios.
Workflows: ``python bench/make_workflow.py --build bench.variants_token_prune``.

Core ToMe merges self-attention queries at the full latent resolution only (its max_downsample is fixed to 1), so on
SDXL, which has no attention at that resolution, it changes nothing: its row there measures the patch overhead.
TokenPrune runs with levels = "1,2,4,8" here (every attention level the model has): the tiny models' narrow
channels make the node's "auto" level choice, tuned on the real widths, meaningless. On Flux and WAN 2.1 (no ToMe
peer) it prunes the default block range (Flux: double-stream blocks 1..3 of 4; WAN: blocks 1..2 of 4).
"""
FAMILIES = ("sd15", "sdxl", "flux", "wan21")
DIT_FAMILIES = ("flux", "wan21")
STEPS = 10
# SD1.5 at 512x512 and SDXL at 1024x1024 have 64x64 and 128x128 latents.
LATENT_SIZES = {"sd15": (64, 64), "sdxl": (128, 128)}
RATIOS = (0.3, 0.5, 0.7)


def _token_prune(ratio, dsap):
    def apply(model):
        from .comfy_env import current_runtime  # booted before variants are applied
        runtime = current_runtime()
        settings = runtime.pack_module("accel_core.token_prune").PruneSettings(ratio=ratio, dsap=dsap,
                                                                               levels="1,2,4,8")
        return runtime.pack_module("nodes.token_prune").apply_token_prune(model, settings)
    return apply


def _core_tome(ratio):
    def apply(model):
        from comfy_extras.nodes_tomesd import TomePatchModel
        return TomePatchModel.execute(model, ratio).result[0]
    return apply


def variants(family):
    found = []
    for ratio in RATIOS:
        found.append((f"TokenPrune {ratio}", _token_prune(ratio, dsap=False)))
        found.append((f"TokenPrune {ratio} DSAP", _token_prune(ratio, dsap=True)))
        if family not in DIT_FAMILIES:  # core ToMe patches UNet self-attention only
            found.append((f"core ToMe {ratio}", _core_tome(ratio)))
    return found


# --- example workflows (UI format) ----------------------------------------------------------------------------

_HF = "https://huggingface.co"
_NOTE = ("**TokenPrune (AT-EDM)** ranks the tokens of each attention stage by G-WPR at its first self-attention, "
         "runs the rest of the stage on the top `1 - ratio` of them and refills the others from their most similar "
         "kept token before the convolutions. DSAP spares the outer stage of each level during the first "
         "`dsap_percent` of sampling. `levels = auto` prunes stages with at least `min_tokens` tokens. {extra}")


def _text_to_image(wf, ckpt_name, url, size, steps, cfg, prefix, ratio):
    ckpt = wf.add("CheckpointLoaderSimple", ckpt_name=ckpt_name)
    wf.model_file(ckpt, ckpt_name, url, "checkpoints")
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
    wf.note(_NOTE.format(extra="On SDXL at 1024x1024 `auto` prunes every attention level (4096 and 1024 tokens); "
                               "most of the saving comes from the 10-block stages, which run on the kept tokens."),
            title="About this workflow")
    _text_to_image(wf, "sd_xl_base_1.0.safetensors",
                   f"{_HF}/stabilityai/stable-diffusion-xl-base-1.0/resolve/main/sd_xl_base_1.0.safetensors",
                   1024, 25, 7.0, "sdxl_tokenprune", 0.5)


def _sd15(wf):
    wf.note(_NOTE.format(extra="SD1.5 has one transformer block per stage, so only that block's cross-attention "
                               "and feed-forward run pruned, while scoring and recovery are paid on every token. "
                               "Measured (docs/results.md; tiny 32-channel test UNet at a 512x512-equivalent latent, "
                               "ratios 0.3-0.7): every TokenPrune setting did 8.7-14.7 % **more** FLOPs than the "
                               "unpatched model and ran at 0.62-0.71x its speed, while core ToMe (TomePatchModel) "
                               "skipped 12-36 % and ran 1.29-2.36x faster. Real SD1.5 weights have not been "
                               "measured: do not count on a speedup here."),
            title="About this workflow")
    _text_to_image(wf, "v1-5-pruned-emaonly.safetensors",
                   f"{_HF}/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/v1-5-pruned-emaonly.safetensors",
                   512, 25, 7.0, "sd15_tokenprune", 0.5)


WORKFLOWS = {"sdxl_tokenprune.json": _sdxl, "sd15_tokenprune.json": _sd15}
