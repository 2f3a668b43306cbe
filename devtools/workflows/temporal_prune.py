"""FreeAccel_TemporalAttnPrune's example workflows: SVD img2vid and WAN 2.1 T2V."""
from .builder import Example, wan21_text_to_video

START_PERCENT = 0.1  # the node's defaults, written out so the example shows them
CALIBRATION_STEPS = 2

_NOTE = ("**TemporalAttnPrune (F3)** measures, during `calibration_steps` steps from `start_percent`, how much "
         "attention each temporal unit sends to *other* frames, then prunes the lowest `ratio` of them for the rest "
         "of the run. Set `ratio` to 0 to only log the measurement. {extra}")


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
    prune = wf.add("FreeAccel_TemporalAttnPrune", ratio=0.5, mode="identity", start_percent=START_PERCENT,
                   calibration_steps=CALIBRATION_STEPS)
    wf.link(guidance, "MODEL", prune, "model")
    wf.sample_decode_save((prune, "MODEL"), (cond, "positive"), (cond, "negative"),
                          (cond, "latent"), (ckpt, "VAE"),
                          dict(seed=42, steps=20, cfg=2.5, sampler_name="euler", scheduler="karras", denoise=1.0),
                          "SaveAnimatedWEBP", dict(filename_prefix="svd_temporal_prune", fps=6.0))
    wf.group("FreeAccel", [prune])


def _wan21(wf):
    shift, positive, negative, vae = wan21_text_to_video(wf)
    prune = wf.add("FreeAccel_TemporalAttnPrune", ratio=0.5, mode="identity", start_percent=START_PERCENT,
                   calibration_steps=CALIBRATION_STEPS)
    wf.link(shift, "MODEL", prune, "model")
    latent = wf.add("EmptyHunyuanLatentVideo", width=832, height=480, length=33, batch_size=1)
    wf.sample_decode_save((prune, "MODEL"), (positive, "CONDITIONING"), (negative, "CONDITIONING"),
                          (latent, "LATENT"), (vae, "VAE"),
                          dict(seed=42, steps=30, cfg=6.0, sampler_name="uni_pc", scheduler="simple", denoise=1.0),
                          "SaveAnimatedWEBP", dict(filename_prefix="wan21_temporal_prune", fps=16.0))
    wf.group("FreeAccel", [prune])


WORKFLOWS = {
    "svd_temporal_prune.json": Example(
        title="SVD image to video with TemporalAttnPrune",
        description="Prunes the temporal attention that looks least at other frames. SVD XT on ComfyUI's "
                    "example.png, 1024x576, 25 frames.",
        note=_NOTE.format(extra="On SVD the units are the temporal (`time_stack`) attention modules; `skip` "
                                "bypasses a pruned temporal block, `identity` keeps only its value/output "
                                "projections. Load Image starts from `example.png`, which ComfyUI ships in its "
                                "`input` folder; pick your own image there."),
        build=_svd),
    "wan21_temporal_prune.json": Example(
        title="WAN 2.1 text to video with TemporalAttnPrune",
        description="Prunes the attention heads that look least at other frames. WAN 2.1 T2V 1.3B, 832x480, "
                    "33 frames, 30 steps.",
        note=_NOTE.format(extra="On WAN the units are heads of the 3-D self-attention; a pruned head attends within "
                                "its own latent frame only (`identity`) or is dropped (`skip`)."),
        build=_wan21),
}
