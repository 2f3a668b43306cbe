"""FreeAccel_AdaCache on the image/video DiTs of 2026 (issue 23), on tiny models of their real ComfyUI classes.

Collected per running ComfyUI version like ``test_tiny_models_2026``: a family runs on the versions whose
``comfy.supported_models`` has it (``family_facts_2026.json``'s ``min_comfyui``; 0.3.75: 13 families, 0.8.0: 16,
0.33.0: all 26). The refusal of a family below its minimum version is tested in ``tests/unit/test_families.py`` and
by ``test_tiny_models_2026``.

The audio policy (LTX-2, MiniMax H3): the audio tokens have their own distance and codebook rate, a step is reused
only while both rates allow it, and a skipped step's audio is the audio stack input plus the audio residual of the
last computed step (reuse "hold").
"""
import logging

import pytest
import torch

from devtools.harness.family_facts_2026 import FACTS
from test_tiny_models_2026 import PRESENT, built, present_or_refused  # noqa: F401 (built: a fixture)

NEVER = "1.00:1"
EAGER = "100.0:3"  # every distance is below 100: reuse 3 steps after each computed step
KEY = "freeaccel_adacache"
# tiny builder -> the accel_core family it is detected as (the others share their name)
FAMILY = {"qwen_image_edit": "qwen_image", "cogvideox_i2v": "cogvideox"}


def _settings(comfy_rt, **changes):
    return comfy_rt.pack_module("accel_core.adacache").AdaCacheSettings(**changes)


def _served_here(comfy_rt, case):
    """Whether this ComfyUI version can serve the family; where it cannot, the node must refuse it naming the
    version it needs (e.g. Wan 2.2 S2V on 0.3.75, whose blocks get no transformer_options)."""
    families = comfy_rt.pack_module("accel_core.families")
    compat = comfy_rt.pack_module("nodes.integration.compat")
    needed = families.minimum_comfyui("adacache", FAMILY.get(case.family, case.family))
    if needed is None or compat.VERSION >= tuple(map(int, needed.split("."))):
        return True
    with pytest.raises(families.UnsupportedModelError, match=rf"needs ComfyUI >= {needed} \(this is "):
        _apply(comfy_rt, case.patcher)
    return False


def _apply(comfy_rt, model, **changes):
    return comfy_rt.pack_module("nodes.adacache").apply_adacache(model, _settings(comfy_rt, **changes))


def _steps(comfy_rt, model):
    return list(comfy_rt.pack_module("nodes.integration.run_state").last_run(model, KEY).steps)


def _tensors(latent):
    return list(latent.unbind()) if getattr(latent, "is_nested", False) else [latent]


def _equal(a, b):
    return all(torch.equal(x, y) for x, y in zip(_tensors(a), _tensors(b)))


def _count_stack_work(comfy_rt, case):
    """Counts the calls of every module inside the cached block stacks (forward hooks on their submodules, which
    run only when a block really computes); returns (counter, remove)."""
    adapter = _adapter(comfy_rt, case)
    calls = [0]
    handles = []
    diffusion_model = case.patcher.model.diffusion_model
    for attribute, _ in adapter.stacks:
        for block in diffusion_model.get_submodule(attribute):
            for module in block.modules():
                if module is not block and not list(module.children()):
                    handles.append(module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1)))
    return calls, lambda: [h.remove() for h in handles]


def _adapter(comfy_rt, case):
    return comfy_rt.pack_module("nodes.integration.families").ADAPTERS[FAMILY.get(case.family, case.family)]


def _block_count(comfy_rt, case):
    return len(case.patcher.model.diffusion_model.get_submodule(_adapter(comfy_rt, case).stacks[0][0]))


