"""FreeAccel_TemporalAttnPrune's example workflows: SVD img2vid and WAN 2.1 T2V; their texts are in examples.json."""
from .builder import examples, freeaccel_patch, wan21_text_to_video_example

# start_percent and calibration_steps are the node's defaults, written out so the example shows them
PRUNE_WIDGETS = dict(ratio=0.5, mode="identity", start_percent=0.1, calibration_steps=2)


def _svd(wf):
    ckpt = wf.add("ImageOnlyCheckpointLoader", ckpt_name="svd_xt.safetensors")
    image = wf.add("LoadImage", image="example.png")
    cond = wf.add("SVD_img2vid_Conditioning", width=1024, height=576, video_frames=25, motion_bucket_id=127, fps=6,
                  augmentation_level=0.0)
    wf.link(ckpt, "CLIP_VISION", cond, "clip_vision")
    wf.link(image, "IMAGE", cond, "init_image")
    wf.link(ckpt, "VAE", cond, "vae")
    guidance = wf.add("VideoLinearCFGGuidance", min_cfg=1.0)
    wf.link(ckpt, "MODEL", guidance, "model")
    prune = freeaccel_patch(wf, guidance, "FreeAccel_TemporalAttnPrune", **PRUNE_WIDGETS)
    wf.sample_decode_save((prune, "MODEL"), (cond, "positive"), (cond, "negative"),
                          (cond, "latent"), (ckpt, "VAE"),
                          dict(seed=42, steps=20, cfg=2.5, sampler_name="euler", scheduler="karras", denoise=1.0),
                          "SaveAnimatedWEBP", dict(filename_prefix="svd_temporal_prune", fps=6.0))


def _wan21(wf):
    wan21_text_to_video_example(wf, "SaveAnimatedWEBP", "wan21_temporal_prune", "FreeAccel_TemporalAttnPrune",
                                **PRUNE_WIDGETS)


WORKFLOWS = examples("temporal_prune", {"svd_temporal_prune.json": _svd, "wan21_temporal_prune.json": _wan21})
