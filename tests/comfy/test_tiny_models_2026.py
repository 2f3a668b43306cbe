"""The tiny models of issue 23's families (ComfyUI 0.33's image/video DiTs of 2026) and the facts of
``devtools.harness.family_facts_2026``, checked against the real classes: each family builds the config / model_base
/ diffusion-model classes the facts name, samples deterministically through ComfyUI's sampler, and honours the hooks
the facts say it honours (a counting ``patches_replace["dit"]`` replacement or block object patch fires once per
block per model call and changes nothing, the ``DIFFUSION_MODEL`` wrapper fires, ``optimized_attention_override``
sees the attention calls of the documented token layout).

Which versions run which tests: the per-family tests are collected only for the families whose ``min_comfyui`` is
at most the running ComfyUI's version (read from its ``comfyui_version.py`` at collection, without importing it):

- 0.3.75: flux2, z_image, qwen_image_edit, hunyuan_image21, hidream, chroma_radiance, sd35, hunyuan_video15,
  cosmos_predict2, wan22_animate, wan22_s2v, wan21_humo, wan22_camera;
- 0.8.0: those plus ltxav, kandinsky5, kandinsky5_image;
- 0.33.0: all 26 (plus cogvideox, cogvideox_i2v, minimax_h3, krea2, hidream_o1, lens, joyimage, mage_flow,
  wan21_causal_ar, wan22_wandancer).

``test_families_are_refused_below_their_minimum_version`` runs on every version and checks the refusal of the
others, so a version never skips a family silently.
"""
import os
import re

import pytest
import torch

from devtools.harness import comfy_env
from devtools.harness.family_facts_2026 import FACTS


def _version(text):
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def _running_version():
    """The version of the ComfyUI the session boots, or None when there is none (then every test skips)."""
    try:
        path = comfy_env.find_comfyui()
    except ValueError:  # conftest fails the run with the reason
        return None
    if path is None:
        return None
    with open(os.path.join(path, "comfyui_version.py"), encoding="utf-8") as handle:
        match = re.search(r"__version__\s*=\s*['\"]([^'\"]+)['\"]", handle.read())
    return _version(match.group(1))


RUNNING = _running_version()


def _reached(since):
    """Whether a feature the facts date ``since`` (a version, or None for never) is in the running ComfyUI."""
    return since is not None and (RUNNING is None or _version(since) <= RUNNING)


PRESENT = tuple(family for family, facts in FACTS.items() if _reached(facts["min_comfyui"]))