@pytest.mark.parametrize("family", PRESENT)
def test_family_is_in_the_support_table_with_its_route(comfy_rt, built, family):
    families = comfy_rt.pack_module("accel_core.families")
    install = comfy_rt.pack_module("nodes.integration.install")
    case = built(family)
    assert families.family_of(case.patcher.model) == FAMILY.get(family, family)
    # the version the node names when it refuses a family is the one whose ComfyUI first has the class
    assert families.MIN_COMFYUI.get(FAMILY.get(family, family), "0.3.75") == FACTS[family]["min_comfyui"]
    if not _served_here(comfy_rt, case):
        return
    patched = _apply(comfy_rt, case.patcher)
    listed = families.SUPPORT["adacache"][FAMILY.get(family, family)]
    assert install.installed_hooks(patched, KEY) == listed
    # the route the facts name: the dit hook where it works, object patches of the blocks' forward elsewhere
    assert (families.OBJECT_PATCHES in listed) == (FACTS[family]["object_patch"] is not None)


@pytest.mark.parametrize("family", PRESENT)
def test_never_reuse_is_bit_identical(comfy_rt, tiny, built, family, caplog):
    case = built(family)
    if not _served_here(comfy_rt, case):
        return
    reference = tiny.sample(case, steps=6)
    patched = _apply(comfy_rt, case.patcher, preset="custom", custom_codebook=NEVER)
    with caplog.at_level(logging.INFO):
        assert _equal(tiny.sample(case, model=patched, steps=6), reference)
    assert "AdaCache: computed 6 of 6 steps (rates 1,1,1,1,1,1)" in [r.getMessage() for r in caplog.records]
    assert _equal(tiny.sample(case, steps=6), reference)  # nothing left patched on the original


@pytest.mark.parametrize("family", PRESENT)
def test_reused_steps_skip_the_block_stack(comfy_rt, tiny, built, family):
    case = built(family)
    if not _served_here(comfy_rt, case):
        return
    calls, remove = _count_stack_work(comfy_rt, case)
    try:
        plain = tiny.sample(case, steps=10)
        per_step = calls[0] / 10
        calls[0] = 0
        patched = _apply(comfy_rt, case.patcher, preset="custom", custom_codebook=EAGER)
        out = tiny.sample(case, model=patched, steps=10)
    finally:
        remove()
    computed = [r.step for r in _steps(comfy_rt, patched) if r.computed]
    assert computed == [0, 1, 4, 7, 8, 9]  # 0, 1 forced; rate 3 -> 4, 7; 8, 9 forced
    assert per_step > 0 and calls[0] == per_step * len(computed)  # skipped steps ran no block module
    assert all(torch.isfinite(t).all() for t in _tensors(out)) and not _equal(out, plain)


@pytest.mark.parametrize("family", PRESENT)
def test_default_settings_reuse_steps_on_a_slowly_changing_run(comfy_rt, tiny, built, family):
    """The node's defaults (fast_30, scaled to the run's 300 effective steps) on a 30-step pass at denoise 0.1:
    the content changes little from step to step, so steps are reused."""
    case = built(family)
    if not _served_here(comfy_rt, case):
        return
    patched = _apply(comfy_rt, case.patcher)
    tiny.sample(case, model=patched, steps=30, denoise=0.1)
    computed = sum(r.computed for r in _steps(comfy_rt, patched))
    assert computed < 30


# --- the audio policy ---------------------------------------------------------------------------------------------

AUDIO_FAMILIES = ("ltxav", "minimax_h3")



def _rows(args, stream, modality):
    """The tokens of one modality of a block stream: LTX-2's first (visual) or second (audio) stream; MiniMax H3's
    rows whose modulation row % 3 is 0 (video) or 2 (audio)."""
    if isinstance(stream, (tuple, list)):
        return stream[0 if modality == "visual" else 1]
    rows = torch.full((stream.shape[0],), 1, dtype=torch.long)
    for start, stop, row in args["mod_segments"]:
        rows[start:stop] = (row.cpu() if torch.is_tensor(row) else torch.tensor(row)) % 3
    return stream[rows == (0 if modality == "visual" else 2)]


def _audio_rows(args, stream):
    return _rows(args, stream, "audio")


