"""What each image/video DiT family of issue 23 (ComfyUI 0.33's models of 2026) honours, read from the ComfyUI
sources (0.3.75 at /work/venv/comfyui-0.3.75, 0.8.0 and 0.33.0 under /work/shared/comfyui) and pinned by
``tests/comfy/test_tiny_models_2026.py`` on the tiny models of ``devtools.harness.tiny_models``. Plain data; imports
nothing (the tests read it at collection time, before ComfyUI boots).

``FACTS[family]``, one entry per tiny builder (``tiny_models.build(family)``):

- ``name``: what users call it. ``config_class``: the ``comfy.supported_models`` class the builder uses (ComfyUI's
  detection picks it for a real checkpoint); ``model_base``: the ``comfy.model_base`` class it builds;
  ``diffusion_model``: ``module.Class`` of ``model.diffusion_model``.
- ``min_comfyui``: the first of the three checked versions (0.3.75, 0.8.0, 0.33.0) whose
  ``comfy.supported_models`` has ``config_class``. On older ones the builder raises ``MissingModelClass`` naming it.
- ``blocks``: the block ``nn.ModuleList`` attribute(s) of the diffusion model, in call order, each mapped to the
  ``patches_replace["dit"]`` key kind that wraps its blocks (``(kind, index)``) or to None where it has none.
- ``dit_args``: the keys of the args dict a ``patches_replace["dit"]`` replacement receives, per key kind (the set
  common to every version that has the class; newer versions may add keys, see ``notes``). ``dit_stream``: the
  args key that carries the token stream(s) the replacement returns.
- ``dit_from`` / ``diffusion_model_wrapper_from`` / ``attention_override_from``: the first checked version from which
  the dit replacement, the ``WrappersMP.DIFFUSION_MODEL`` wrapper and ``optimized_attention_override`` (the model
  passes ``transformer_options`` to ``optimized_attention``) reach the model; None: never (in 0.33).
- ``object_patch``: for a model whose blocks have no dit hook (or a broken one), the block lists to reach through
  ``ModelPatcher.add_object_patch("diffusion_model.<list>.<i>", module)``, one patch per block (the model iterates
  the list, so the patched module is called in place of the block, with the block's own arguments); None where the
  dit hook serves.
- ``tokens``: the token layout. ``joint``: the order of the streams inside a joint attention (or the one packed
  sequence); ``video``: how the latent becomes tokens; ``extra``: reference / audio / pose / motion tokens.
- ``notes``: what a technique must know beyond the fields.

Which tests a ComfyUI version can run: ``test_tiny_models_2026`` parametrises each per-family test only over the
families whose ``min_comfyui`` is at most the running version (0.3.75: 13 families, 0.8.0: 16, 0.33.0: all 26);
the refusal of the others is tested on every version.
"""

V0375, V080, V033 = "0.3.75", "0.8.0", "0.33.0"

_WAN_ARGS = ("img", "pe", "txt", "vec")  # 0.3.75 leaves transformer_options out for S2V, 0.8.0 on adds it
_WAN_VIDEO = ("(t, h, w) frame-major after a (1, 2, 2) patch embedding: one token per 2 x 2 latent pixels per "
              "latent frame; self-attention over the video stream only, text by cross-attention")
_FLUX_ARGS = {"double_block": ("attn_mask", "img", "pe", "txt", "vec"),
              "single_block": ("attn_mask", "img", "pe", "vec")}
_HUNYUAN_ARGS = {"double_block": ("attention_mask", "img", "modulation_dims_img", "modulation_dims_txt", "pe", "txt",
                                  "vec"),
                 "single_block": ("attention_mask", "img", "modulation_dims", "pe", "vec")}


def _family(name, config_class, model_base, diffusion_model, min_comfyui, blocks, dit_args=None,
            dit_stream="img", dit_from=None, diffusion_model_wrapper_from=None, attention_override_from=None,
            object_patch=None, tokens=None, notes=""):
    return dict(name=name, config_class=config_class, model_base=model_base, diffusion_model=diffusion_model,
                min_comfyui=min_comfyui, blocks=blocks, dit_args=dit_args or {}, dit_stream=dit_stream,
                dit_from=dit_from, diffusion_model_wrapper_from=diffusion_model_wrapper_from,
                attention_override_from=attention_override_from, object_patch=object_patch, tokens=tokens or {},
                notes=notes)