# (query tokens, key tokens) of attention calls the tiny model must make, from its sizes: latent 12 x 16 (video
# 3 frames; LTX-2 and MiniMax 6 x 8, HunyuanVideo 1.5 8 x 12) with patch 2 -> 48 image tokens per frame, 16 text
# tokens (Flux.2: padded to 512). DIT_IMG: the token count of the dit replacement's stream (a pair for LTX-2's video
# and audio).
ATTENTION = {
    "flux2": {(704, 704)},  # [512 txt, 192 img] (patch 1)
    "z_image": {(64, 64), (48, 48), (16, 16)},  # main layers [txt, img]; noise refiner; context refiner
    "qwen_image_edit": {(112, 112)},  # [16 txt, 48 noise, 48 reference]
    "hunyuan_image21": {(208, 208), (16, 16)},  # [192 img (patch 1), 16 txt]; token refiner
    "kandinsky5_image": {(48, 48), (48, 16), (16, 16)},  # visual self, visual-text cross, text blocks
    "krea2": {(64, 64), (16, 16)},  # [txt, img]; text refiner
    "hidream": {(80, 80)},  # [48 img, 16 T5 + 8 + 8 Llama]
    "hidream_o1": {(7, 22)},  # second pass: timestep + 6 image queries over [16 txt, timestep, 6 img]
    "chroma_radiance": {(22, 22)},  # [16 txt, 2 x 3 img patches of 16 px]
    "lens": {(208, 208)},  # [192 img, 16 txt]
    "joyimage": {(64, 64)},  # [48 img, 16 txt]
    "mage_flow": {(208, 208)},  # [16 txt, 192 img]
    "sd35": {(64, 64), (48, 48)},  # joint [txt, img]; MMDiT-X image self-attention in block 0
    "hunyuan_video15": {(304, 304), (16, 16)},  # [3 x 8 x 12 video (patch 1), 16 txt]; token refiner
    "cogvideox": {(160, 160)},  # [16 txt, 144 video]
    "cogvideox_i2v": {(160, 160)},
    "ltxav": {(144, 144), (144, 16), (8, 8), (8, 16), (144, 8), (8, 144)},  # v self/text, a self/text, a->v, v->a
    "minimax_h3": {(60, 60)},  # packed [16 txt, 8 audio, 36 video]
    "kandinsky5": {(144, 144), (144, 16), (16, 16)},
    "cosmos_predict2": {(144, 144), (144, 16)},
    "wan22_animate": {(144, 144), (144, 16)},
    "wan22_s2v": {(192, 192), (192, 16)},  # [144 video, 48 reference frame]
    "wan21_humo": {(192, 192), (192, 16)},  # [144 video, 48 reference frame]
    "wan22_camera": {(144, 144), (144, 16)},
    "wan21_causal_ar": {(144, 144), (144, 16)},
    "wan22_wandancer": {(144, 144), (144, 16)},
}
DIT_IMG = {
    "flux2": {"double_block": 192, "single_block": 704}, "qwen_image_edit": {"double_block": 96},
    "hunyuan_image21": {"double_block": 192, "single_block": 208}, "hidream_o1": {"double_block": 22},
    "chroma_radiance": {"double_block": 6, "single_block": 22}, "lens": {"double_block": 192},
    "joyimage": {"double_block": 48}, "mage_flow": {"double_block": 192}, "sd35": {"double_block": 48},
    "hunyuan_video15": {"double_block": 288, "single_block": 304}, "ltxav": {"double_block": (144, 8)},
    "minimax_h3": {"double_block": 60}, "wan22_animate": {"double_block": 144}, "wan22_s2v": {"double_block": 192},
    "wan21_humo": {"double_block": 192}, "wan22_camera": {"double_block": 144},
    "wan21_causal_ar": {"double_block": 144}, "wan22_wandancer": {"double_block": 144},
}


@pytest.fixture(scope="module")
def built(tiny):
    """One tiny model per family and build overrides, shared by the tests that only sample it or patch clones of
    it."""
    cases = {}

    def build(family, **overrides):
        key = (family, tuple(sorted(overrides.items())))
        if key not in cases:
            cases[key] = tiny.build(family, **overrides)
        return cases[key]
    return build


def present_or_refused(tiny, built, family, **overrides):
    """The tiny case of ``family``, or None on a ComfyUI without its class: then the builder's refusal naming the
    minimum version is what is checked (never a silent skip)."""
    if family in PRESENT:
        return built(family, **overrides)
    with pytest.raises(tiny.MissingModelClass, match=f"needs ComfyUI >= {re.escape(FACTS[family]['min_comfyui'])}"):
        tiny.build(family)
    return None


def _tensors(latent):
    return list(latent.unbind()) if getattr(latent, "is_nested", False) else [latent]


def _tokens(tensor, skip_reshape):
    """Sequence length of an attention input: [B, H, L, D] with skip_reshape, else [B, L, H * D]."""
    return tensor.shape[2] if skip_reshape else tensor.shape[1]


def _stream_tokens(stream):
    if isinstance(stream, (tuple, list)):
        return tuple(part.shape[1] for part in stream)
    return stream.shape[0] if stream.ndim == 2 else stream.shape[1]  # MiniMax's packed stream has no batch axis