def _spy(comfy_rt, patched, blocks, metric):
    """Chain spies in front of AdaCache's entries (on a clone of the patched model): per model call, the stack input
    (block 0's input), the stack output (the last block's output) and the metric block's input and output."""
    chain = comfy_rt.pack_module("nodes.integration.blocks").chain_block_replacement
    spied = patched.clone()
    calls = []

    def first(args, run_block):
        calls.append({"sigma": float(args["transformer_options"]["sigmas"][0]), "args": args,
                      "input": _copy(args["img"])})
        return run_block(args)

    def measure(args, run_block):
        before = _copy(args["img"])
        out = run_block(args)
        calls[-1]["metric"] = (before, _copy(out["img"]))
        return out

    def last(args, run_block):
        out = run_block(args)
        calls[-1]["output"] = _copy(out["img"])
        return out

    for index, handler in ((blocks - 1, last), (metric, measure), (0, first)):
        chain(spied, "double_block", index, handler, "test_spy")
    return spied, calls


def _copy(stream):
    return tuple(t.clone() for t in stream) if isinstance(stream, (tuple, list)) else stream.clone()


@pytest.mark.parametrize("family", AUDIO_FAMILIES)
def test_audio_of_a_skipped_step_is_its_own_cached_residual(comfy_rt, tiny, built, family):
    case = present_or_refused(tiny, built, family)
    if case is None:
        return
    blocks = _block_count(comfy_rt, case)
    patched = _apply(comfy_rt, case.patcher, preset="custom", custom_codebook=EAGER)
    spied, calls = _spy(comfy_rt, patched, blocks, blocks // 2)
    tiny.sample(case, model=spied, steps=10, cfg=1.0)  # cfg 1: one model call per step
    records = _steps(comfy_rt, spied)
    assert [r.step for r in records if r.computed] == [0, 1, 4, 7, 8, 9]
    assert len(calls) == 10
    last_computed = None
    for record, call in zip(records, calls):
        audio_in, audio_out = _audio_rows(call["args"], call["input"]), _audio_rows(call["args"], call["output"])
        if record.computed:
            last_computed = call
            continue
        cached = (_audio_rows(last_computed["args"], last_computed["output"])
                  - _audio_rows(last_computed["args"], last_computed["input"]))
        assert torch.equal(audio_out, audio_in + cached)
        assert not torch.equal(audio_out, audio_in)


@pytest.mark.parametrize("family", AUDIO_FAMILIES)
def test_audio_has_its_own_distance_and_can_force_a_step(comfy_rt, tiny, built, family):
    """The recorded audio distance is the audio tokens' relative change of the metric block's residual, apart from
    the visual tokens' (how the two rates combine: tests/unit/test_adacache_modalities.py)."""
    adacache = comfy_rt.pack_module("accel_core.adacache")
    case = present_or_refused(tiny, built, family)
    if case is None:
        return
    blocks = _block_count(comfy_rt, case)
    patched = _apply(comfy_rt, case.patcher, preset="custom", custom_codebook=NEVER)
    spied, calls = _spy(comfy_rt, patched, blocks, blocks // 2)
    tiny.sample(case, model=spied, steps=6, cfg=1.0)
    records = _steps(comfy_rt, spied)

    def residual(call, modality):
        before, after = call["metric"]
        return _rows(call["args"], after, modality) - _rows(call["args"], before, modality)

    def l1(t):
        return t.abs().sum(dtype=torch.float64).item()

    audio, visual = [], []
    for previous, call in zip(calls, calls[1:]):
        for modality, found in (("audio", audio), ("visual", visual)):
            now, before = residual(call, modality), residual(previous, modality)
            found.append(l1(now - before) / l1(before))
    assert [r.modality_distances[adacache.AUDIO] for r in records[1:]] == pytest.approx(audio, rel=1e-6)
    assert [r.distance for r in records[1:]] == pytest.approx(visual, rel=1e-6)

