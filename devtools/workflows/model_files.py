"""Where the model files our example workflows name come from: the files ComfyUI's own templates point at.

Each entry is what ComfyUI's templates put into a loader's `properties.models` (name, url, directory): the frontend's
Missing Models dialog offers the url as a download into `models/<directory>` when no file of that name is there.
Sources, checked by hand against comfyui-workflow-templates 0.11.44 (ComfyUI 0.33.0's pin) and frontend 1.49.6:
the text_to_video_wan template (WAN 2.1), flux_dev_checkpoint_example (Flux dev), sdxl_simple_example (SDXL base),
txt_to_image_to_video (SVD XT), the frontend's default graph (src/scripts/defaultGraph.ts, SD1.5),
video_wan2_2_14B_t2v (WAN 2.2 14B), image_flux2_text_to_image (Flux.2 dev) and video_hunyuan_video_1.5_720p_t2v
(HunyuanVideo 1.5). Two deviations: the name is the key, so wan_2.1_vae.safetensors keeps the WAN 2.1 repository's
url (the WAN 2.2 template points at the same file in the WAN 2.2 repository); and Flux.2 uses flux2-vae.safetensors,
the VAE of the image_flux2_fp8 template, not the small-decoder VAE (full_encoder_small_decoder.safetensors) that
image_flux2_text_to_image names: ComfyUI 0.33 sizes the decoder from its weights, 0.3.75 builds the full one. Where a template's
url ends in `?download=true` the query is dropped: it only asks Hugging Face for an attachment disposition, and the
url then ends in the file name as the frontend's download and the tests expect.
"""
from __future__ import annotations

from dataclasses import dataclass

HF = "https://huggingface.co"
WAN21 = f"{HF}/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files"
FLUX_TEXT_ENCODERS = f"{HF}/comfyanonymous/flux_text_encoders/resolve/main"
SD15 = f"{HF}/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main"
WAN22 = f"{HF}/Comfy-Org/Wan_2.2_ComfyUI_Repackaged/resolve/main/split_files"
FLUX2 = f"{HF}/Comfy-Org/flux2-dev/resolve/main/split_files"
HUNYUAN15 = f"{HF}/Comfy-Org/HunyuanVideo_1.5_repackaged/resolve/main/split_files"

# What the frontend's Missing Models dialog accepts (frontend 1.32.9 MissingModelsWarning.vue and 1.49.6
# platform/missingModel/missingModelDownload.ts): a url from one of these sources, a name with one of these suffixes.
DOWNLOAD_SOURCES = ("https://civitai.com/", "https://huggingface.co/")
DOWNLOAD_SUFFIXES = (".safetensors", ".sft")


@dataclass(frozen=True)
class ModelFile:
    directory: str  # a ComfyUI model folder name (folder_paths), as in models/<directory>
    url: str

    def entry(self, name) -> dict:
        """The properties.models entry of a loader whose widget holds `name`."""
        return {"name": name, "url": self.url, "directory": self.directory}


OFFICIAL_MODEL_FILES = {
    "wan2.1_t2v_1.3B_fp16.safetensors": ModelFile(
        "diffusion_models", f"{WAN21}/diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors"),
    "umt5_xxl_fp8_e4m3fn_scaled.safetensors": ModelFile(
        "text_encoders", f"{WAN21}/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors"),
    "wan_2.1_vae.safetensors": ModelFile("vae", f"{WAN21}/vae/wan_2.1_vae.safetensors"),
    "flux1-dev.safetensors": ModelFile(
        "diffusion_models", f"{HF}/Comfy-Org/flux1-dev/resolve/main/flux1-dev.safetensors"),
    "clip_l.safetensors": ModelFile("text_encoders", f"{FLUX_TEXT_ENCODERS}/clip_l.safetensors"),
    "t5xxl_fp16.safetensors": ModelFile("text_encoders", f"{FLUX_TEXT_ENCODERS}/t5xxl_fp16.safetensors"),
    "ae.safetensors": ModelFile(
        "vae", f"{HF}/Comfy-Org/Lumina_Image_2.0_Repackaged/resolve/main/split_files/vae/ae.safetensors"),
    "sd_xl_base_1.0.safetensors": ModelFile(
        "checkpoints", f"{HF}/stabilityai/stable-diffusion-xl-base-1.0/resolve/main/sd_xl_base_1.0.safetensors"),
    "v1-5-pruned-emaonly-fp16.safetensors": ModelFile(
        "checkpoints", f"{SD15}/v1-5-pruned-emaonly-fp16.safetensors"),
    "svd_xt.safetensors": ModelFile(
        "checkpoints", f"{HF}/stabilityai/stable-video-diffusion-img2vid-xt/resolve/main/svd_xt.safetensors"),
    "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors": ModelFile(
        "diffusion_models", f"{WAN22}/diffusion_models/wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors"),
    "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors": ModelFile(
        "diffusion_models", f"{WAN22}/diffusion_models/wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors"),
    "flux2_dev_fp8mixed.safetensors": ModelFile(
        "diffusion_models", f"{FLUX2}/diffusion_models/flux2_dev_fp8mixed.safetensors"),
    "mistral_3_small_flux2_bf16.safetensors": ModelFile(
        "text_encoders", f"{FLUX2}/text_encoders/mistral_3_small_flux2_bf16.safetensors"),
    "flux2-vae.safetensors": ModelFile("vae", f"{FLUX2}/vae/flux2-vae.safetensors"),
    "hunyuanvideo1.5_720p_t2v_fp16.safetensors": ModelFile(
        "diffusion_models", f"{HUNYUAN15}/diffusion_models/hunyuanvideo1.5_720p_t2v_fp16.safetensors"),
    "qwen_2.5_vl_7b_fp8_scaled.safetensors": ModelFile(
        "text_encoders", f"{HUNYUAN15}/text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors"),
    "byt5_small_glyphxl_fp16.safetensors": ModelFile(
        "text_encoders", f"{HUNYUAN15}/text_encoders/byt5_small_glyphxl_fp16.safetensors"),
    "hunyuanvideo15_vae_fp16.safetensors": ModelFile("vae", f"{HUNYUAN15}/vae/hunyuanvideo15_vae_fp16.safetensors"),
}