class CountingBlock(torch.nn.Module):
    """A block object patch: counts its calls and runs the block it replaces."""

    def __init__(self, block, calls, name):
        super().__init__()
        self.block, self.calls, self.name = block, calls, name

    def forward(self, *args, **kwargs):
        self.calls[self.name] = self.calls.get(self.name, 0) + 1
        return self.block(*args, **kwargs)


def _block_lists(facts, diffusion_model):
    for path, kind in facts["blocks"].items():
        blocks = diffusion_model
        for part in path.split("."):
            blocks = getattr(blocks, part)
        yield path, kind, blocks


def test_facts_cover_every_2026_builder_and_leave_the_old_families_alone(tiny):
    assert set(tiny.FAMILIES_2026) == set(FACTS)
    assert not set(tiny.FAMILIES) & set(FACTS)
    for facts in FACTS.values():
        assert facts["dit_from"] is None or facts["dit_args"], facts["name"]
        # a family without a working dit hook is reached through object patches of its blocks
        assert (facts["dit_from"] is None) == (facts["object_patch"] is not None), facts["name"]
        assert set(facts["object_patch"] or ()) <= set(facts["blocks"]), facts["name"]


def test_families_are_refused_below_their_minimum_version(tiny):
    import comfy.supported_models
    import comfyui_version
    running = _version(comfyui_version.__version__)
    for family, facts in FACTS.items():
        present = hasattr(comfy.supported_models, facts["config_class"])
        if _version(facts["min_comfyui"]) <= running:
            assert present, f"{family}: {facts['config_class']} missing from ComfyUI {comfyui_version.__version__}"
        elif not present:
            message = (f"tiny '{family}' needs ComfyUI >= {facts['min_comfyui']} "
                       f"(comfy.supported_models.{facts['config_class']}); this is ComfyUI "
                       f"{comfyui_version.__version__}")
            with pytest.raises(tiny.MissingModelClass) as refused:
                tiny.build(family)
            assert str(refused.value) == message


@pytest.mark.parametrize("family", PRESENT)
def test_family_builds_its_real_classes_and_samples_deterministically(tiny, built, family):
    facts = FACTS[family]
    case = built(family)
    model = case.patcher.model
    assert case.family == family
    assert type(model.model_config).__name__ == facts["config_class"]
    assert type(model).__name__ == facts["model_base"]
    diffusion_model = type(model.diffusion_model)
    assert f"{diffusion_model.__module__}.{diffusion_model.__name__}" == facts["diffusion_model"]

    out = tiny.sample(case, steps=3, cfg=3.0, seed=7)
    again = tiny.sample(tiny.build(family), steps=3, cfg=3.0, seed=7)
    for result, repeat, latent in zip(_tensors(out), _tensors(again), _tensors(case.latent)):
        assert result.shape == latent.shape
        assert torch.isfinite(result).all() and result.abs().max() > 0
        assert torch.equal(result, repeat)