def _wan(name, config_class, model_base, diffusion_model, min_comfyui, extra=None, attention_override_from=None,
         notes=""):
    """A WAN-layout family: single-stream blocks keyed "double_block", every hook from its first version on."""
    tokens = {"joint": ("img",), "video": _WAN_VIDEO}
    if extra:
        tokens["extra"] = extra
    return _family(name, config_class, model_base, diffusion_model, min_comfyui, {"blocks": "double_block"},
                   {"double_block": _WAN_ARGS}, dit_from=min_comfyui, diffusion_model_wrapper_from=min_comfyui,
                   attention_override_from=attention_override_from or min_comfyui, tokens=tokens, notes=notes)


FACTS = {
    # ------------------------------------------------------------------ image DiTs
    "flux2": _family(
        "Flux.2", "Flux2", "Flux2", "comfy.ldm.flux.model.Flux", V0375,
        {"double_blocks": "double_block", "single_blocks": "single_block"}, _FLUX_ARGS,
        dit_from=V0375, diffusion_model_wrapper_from=V0375, attention_override_from=V0375,
        tokens={"joint": ("txt", "img"), "video": "image: one token per latent pixel (patch 1 on the 128-channel "
                "latent, which is 2 x 2-patchified already)",
                "extra": "reference images (Flux2 edit, reference_latents) append after the noise tokens in img"},
        notes="model_base.Flux2 left-pads the text to 512 tokens, so txt is 512 long at any prompt length; vec is a "
              "tuple of the shared (global) modulations in double blocks. TokenPrune: double blocks keep separate "
              "img/txt MLPs (ratio 3, SiLU-gated), single blocks see [txt, img]."),
    "z_image": _family(
        "Z-Image", "ZImage", "Lumina2", "comfy.ldm.lumina.model.NextDiT", V0375,
        {"noise_refiner": None, "context_refiner": None, "layers": None},
        diffusion_model_wrapper_from=V0375, attention_override_from=V0375,
        object_patch=("layers",),
        tokens={"joint": ("txt", "img"), "video": "image: patch 2",
                "extra": "noise_refiner runs on the image tokens alone, context_refiner on the text alone, before "
                         "the main layers see the concatenation"},
        notes="No block replacement: patches['double_block'] is a post-block hook (it may rewrite img/txt after "
              "each main layer), not a replacement. A main layer is called as layer(x, mask, freqs_cis, "
              "adaln_input, ...) and returns x over [txt, img]; 0.33 also passes timestep_zero_index and "
              "transformer_options. transformer_options['block_type'] is set from 0.8.0 on."),
    "qwen_image_edit": _family(
        "Qwen-Image-Edit", "QwenImage", "QwenImage", "comfy.ldm.qwen_image.model.QwenImageTransformer2DModel",
        V0375, {"transformer_blocks": "double_block"}, {"double_block": ("img", "pe", "txt", "vec")},
        dit_from=V0375, diffusion_model_wrapper_from=V0375, attention_override_from=V0375,
        tokens={"joint": ("txt", "img"), "video": "image: patch 2 on the 16-channel latent (time axis 1)",
                "extra": "each reference latent (reference_latents) appends its patch tokens after the noise tokens "
                         "in img; the output keeps the first (noise) tokens"},
        notes="The same model as Qwen-Image (issue 23's Edit variants differ in conditioning, and 2511 in "
              "default_ref_method 'index_timestep_zero': the reference tokens then get timestep 0 through a "
              "second modulation)."),
    "hunyuan_image21": _family(
        "HunyuanImage 2.1", "HunyuanImage21", "HunyuanImage21", "comfy.ldm.hunyuan_video.model.HunyuanVideo",
        V0375, {"double_blocks": "double_block", "single_blocks": "single_block"}, _HUNYUAN_ARGS,
        dit_from=V0375, diffusion_model_wrapper_from=V0375, attention_override_from=V0375,
        tokens={"joint": ("img", "txt"), "video": "image: patch [1, 1] on the 64-channel latent"},
        notes="The HunyuanVideo class with a 2-D patch; the text token refiner attends too (text only)."),
    "kandinsky5_image": _family(
        "Kandinsky 5 image", "Kandinsky5Image", "Kandinsky5Image", "comfy.ldm.kandinsky5.model.Kandinsky5", V080,
        {"text_transformer_blocks": None, "visual_transformer_blocks": "double_block"},
        {"double_block": ("context", "freqs", "time_embed", "x")}, dit_stream="x",
        diffusion_model_wrapper_from=V080, attention_override_from=V080,
        object_patch=("visual_transformer_blocks",),
        tokens={"joint": ("img",), "video": "image: patch (1, 2, 2); self-attention over the image tokens, text by "
                "cross-attention"},
        notes="The dit hook is broken in 0.8.0 and 0.33.0: its original_block calls the block with keywords x= and "
              "context= that TransformerDecoderBlock.forward(visual_embed, text_embed, ...) does not take, so "
              "calling original_block raises TypeError (a replacement must call the block module itself, or use "
              "the object patch)."),
    "krea2": _family(
        "Krea 2", "Krea2", "Krea2", "comfy.ldm.krea2.model.SingleStreamDiT", V033,
        {"blocks": None}, diffusion_model_wrapper_from=V033, attention_override_from=V033,
        object_patch=("blocks",),
        tokens={"joint": ("txt", "img"), "video": "image: patch 2; a 5-D latent is folded into the batch",
                "extra": "reference latents append after the noise tokens"},
        notes="Single-stream blocks called as block(x, vec, freqs, mask=, timestep_zero_index=, "
              "transformer_options=) over [txt, img]; the text-fusion transformer (over the text-encoder layers) "
              "and its refiner attend too, on text only."),
    "hidream": _family(
        "HiDream I1", "HiDream", "HiDream", "comfy.ldm.hidream.model.HiDreamImageTransformer2DModel", V0375,
        {"double_stream_blocks": None, "single_stream_blocks": None},
        diffusion_model_wrapper_from=V0375, attention_override_from=V0375,
        object_patch=("double_stream_blocks", "single_stream_blocks"),
        tokens={"joint": ("img", "txt"), "video": "image: patch 2",
                "extra": "txt = [T5, Llama layer of this block]; each block takes a different Llama layer"},
        notes="No block replacement. Blocks take keywords (image_tokens, image_tokens_masks, text_tokens, "
              "adaln_input, rope, transformer_options); double blocks return (img, txt), single blocks the joint "
              "sequence. MoE feed-forward."),
    "hidream_o1": _family(
        "HiDream-O1", "HiDreamO1", "HiDreamO1", "comfy.ldm.hidream_o1.model.HiDreamO1Transformer", V033,
        {"language_model.layers": "double_block"},
        {"double_block": ("attention_mask", "freqs_cis", "optimized_attention", "x")}, dit_stream="x",
        dit_from=V033, diffusion_model_wrapper_from=V033, attention_override_from=V033,
        tokens={"joint": ("txt", "img"), "video": "pixel space: one token per 32 x 32 pixels",
                "extra": "a timestep token before the image tokens; reference images enter as vision tokens"},
        notes="A dit replacement turns off the text-prefix K/V cache (can_cache = not blocks_replace), so every "
              "step then recomputes the text prefix. Attention is two-pass (causal text prefix, then the image "
              "part); the second pass reaches the override with queries = timestep + image tokens and keys = the "
              "whole sequence."),
    "chroma_radiance": _family(
        "Chroma Radiance", "ChromaRadiance", "ChromaRadiance", "comfy.ldm.chroma_radiance.model.ChromaRadiance",
        V0375, {"double_blocks": "double_block", "single_blocks": "single_block", "nerf_blocks": None}, _FLUX_ARGS,
        dit_from=V0375, diffusion_model_wrapper_from=V0375, attention_override_from=V0375,
        tokens={"joint": ("txt", "img"), "video": "pixel space: one token per 16 x 16 pixels, then a per-pixel NeRF "
                "decoder (nerf_blocks) on each patch"},
        notes="Chroma's blocks (Flux layout without a vector input); the NeRF decoder has no hook."),
    "lens": _family(
        "Lens", "Lens", "Lens", "comfy.ldm.lens.model.LensTransformer2DModel", V033,
        {"transformer_blocks": "double_block"}, {"double_block": ("attn_mask", "img", "pe", "txt", "vec")},
        dit_from=V033, diffusion_model_wrapper_from=V033, attention_override_from=V033,
        tokens={"joint": ("img", "txt"), "video": "image: patch 2 on the 128-channel Flux2 latent"},
        notes="Dual-stream MMDiT."),
    "joyimage": _family(
        "JoyImage", "JoyImage", "JoyImage", "comfy.ldm.joyimage.model.JoyImageTransformer3DModel", V033,
        {"double_blocks": "double_block"}, {"double_block": ("img", "pe", "txt", "vec")},
        dit_from=V033, diffusion_model_wrapper_from=V033, attention_override_from=V033,
        tokens={"joint": ("img", "txt"), "video": "image: patch (1, 2, 2) on the 16-channel latent (time axis 1)"},
        notes="Attention is called with [B, L, H*D] (no skip_reshape)."),
    "mage_flow": _family(
        "MageFlow", "MageFlow", "MageFlow", "comfy.ldm.mage_flow.model.MageFlowTransformer2DModel", V033,
        {"transformer_blocks": "double_block"}, {"double_block": ("img", "pe", "txt", "vec")},
        dit_from=V033, diffusion_model_wrapper_from=V033, attention_override_from=V033,
        tokens={"joint": ("txt", "img"), "video": "image: patch 1 on the 128-channel Flux2 latent",
                "extra": "reference latents append after the noise tokens"},
        notes="Qwen-Image's block layout (model_base.MageFlow subclasses QwenImage)."),
    "sd35": _family(
        "SD 3.5 (MMDiT)", "SD3", "SD3", "comfy.ldm.modules.diffusionmodules.mmdit.OpenAISignatureMMDITWrapper", V0375,
        {"joint_blocks": "double_block"}, {"double_block": ("img", "txt", "vec")},
        dit_from=V0375, diffusion_model_wrapper_from=None, attention_override_from=V0375,
        tokens={"joint": ("txt", "img"), "video": "image: patch 2, learned-free sin-cos positions added"},
        notes="No DIFFUSION_MODEL wrapper (hooks at APPLY_MODEL or the dit keys instead). The last joint block "
              "has a context block that outputs no text (pre_only). SD3.5 medium's MMDiT-X blocks "
              "(x_block_self_attn_layers) run a second, image-only self-attention, which the override sees too. "
              "TokenPrune: separate img/txt MLPs per block; no RoPE (pe is absent from the args)."),
    # ------------------------------------------------------------------ video DiTs
    "hunyuan_video15": _family(
        "HunyuanVideo 1.5", "HunyuanVideo15", "HunyuanVideo15", "comfy.ldm.hunyuan_video.model.HunyuanVideo", V0375,
        {"double_blocks": "double_block", "single_blocks": "single_block"}, _HUNYUAN_ARGS,
        dit_from=V0375, diffusion_model_wrapper_from=V0375, attention_override_from=V0375,
        tokens={"joint": ("img", "txt"), "video": "(t, h, w) frame-major, patch [1, 1, 1] on the 32-channel latent "
                "(input = noise 32 + image condition 32 + mask 1)",
                "extra": "a SigLIP image (clip_vision_output) adds vision tokens to txt; byT5 glyph tokens too"},
        notes="Same class as HunyuanVideo 1.0 (its dit keys and args); the text token refiner attends too (text "
              "only)."),
    "cogvideox": _family(
        "CogVideoX T2V", "CogVideoX_T2V", "CogVideoX", "comfy.ldm.cogvideo.model.CogVideoXTransformer3DModel", V033,
        {"blocks": None}, diffusion_model_wrapper_from=V033, attention_override_from=V033,
        object_patch=("blocks",),
        tokens={"joint": ("txt", "img"), "video": "(t, h, w) frame-major, patch 2 spatial (1.0) or 2 x 2 x 2 "
                "(1.5, patch_size_t=2)"},
        notes="No block replacement. A block is called with keywords (hidden_states, encoder_hidden_states, temb, "
              "image_rotary_emb, transformer_options) and returns (video, text); the joint attention sees "
              "[text, video] as [B, L, H*D] (no skip_reshape)."),
    "cogvideox_i2v": _family(
        "CogVideoX I2V", "CogVideoX_I2V", "CogVideoX", "comfy.ldm.cogvideo.model.CogVideoXTransformer3DModel", V033,
        {"blocks": None}, diffusion_model_wrapper_from=V033, attention_override_from=V033,
        object_patch=("blocks",),
        tokens={"joint": ("txt", "img"), "video": "as CogVideoX T2V; the image condition is concatenated to the "
                "input channels (no extra tokens)"},
        notes="As CogVideoX T2V."),
    "ltxav": _family(
        "LTX-2 (audio + video)", "LTXAV", "LTXAV", "comfy.ldm.lightricks.av_model.LTXAVModel", V080,
        {"transformer_blocks": "double_block"},
        {"double_block": ("a_context", "a_cross_gate_timestep", "a_cross_pe", "a_cross_scale_shift_timestep", "a_pe",
                          "a_timestep", "attention_mask", "img", "v_context", "v_cross_gate_timestep", "v_cross_pe",
                          "v_cross_scale_shift_timestep", "v_pe", "v_timestep")},
        dit_from=V080, diffusion_model_wrapper_from=V080, attention_override_from=V080,
        tokens={"joint": ("video", "audio"), "video": "(t, h, w) frame-major, patch 1 on the 128-channel latent",
                "extra": "two streams, never concatenated: img = (video tokens [B, Lv, Dv], audio tokens "
                         "[B, La, Da]), one audio token per audio latent frame (8 channels x 16 mel bins). Per "
                         "block: video self, video-text cross, audio self, audio-text cross, audio->video and "
                         "video->audio cross attention"},
        notes="The replacement returns img as the (video, audio) pair. 0.33 adds self_attention_mask and "
              "v_/a_prompt_timestep to the args. The latent is a NestedTensor (video, audio); audio and video have "
              "their own timesteps (audio_denoise_mask)."),
    "minimax_h3": _family(
        "MiniMax H3 (audio + video)", "MiniMaxH3", "MiniMaxH3", "comfy.ldm.minimax.model.MiniMaxH3Model", V033,
        {"blocks": "double_block"}, {"double_block": ("img", "mod_segments", "rope_freqs", "t_emb")},
        dit_from=V033, diffusion_model_wrapper_from=V033, attention_override_from=V033,
        tokens={"joint": ("txt", "audio", "video"),
                "video": "patch (1, 2, 2), frame-major, the last segment of the packed sequence",
                "extra": "one packed 2-D sequence [L, D] without batch axis: text, reference image/audio rows and "
                         "keyframe condition rows (when given), target audio (2 rows per audio latent frame), "
                         "target video; layout.segments names the spans"},
        notes="Batch size 1 only: cond and uncond always run as separate model calls. The audio stream is "
              "rescaled onto the video schedule outside the DIFFUSION_MODEL wrapper. A dit replacement finds the "
              "streams in args['mod_segments']: (start, stop, modulation row) spans of img whose row % 3 is the "
              "modality (0 video, 1 text, 2 audio; audio has its own timestep, hence its own rows)."),
    "kandinsky5": _family(
        "Kandinsky 5 video", "Kandinsky5", "Kandinsky5", "comfy.ldm.kandinsky5.model.Kandinsky5", V080,
        {"text_transformer_blocks": None, "visual_transformer_blocks": "double_block"},
        {"double_block": ("context", "freqs", "time_embed", "x")}, dit_stream="x",
        diffusion_model_wrapper_from=V080, attention_override_from=V080,
        object_patch=("visual_transformer_blocks",),
        tokens={"joint": ("img",), "video": "(t, h, w) frame-major, patch (1, 2, 2); input = noise 16 + image "
                "condition 16 + mask 1; self-attention over the video tokens, text by cross-attention"},
        notes="The dit hook is broken in 0.8.0 and 0.33.0 (see kandinsky5_image): use the object patch."),
    "cosmos_predict2": _family(
        "Cosmos Predict2", "CosmosT2IPredict2", "CosmosPredict2", "comfy.ldm.cosmos.predict2.MiniTrainDIT", V0375,
        {"blocks": None}, diffusion_model_wrapper_from=V0375, attention_override_from=V0375,
        object_patch=("blocks",),
        tokens={"joint": ("img",), "video": "(t, h, w) frame-major, patch 2 x 2 x 1; blocks keep x as "
                "[B, T, H, W, D]; self-attention over the video tokens, text by cross-attention"},
        notes="No block replacement; blocks are called as block(x_B_T_H_W_D, t_embedding, crossattn_emb, "
              "rope_emb_L_1_1_D=, adaln_lora_B_T_3D=, extra_per_block_pos_emb=, transformer_options=)."),
    "wan22_animate": _wan(
        "Wan 2.2 Animate", "WAN22_Animate", "WAN22_Animate", "comfy.ldm.wan.model_animate.AnimateWanModel", V0375,
        extra="pose latents are added onto the tokens of latent frames 1.. (no extra tokens); a "
              "reference (ref_conv, when the checkpoint has one) is a prefix before the video tokens",
        notes="The face adapter (every 5th block, with face video) calls optimized_attention without "
              "transformer_options, so the override does not reach it. The i2v cross-attention reaches the "
              "override twice per block."),
    "wan22_s2v": _wan(
        "Wan 2.2 S2V", "WAN22_S2V", "WAN22_S2V", "comfy.ldm.wan.model.WanModel_S2V", V0375,
        extra="[video, reference frame tokens (reference_latents), motion tokens (reference_motion)]: "
              "the extra tokens follow the video tokens in img; audio is injected after the listed "
              "blocks by cross-attention to audio tokens (4 per video frame), not as tokens of img",
        attention_override_from=V080,
        notes="The audio injector runs after the dit replacement of its block (outside it). 0.3.75 passes no "
              "transformer_options to the blocks (nor in the dit args), so the attention override reaches S2V "
              "from 0.8.0 on."),
    "wan21_humo": _wan(
        "HuMo", "WAN21_HuMo", "WAN21_HuMo", "comfy.ldm.wan.model.HumoWanModel", V0375,
        extra="[video, reference frame tokens]; audio is a per-block cross-attention inside the block "
              "(audio tokens are not in img)"),
    "wan22_camera": _wan(
        "Wan 2.2 Fun Camera", "WAN22_Camera", "WAN21_Camera", "comfy.ldm.wan.model.CameraWanModel", V0375,
        extra="camera embeddings are added onto the video tokens (no extra tokens)"),
    "wan21_causal_ar": _wan(
        "Wan CausalAR", "WAN21_CausalAR_T2V", "WAN21_CausalAR", "comfy.ldm.wan.ar_model.CausalWanModel", V033,
        notes="Sampled here as one plain call over the clip; the block-causal frame-by-frame mode keeps a KV "
              "cache across calls, which a step cache must not skip blindly."),
    "wan22_wandancer": _wan(
        "WanDancer", "WAN22_WanDancer", "WAN22_WanDancer", "comfy.ldm.wan.model_wandancer.WanDancerModel", V033,
        extra="music features are injected after the listed blocks by cross-attention (not tokens of img)",
        notes="The i2v cross-attention reaches the override twice per block (the CLIP-image branch with 0 "
              "tokens when no clip_vision_output is given)."),
}

FAMILIES = tuple(FACTS)