@pytest.mark.parametrize("family", PRESENT)
def test_family_honours_the_hooks_its_facts_name(tiny, built, family):
    import comfy.patcher_extension as extension
    facts = FACTS[family]
    case = built(family)
    plain = tiny.sample(case, steps=2, cfg=3.0, seed=3)

    model = case.patcher.clone()
    model_calls, wrapper_calls, block_calls, dit_args, attention = [0], [0], {}, {}, set()

    def count_model_calls(executor, *args, **kwargs):
        model_calls[0] += 1
        return executor(*args, **kwargs)

    def count_wrapper_calls(executor, *args, **kwargs):
        wrapper_calls[0] += 1
        return executor(*args, **kwargs)

    def record_attention(func, *args, **kwargs):
        skip = kwargs.get("skip_reshape", False)
        attention.add((_tokens(args[0], skip), _tokens(args[1], skip)))
        return func(*args, **kwargs)

    def counting_replacement(key):
        def replacement(args, extra):
            block_calls[key] = block_calls.get(key, 0) + 1
            dit_args.setdefault(key[0], (set(args), _stream_tokens(args[facts["dit_stream"]])))
            return extra["original_block"](args)
        return replacement

    model.add_wrapper_with_key(extension.WrappersMP.APPLY_MODEL, "test_count", count_model_calls)
    model.add_wrapper_with_key(extension.WrappersMP.DIFFUSION_MODEL, "test_count", count_wrapper_calls)
    model.model_options["transformer_options"]["optimized_attention_override"] = record_attention
    expected_blocks = []
    for path, kind, blocks in _block_lists(facts, model.model.diffusion_model):
        for index, block in enumerate(blocks):
            if facts["object_patch"] is not None and path in facts["object_patch"]:
                name = f"diffusion_model.{path}.{index}"
                model.add_object_patch(name, CountingBlock(block, block_calls, name))
                expected_blocks.append(name)
            elif kind is not None and _reached(facts["dit_from"]):
                model.set_model_patch_replace(counting_replacement((kind, index)), "dit", kind, index)
                expected_blocks.append((kind, index))
    assert expected_blocks

    hooked = tiny.sample(case, model=model, steps=2, cfg=3.0, seed=3)
    for result, reference in zip(_tensors(hooked), _tensors(plain)):
        assert torch.equal(result, reference)  # pass-through hooks change nothing
    assert model_calls[0] >= 2
    assert block_calls == {key: model_calls[0] for key in expected_blocks}
    assert wrapper_calls[0] == (model_calls[0] if _reached(facts["diffusion_model_wrapper_from"]) else 0)
    for kind, (keys, stream_tokens) in dit_args.items():
        assert set(facts["dit_args"][kind]) <= keys
        assert stream_tokens == DIT_IMG[family][kind]
    if _reached(facts["attention_override_from"]):
        assert ATTENTION[family] <= attention, sorted(attention)
    else:
        assert not attention


if "kandinsky5" in PRESENT:  # 0.8.0 on; the family tests below are collected only where the class exists
    @pytest.mark.parametrize("family", ["kandinsky5", "kandinsky5_image"])
    def test_kandinsky5_dit_hook_cannot_call_its_original_block(tiny, built, family):
        """Pins the ComfyUI bug the facts record (dit_from None): when it is fixed, the facts must say so."""
        case = built(family)
        model = case.patcher.clone()
        model.set_model_patch_replace(lambda args, extra: extra["original_block"](args), "dit", "double_block", 0)
        with pytest.raises(TypeError, match="unexpected keyword argument 'x'"):
            tiny.sample(case, model=model, steps=1, cfg=1.0)


if "minimax_h3" in PRESENT:  # 0.33.0 on
    def test_minimax_h3_packs_text_audio_video_in_that_order(tiny, built):
        import comfy.ldm.minimax.model as minimax
        case = built("minimax_h3")
        video, audio = case.latent.unbind()
        frames, height, width = video.shape[2:]
        layout = minimax.PackedLayout(tiny.TEXT_TOKENS, frames, height, width, audio.shape[-1])
        text, audio_tokens = tiny.TEXT_TOKENS, 2 * audio.shape[-1]
        video_tokens = frames * (height // 2) * (width // 2)
        spans = [(0, text), (text, text + audio_tokens), (text + audio_tokens, text + audio_tokens + video_tokens)]
        assert [tuple(segment) for segment in layout.segments] == [
            (*spans[0], "text"), (*spans[1], "audio"), (*spans[2], "video")]

        # what a dit replacement sees: the same spans, the modality in the modulation row (0 video, 1 text, 2 audio)
        seen = []

        def record_segments(args, extra):
            seen.append([(start, stop, int(row) % 3) for start, stop, row in args["mod_segments"]])
            return extra["original_block"](args)
        model = case.patcher.clone()
        model.set_model_patch_replace(record_segments, "dit", "double_block", 0)
        tiny.sample(case, model=model, steps=1, cfg=1.0)
        assert seen == [[(*spans[0], 1), (*spans[1], 2), (*spans[2], 0)]]
