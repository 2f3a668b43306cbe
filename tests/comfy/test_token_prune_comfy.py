"""FreeAccel_TokenPrune inside a real ComfyUI on tiny SD1.5 / SDXL UNets and Flux / WAN DiTs: transparency at ratio
0, restoration, where the tokens are pruned, DSAP, batching, FLOPs against an exact prediction, and validation."""
import functools
import logging
import math
import re

import pytest
import torch

from bench.flops import count_flops

CONTEXT_TOKENS = 77  # the tiny UNet cases' CLIP context length


@pytest.fixture
def tp_node(comfy_rt):
    return comfy_rt.pack_module("nodes.token_prune")


@pytest.fixture
def tp_core(comfy_rt):
    return comfy_rt.pack_module("accel_core.token_prune")


def _settings(tp_core, ratio, **kwargs):
    kwargs.setdefault("min_tokens", 1)  # the tiny latents are far below the 1024-token default
    return tp_core.PruneSettings(ratio=ratio, **kwargs)


def _stage_grid(height, width, level):
    while level > 1:  # ComfyUI's stride-2 Downsample (kernel 3, padding 1) gives ceil(n / 2)
        height, width, level = math.ceil(height / 2), math.ceil(width / 2), level // 2
    return height, width


def _stage_tokens(height, width, level):
    return math.prod(_stage_grid(height, width, level))


def _record_attn2_tokens(model):
    """Clone of `model` that records (block, block_index, query tokens) of every cross-attention call."""
    seen = []

    def attn2_patch(n, context, value, extra_options):
        seen.append((tuple(extra_options["block"]), extra_options["block_index"], n.shape[1]))
        return n, context, value

    recorded = model.clone()
    recorded.set_model_attn2_patch(attn2_patch)
    return recorded, seen


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_ratio_zero_is_bit_identical_and_patches_are_restored(comfy_rt, tiny, tp_node, tp_core, family):
    case = tiny.build(family, height=17, width=23)
    reference = tiny.sample(case, steps=2)
    patched = tp_node.apply_token_prune(case.patcher, _settings(tp_core, 0.0, dsap=False))
    assert torch.equal(tiny.sample(case, model=patched, steps=2), reference)
    pruned = tp_node.apply_token_prune(case.patcher, _settings(tp_core, 0.5))
    out = tiny.sample(case, model=pruned, steps=2)
    assert out.shape == reference.shape and torch.isfinite(out).all() and not torch.equal(out, reference)
    assert torch.equal(tiny.sample(case, model=pruned, steps=2), out)  # deterministic, per-run state is fresh
    assert torch.equal(tiny.sample(case, steps=2), reference)  # object patches were put back
    diffusion_model = case.patcher.model.diffusion_model
    assert not any(isinstance(m, tp_node.PrunedSpatialTransformer) for m in diffusion_model.modules())


def test_sdxl_refiner(comfy_rt, tiny, tp_node, tp_core):
    """The SDXL refiner config (aesthetic-score conditioning) is the "sdxl" family and prunes the same way."""
    import comfy.supported_models
    case = tiny.build("sdxl")
    config = tiny._unet_config(num_res_blocks=[1, 1, 1], channel_mult=[1, 2, 2], transformer_depth=[0, 1, 1],
                               transformer_depth_output=[0, 0, 1, 1, 1, 1], use_linear_in_transformer=True,
                               num_classes="sequential", adm_in_channels=tiny.POOLED_DIM + 5 * 256)
    case.patcher = tiny.make_patcher(comfy.supported_models.SDXLRefiner, config, 0,
                                     after_init={"num_heads": -1, "num_head_channels": 16})
    reference = tiny.sample(case, steps=2)
    zero = tp_node.apply_token_prune(case.patcher, _settings(tp_core, 0.0))
    assert torch.equal(tiny.sample(case, model=zero, steps=2), reference)
    recorded, seen = _record_attn2_tokens(tp_node.apply_token_prune(case.patcher, _settings(tp_core, 0.5,
                                                                                             dsap=False)))
    out = tiny.sample(case, model=recorded, steps=1)
    assert torch.isfinite(out).all()
    assert {tokens for _, _, tokens in seen} == {tp_core.kept_count(_stage_tokens(16, 24, 2), 0.5),
                                                tp_core.kept_count(_stage_tokens(16, 24, 4), 0.5)}


def test_state_dict_keys_unchanged_while_patched(comfy_rt, tiny, tp_node, tp_core):
    case = tiny.build("sd15")
    keys = set(case.patcher.model.state_dict())
    patched = tp_node.apply_token_prune(case.patcher, _settings(tp_core, 0.5))
    patched.patch_model()
    try:
        assert isinstance(patched.model.diffusion_model.input_blocks[1][1], tp_node.PrunedSpatialTransformer)
        assert set(patched.model.state_dict()) == keys
    finally:
        patched.unpatch_model()
    assert set(case.patcher.model.state_dict()) == keys


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_prunes_right_after_the_first_self_attention(comfy_rt, tiny, tp_node, tp_core, family):
    """Every cross-attention of a pruned stage, the first block's included, sees exactly K = ceil((1 - r) N) tokens."""
    height, width, ratio = 17, 23, 0.6
    case = tiny.build(family, height=height, width=width)
    recorded, seen = _record_attn2_tokens(tp_node.apply_token_prune(case.patcher, _settings(tp_core, ratio,
                                                                                             dsap=False)))
    tiny.sample(case, model=recorded, steps=1)
    levels = {}
    for path, section, level in tp_node.unet_stage_paths(case.patcher.model.diffusion_model):
        block_id = 0 if section == "middle" else int(path.split(".")[2])
        levels[(section, block_id)] = level
    assert seen and {block for block, _, _ in seen} == set(levels)
    for block, _, tokens in seen:
        full = _stage_tokens(height, width, levels[block])
        assert tokens == tp_core.kept_count(full, ratio), (block, full, tokens)


def _attn1_replaced_everywhere(model, tp_node):
    """Clone of `model` whose every stage's attn1 is replaced by plain attention that bypasses attention overrides
    (as another node's attn1 replacement may)."""
    import comfy.ldm.modules.attention

    def plain_attention(q, k, v, extra_options):
        return comfy.ldm.modules.attention.optimized_attention(q, k, v, extra_options["n_heads"])

    replaced = model.clone()
    for path, section, _ in tp_node.unet_stage_paths(model.model.diffusion_model):
        number = 0 if section == "middle" else int(path.split(".")[2])
        replaced.set_model_attn1_replace(plain_attention, section, number)
    return replaced


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_first_self_attention_computes_the_kept_queries_only(comfy_rt, tiny, tp_node, tp_core, family,
                                                            monkeypatch):
    """The first attn1 of a pruned stage is asked for K query rows against all N keys, planned from the q / k
    ComfyUI hands to attention. With another node's attn1 replacement in the way, the stage plans from q / k it
    recomputes (every query is computed then): the first stage's plan, kept tokens and sources, is the same."""
    attention = comfy_rt.pack_module("nodes.integration.attention")
    height, width, ratio = 17, 23, 0.6
    case = tiny.build(family, height=height, width=width)
    shapes, plans = [], []

    def record(call):
        shapes.append((call.query_length, call.key_length))
        return call.next()

    def recorded_plan(*args):
        plans.append(tp_core.plan_tokens(*args))
        return plans[-1]

    monkeypatch.setattr(tp_node, "plan_tokens", recorded_plan)

    recording = attention.install_attention_override(case.patcher.clone(), record)
    settings = _settings(tp_core, ratio, dsap=False)
    pruned = tp_node.apply_token_prune(recording, settings)
    tiny.sample(case, model=pruned, steps=1)
    stage_tokens = {_stage_tokens(height, width, level)
                    for _, _, level in tp_node.unet_stage_paths(case.patcher.model.diffusion_model)}
    assert {(tp_core.kept_count(n, ratio), n) for n in stage_tokens} <= set(shapes)
    assert not any(key in stage_tokens and query == key for query, key in shapes)  # no full first attn1 left
    handler_plans = list(plans)
    shapes.clear()
    plans.clear()
    tiny.sample(case, model=tp_node.apply_token_prune(_attn1_replaced_everywhere(recording, tp_node), settings),
                steps=1)
    assert not any(query == key in stage_tokens for query, key in shapes)  # attn1 never reached the override
    assert len(plans) == len(handler_plans) > 0
    # only the first stage sees the same input in both runs: the pruned tokens' first attn1 output differs (their
    # source's result against their own), so later stages differ too
    assert torch.equal(plans[0].keep_index, handler_plans[0].keep_index)
    assert torch.equal(plans[0].source, handler_plans[0].source)


def test_dsap_spares_outer_stages_early_only(comfy_rt, tiny, tp_node, tp_core):
    height, width, ratio, steps = 16, 24, 0.5, 4
    case = tiny.build("sd15", height=height, width=width)
    settings = _settings(tp_core, ratio, dsap=True, dsap_percent=0.5)
    recorded, seen = _record_attn2_tokens(tp_node.apply_token_prune(case.patcher, settings))
    tiny.sample(case, model=recorded, steps=steps, cfg=1.0)  # cfg 1: one model call per step
    entries = tp_node.unet_stage_paths(case.patcher.model.diffusion_model)
    stages = tp_core.classify_stages([(section, level) for _, section, level in entries])
    per_step = len(seen) // steps
    assert per_step == len(entries)
    sampling = case.patcher.get_model_object("model_sampling")
    import comfy.samplers
    sigmas = comfy.samplers.calculate_sigmas(sampling, "simple", steps)
    threshold = sampling.percent_to_sigma(0.5)
    for step in range(steps):
        early = float(sigmas[step]) > threshold
        for stage, (_, _, tokens), (_, _, level) in zip(stages, seen[step * per_step:(step + 1) * per_step], entries):
            full = _stage_tokens(height, width, level)
            expected = full if early and stage.dsap_protected else tp_core.kept_count(full, ratio)
            assert tokens == expected, (step, stage, tokens)
    assert any(float(s) > threshold for s in sigmas[:steps]) and any(float(s) <= threshold for s in sigmas[:steps])


def test_dsap_percent_zero_equals_dsap_off(comfy_rt, tiny, tp_node, tp_core):
    case = tiny.build("sdxl")
    off = tiny.sample(case, model=tp_node.apply_token_prune(case.patcher, _settings(tp_core, 0.5, dsap=False)))
    zero = tiny.sample(case, model=tp_node.apply_token_prune(
        case.patcher, _settings(tp_core, 0.5, dsap=True, dsap_percent=0.0)))
    assert torch.equal(off, zero)


def test_dsap_spares_the_same_steps_in_two_segments_of_one_schedule(comfy_rt, tiny, tp_node, tp_core):
    """KSamplerAdvanced segments / split samplers (steps 0-4 and 4-8 of one 8-step schedule) prune at every step
    exactly as one run over the schedule does: dsap_percent is a fraction of the whole schedule."""
    steps = 8
    case = tiny.build("sd15")
    recorded, seen = _record_attn2_tokens(tp_node.apply_token_prune(case.patcher, _settings(tp_core, 0.5,
                                                                                             dsap_percent=0.5)))
    tiny.sample(case, model=recorded, steps=steps, cfg=1.0)  # cfg 1: one model call per step
    one_run = list(seen)
    seen.clear()
    high = tiny.sample(case, model=recorded, steps=steps, cfg=1.0, start_step=0, last_step=4)
    tiny.sample(case, model=recorded, steps=steps, cfg=1.0, start_step=4, last_step=steps, latent=high)
    assert seen == one_run
    per_step = len(one_run) // steps
    step_tokens = [sum(tokens for _, _, tokens in one_run[i * per_step:(i + 1) * per_step]) for i in range(steps)]
    # the first half of the schedule is spared; a per-segment reading would also spare steps 4 and 5
    assert step_tokens[:4] == [step_tokens[0]] * 4 and step_tokens[4:] == [step_tokens[-1]] * 4
    assert step_tokens[0] > step_tokens[-1]


def test_dsap_window_excludes_its_end(comfy_rt, tiny, tp_node):
    """At the sigma of dsap_percent itself a protected stage already prunes (the window is [0, dsap_percent))."""
    sampling = tiny.build("sd15").patcher.get_model_object("model_sampling")
    run = tp_node._DsapRun(0.5, sampling, None)
    threshold = sampling.percent_to_sigma(0.5)
    assert not run.early(torch.tensor([threshold, threshold], dtype=torch.float64))
    assert run.early(torch.tensor([threshold * 1.001], dtype=torch.float64))


def test_dsap_reads_the_sigma_once_per_model_call(comfy_rt, tiny, tp_node, tp_core, monkeypatch):
    """The call's sigma (a device -> host wait) is read once per model call, not once per DSAP-protected stage."""
    reads = []
    read_sigma = tp_node.call_sigma
    monkeypatch.setattr(tp_node, "call_sigma", lambda sigmas: reads.append(sigmas) or read_sigma(sigmas))
    case = tiny.build("sd15")
    tiny.sample(case, model=tp_node.apply_token_prune(case.patcher, _settings(tp_core, 0.5)), steps=3, cfg=1.0)
    assert len(reads) == 3  # one model call per step, six protected stages in each


def test_token_prune_twice_replaces_the_earlier_one(comfy_rt, tiny, tp_node, tp_core):
    """A second TokenPrune takes the place of the first: its stages and its DSAP window."""
    case = tiny.build("sd15")
    first = tp_node.apply_token_prune(case.patcher, _settings(tp_core, 0.7, dsap_percent=0.9,
                                                              recovery="passthrough"))
    second = tp_node.apply_token_prune(first, _settings(tp_core, 0.3, dsap_percent=0.2))
    direct = tp_node.apply_token_prune(case.patcher, _settings(tp_core, 0.3, dsap_percent=0.2))
    assert torch.equal(tiny.sample(case, model=second), tiny.sample(case, model=direct))
    outer_sample = comfy_rt.pack_module("nodes.integration.run_state").OUTER_SAMPLE
    assert len(second.get_wrappers(outer_sample, tp_node.KEY)) == 1


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_batch_elements_are_pruned_independently(comfy_rt, tiny, tp_node, tp_core, family):
    """Scores and keep sets are per batch element: a batch of two equals the two elements run alone."""
    import comfy.model_management
    case = tiny.build(family, height=15, width=21)
    patched = tp_node.apply_token_prune(case.patcher, _settings(tp_core, 0.5, dsap=False))
    comfy.model_management.load_models_gpu([patched])
    model = patched.model
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(2, 4, 15, 21, generator=generator)
    context = torch.cat([case.positive[0][0], case.negative[0][0]])
    sigma = torch.tensor([5.0, 5.0])
    kwargs = {}
    if family == "sdxl":
        kwargs["y"] = torch.randn(2, model.diffusion_model.label_emb[0][0].in_features, generator=generator)

    def run(rows):
        extra = {k: v[rows] for k, v in kwargs.items()}
        return model.apply_model(x[rows], sigma[rows], c_crossattn=context[rows],
                                 transformer_options=dict(patched.model_options["transformer_options"]), **extra)

    both = run(slice(0, 2))
    torch.testing.assert_close(both[0:1], run(slice(0, 1)), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(both[1:2], run(slice(1, 2)), atol=1e-4, rtol=1e-4)


def _linear_macs(linear, tokens):
    return tokens * linear.in_features * linear.out_features


def _block_macs(block, tokens):
    """(attn1, attn2 + ff) multiply-accumulates of one BasicTransformerBlock on `tokens` tokens."""
    a1, a2 = block.attn1, block.attn2
    inner = a1.heads * a1.dim_head
    attn1 = sum(_linear_macs(m, tokens) for m in (a1.to_q, a1.to_k, a1.to_v, a1.to_out[0])) + 2 * tokens ** 2 * inner
    attn2 = (_linear_macs(a2.to_q, tokens) + _linear_macs(a2.to_out[0], tokens)
             + _linear_macs(a2.to_k, CONTEXT_TOKENS) + _linear_macs(a2.to_v, CONTEXT_TOKENS)
             + 2 * tokens * CONTEXT_TOKENS * inner)
    ff = sum(_linear_macs(m, tokens) for m in block.ff.modules() if isinstance(m, torch.nn.Linear))
    return attn1, attn2 + ff


def _predicted_stage_change(tp_core, stage, grid, batch, settings, ratio):
    """FLOPs (pruned - unpruned) of one stage: the first attn1 computes its kept queries only (against every key),
    everything after it runs on the K kept tokens; overhead = `iterations` score passes over the sampled query rows
    and the recovery search (pruned x kept, or the members of each window against each other)."""
    tokens = math.prod(grid)
    kept = tp_core.kept_count(tokens, ratio)
    saved = 0
    for i, block in enumerate(stage.transformer_blocks):
        attn1_full, rest_full = _block_macs(block, tokens)
        attn1_kept, rest_kept = _block_macs(block, kept)
        saved += rest_full - rest_kept + (attn1_full - attn1_kept if i else 0)
    attn = stage.transformer_blocks[0].attn1
    inner = attn.heads * attn.dim_head
    saved += 2 * (tokens - kept) * tokens * inner  # the first attn1's pruned queries (its projections run on all)
    rows = tokens if settings.score_queries >= 1 else max(1, round(settings.score_queries * tokens))
    overhead = settings.iterations * (rows * tokens * inner + attn.heads * rows * tokens)
    if settings.recovery in ("similarity", "merge"):  # merging adds no multiply-adds, only group sums
        overhead += (tokens - kept) * kept * inner
    elif settings.recovery in tp_core.WINDOWED_RECOVERY:
        windows, size = tp_core.local_windows(*grid, ratio, "cpu").shape
        overhead += windows * size * size * inner
    return 2 * batch * (overhead - saved)


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
@pytest.mark.parametrize("ratio,score_queries,recovery", [(0.3, 1.0, "similarity"), (0.7, 0.25, "merge"),
                                                          (0.5, 0.5, "passthrough"), (0.5, 0.25, "local"),
                                                          (0.8, 0.1, "local merge")])
def test_step_flops_match_prediction(comfy_rt, tiny, tp_node, tp_core, family, ratio, score_queries, recovery):
    import comfy.utils
    height, width = 33, 41
    case = tiny.build(family, height=height, width=width)
    _, base, _ = count_flops(tiny.sample, case, steps=1)  # one step, cond + uncond in one batch of 2
    settings = _settings(tp_core, ratio, dsap=False, score_queries=score_queries, recovery=recovery, iterations=2)
    _, measured, _ = count_flops(tiny.sample, case, model=tp_node.apply_token_prune(case.patcher, settings),
                                 steps=1)
    predicted = base
    for path, _, level in tp_node.unet_stage_paths(case.patcher.model.diffusion_model):
        stage = comfy.utils.get_attr(case.patcher.model, path)
        predicted += _predicted_stage_change(tp_core, stage, _stage_grid(height, width, level), 2, settings, ratio)
    logging.getLogger(__name__).info("%s ratio %s: base %d measured %d predicted %d FLOPs", family, ratio, base,
                                     measured, predicted)
    assert measured == predicted


def test_levels_select_stages(comfy_rt, tiny, tp_node, tp_core):
    height, width = 16, 24
    case = tiny.build("sdxl", height=height, width=width)  # attention at downsample 2 and 4
    recorded, seen = _record_attn2_tokens(tp_node.apply_token_prune(
        case.patcher, _settings(tp_core, 0.5, dsap=False, levels="4")))
    tiny.sample(case, model=recorded, steps=1)
    for _, _, tokens in seen:
        assert tokens in (_stage_tokens(height, width, 2), tp_core.kept_count(_stage_tokens(height, width, 4), 0.5))
    auto = _settings(tp_core, 0.5, dsap=False, min_tokens=_stage_tokens(height, width, 2))
    recorded, seen = _record_attn2_tokens(tp_node.apply_token_prune(case.patcher, auto))
    tiny.sample(case, model=recorded, steps=1)
    assert {tokens for _, _, tokens in seen} == {tp_core.kept_count(_stage_tokens(height, width, 2), 0.5),
                                                _stage_tokens(height, width, 4)}
    with pytest.raises(ValueError, match="levels 1 select no attention stage of this model; its attention stages "
                                         "are at downsample 2,4"):
        tp_node.apply_token_prune(case.patcher, _settings(tp_core, 0.5, levels="1"))


SUPPORTED = "supported families: SD 1.5, SDXL, Flux / Chroma, Flux.2, WAN 2.1 / 2.2"


@pytest.mark.parametrize("family,message", [
    ("svd", re.escape(f"TokenPrune (G-WPR / DSAP): model 'SVD_img2vid' is not supported; {SUPPORTED}")),
    ("hunyuan_video", re.escape(f"TokenPrune (G-WPR / DSAP): model 'HunyuanVideo' is not supported; {SUPPORTED}"))])
def test_unsupported_models_fail_clearly(comfy_rt, tiny, tp_node, tp_core, family, message):
    case = tiny.build(family)
    with pytest.raises(ValueError, match=message):
        tp_node.apply_token_prune(case.patcher, _settings(tp_core, 0.5))


def test_node_validation_messages(comfy_rt):
    node = comfy_rt.node_class("FreeAccel_TokenPrune")
    assert node.validate_inputs(ratio=0.5, dsap_percent=0.3, levels="auto") is True
    name = "TokenPrune (G-WPR / DSAP)"
    assert node.validate_inputs(ratio=0.96) == f"{name}: ratio must be within [0, 0.95], got 0.96"
    assert node.validate_inputs(ratio=-0.1) == f"{name}: ratio must be within [0, 0.95], got -0.1"
    assert node.validate_inputs(dsap_percent=1.2) == f"{name}: dsap_percent must be within [0, 1], got 1.2"
    assert "levels is empty" in node.validate_inputs(levels=" ")
    assert "'3' is not a downsample factor" in node.validate_inputs(levels="1,3")


def _prompt(ratio=0.5, levels="auto", dsap_percent=0.3):
    return {
        "1": {"class_type": "FreeAccel_TokenPrune",
              "inputs": {"model": ["9", 0], "ratio": ratio, "dsap": "on", "dsap_percent": dsap_percent,
                         "levels": levels, "min_tokens": 1024, "recovery": "similarity", "iterations": 1,
                         "score_queries": 0.25, "block_start": -1, "block_end": -1}},
        "9": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "missing.safetensors"}},
        "2": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": 0, "steps": 1, "cfg": 1.0,
                                                  "sampler_name": "euler", "scheduler": "simple",
                                                  "positive": ["9", 1], "negative": ["9", 1],
                                                  "latent_image": ["3", 0], "denoise": 1.0}},
        "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "4": {"class_type": "SaveLatent", "inputs": {"samples": ["2", 0], "filename_prefix": "x"}},
    }


@pytest.mark.parametrize("inputs,message", [({"ratio": 0.99}, "ratio must be within [0, 0.95]"),
                                            ({"levels": ""}, "levels is empty"),
                                            ({"dsap_percent": 1.5}, "dsap_percent must be within [0, 1]")])
def test_bad_inputs_fail_prompt_validation(comfy_rt, inputs, message):
    import asyncio
    import execution
    _, _, _, node_errors = asyncio.run(execution.validate_prompt("tp", _prompt(**inputs), None))
    messages = [e["details"] for e in node_errors.get("1", {}).get("errors", [])]
    assert any(message in m for m in messages), node_errors


# --- Flux / WAN: a pruned block range through patches_replace["dit"] ----------------------------------------------

DIT_FAMILIES = ["flux", "wan21", "wan22"]  # wan22 = the TI2V 5B layout with per-frame modulation
DIT_BLOCKS = {"flux": "double_blocks", "wan21": "blocks", "wan22": "blocks"}


def _dit_tokens(case):
    """Image / video tokens of a tiny DiT case (patch 2 x 2, one token per latent frame and patch)."""
    return case.frames * (case.latent.shape[-2] // 2) * (case.latent.shape[-1] // 2)


def _with_recorder(model, block_count):
    """Clone of `model` with a dit replacement on every block that records what the block is called with and then
    runs it: installed BEFORE TokenPrune, it is what TokenPrune chains to, so it sees the pruned arguments."""
    seen = []

    def record(index, args, extra):
        pe = args["pe"]
        seen.append({"block": index, "img": args["img"].shape[1],
                     "txt": args["txt"].shape[1], "pe": None if pe is None else pe.shape,
                     "vec": args["vec"].shape, "batch": args["img"].shape[0]})
        return extra["original_block"](args)

    recorded = model.clone()
    for index in range(block_count):
        recorded.set_model_patch_replace(functools.partial(record, index), "dit", "double_block", index)
    return recorded, seen


def _block_count(case):
    return len(getattr(case.patcher.model.diffusion_model, DIT_BLOCKS[case.family]))


@pytest.mark.parametrize("family", DIT_FAMILIES)
def test_dit_ratio_zero_is_bit_identical_and_nothing_stays_patched(comfy_rt, tiny, tp_node, tp_core, family):
    case = tiny.build(family)
    reference = tiny.sample(case, steps=2)
    zero = tp_node.apply_token_prune(case.patcher, _settings(tp_core, 0.0, dsap=False, block_start=0))
    assert torch.equal(tiny.sample(case, model=zero, steps=2), reference)
    pruned = tp_node.apply_token_prune(case.patcher, _settings(tp_core, 0.5, dsap=False))
    out = tiny.sample(case, model=pruned, steps=2)
    assert out.shape == reference.shape and torch.isfinite(out).all() and not torch.equal(out, reference)
    assert torch.equal(tiny.sample(case, model=pruned, steps=2), out)  # per-call state does not leak between runs
    assert torch.equal(tiny.sample(case, steps=2), reference)
    assert "dit" not in case.patcher.model_options["transformer_options"].get("patches_replace", {})
    assert not case.patcher.get_wrappers(comfy_rt.pack_module("nodes.integration.run_state").OUTER_SAMPLE,
                                         tp_node.KEY)


@pytest.mark.parametrize("family,block_range,expected", [("flux", (-1, -1), (1, 3)), ("flux", (0, 0), (0, 0)),
                                                         ("wan21", (-1, -1), (1, 2)), ("wan22", (2, -1), (2, 2)),
                                                         ("wan22", (0, 3), (0, 3))])
def test_dit_kept_tokens_inside_the_range(comfy_rt, tiny, tp_node, tp_core, family, block_range, expected):
    """Blocks first..last get exactly K = ceil((1 - r) N) image tokens with their own rotary rows (Flux: the text
    rows stay) and, on WAN 2.2 TI2V, one modulation row per kept token; the other blocks get all N tokens."""
    ratio = 0.6
    case = tiny.build(family)
    blocks = _block_count(case)
    recorded, seen = _with_recorder(case.patcher, blocks)
    settings = _settings(tp_core, ratio, dsap=False, block_start=block_range[0], block_end=block_range[1])
    tiny.sample(case, model=tp_node.apply_token_prune(recorded, settings), steps=1)
    tokens, kept = _dit_tokens(case), tp_core.kept_count(_dit_tokens(case), ratio)
    assert [call["block"] for call in seen] == list(range(blocks))  # cond + uncond in one batch, one step
    first, last = expected
    for call in seen:
        inside = first <= call["block"] <= last
        assert call["img"] == (kept if inside else tokens), call
        if family == "flux":
            assert call["pe"][2] == call["txt"] + call["img"] and call["pe"][0] == call["batch"]
        else:
            assert call["pe"][1] == call["img"]
        if family == "wan22":  # per-frame modulation outside, per kept token inside
            assert call["vec"][1] == (kept if inside else case.frames), call
        elif family == "wan21":
            assert call["vec"][1] == 1


@pytest.mark.parametrize("family", ["flux", "wan22"])
def test_dit_zero_ratio_chain_equals_the_chained_replacement_alone(comfy_rt, tiny, tp_node, tp_core, family):
    case = tiny.build(family)
    recorded, seen = _with_recorder(case.patcher, _block_count(case))
    alone = tiny.sample(case, model=recorded, steps=1)
    calls = len(seen)
    chained = tp_node.apply_token_prune(recorded, _settings(tp_core, 0.0, block_start=0))
    assert torch.equal(tiny.sample(case, model=chained, steps=1), alone)
    assert len(seen) == 2 * calls  # the earlier replacement still runs on every block


def test_dit_dsap_spares_the_range_early_only(comfy_rt, tiny, tp_node, tp_core):
    ratio, steps = 0.5, 4
    case = tiny.build("wan21")
    recorded, seen = _with_recorder(case.patcher, _block_count(case))
    settings = _settings(tp_core, ratio, dsap=True, dsap_percent=0.5, block_start=0, block_end=3)
    tiny.sample(case, model=tp_node.apply_token_prune(recorded, settings), steps=steps, cfg=1.0)
    import comfy.samplers
    sampling = case.patcher.get_model_object("model_sampling")
    sigmas = comfy.samplers.calculate_sigmas(sampling, "simple", steps)
    threshold = sampling.percent_to_sigma(0.5)
    early = [float(sigmas[step]) > threshold for step in range(steps)]
    assert any(early) and not all(early)
    tokens = _dit_tokens(case)
    per_step = [[call["img"] for call in seen[step * 4:(step + 1) * 4]] for step in range(steps)]
    assert per_step == [[tokens if e else tp_core.kept_count(tokens, ratio)] * 4 for e in early]


def _dit_apply(tiny, case, patched, x, rows):
    """apply_model of the tiny DiT on the batch rows `rows` of x (conditioning built per row, deterministically)."""
    model = patched.model
    generator = torch.Generator().manual_seed(5)
    batch = x.shape[0]
    context = torch.randn(batch, tiny.TEXT_TOKENS, tiny.TEXT_DIM, generator=generator)
    kwargs = {}
    if case.family == "flux":
        kwargs = {"y": torch.randn(batch, tiny.POOLED_DIM, generator=generator), "guidance": torch.full((batch,), 3.5)}
    if case.family == "wan22":
        kwargs = {"denoise_mask": case.noise_mask.expand(batch, *case.noise_mask.shape[1:])}
    sigma = torch.tensor([0.7, 0.4][:batch])
    options = dict(patched.model_options["transformer_options"])
    options["sigmas"] = sigma[rows]
    return model.apply_model(x[rows], sigma[rows], c_crossattn=context[rows], transformer_options=options,
                             **{k: v[rows] for k, v in kwargs.items()})


@pytest.mark.parametrize("family", DIT_FAMILIES)
def test_dit_batch_elements_are_pruned_independently(comfy_rt, tiny, tp_node, tp_core, family):
    """cond / uncond batched equals them run separately: keep sets, rotary rows and recovery are per element."""
    import comfy.model_management
    case = tiny.build(family)
    patched = tp_node.apply_token_prune(case.patcher, _settings(tp_core, 0.5, dsap=False, block_start=0))
    comfy.model_management.load_models_gpu([patched])
    x = torch.randn(2, *case.latent.shape[1:], generator=torch.Generator().manual_seed(2))
    both = _dit_apply(tiny, case, patched, x, slice(0, 2))
    torch.testing.assert_close(both[0:1], _dit_apply(tiny, case, patched, x, slice(0, 1)), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(both[1:2], _dit_apply(tiny, case, patched, x, slice(1, 2)), atol=1e-4, rtol=1e-4)
    reference = case.patcher.clone()
    comfy.model_management.load_models_gpu([reference])
    assert not torch.allclose(both, _dit_apply(tiny, case, reference, x, slice(0, 2)))


def test_dit_latent_batch_of_two(comfy_rt, tiny, tp_node, tp_core):
    case = tiny.build("wan22")
    case.latent = case.latent.expand(2, *case.latent.shape[1:]).clone()
    case.noise_mask = case.noise_mask.expand(2, *case.noise_mask.shape[1:])
    recorded, seen = _with_recorder(case.patcher, _block_count(case))
    out = tiny.sample(case, model=tp_node.apply_token_prune(recorded, _settings(tp_core, 0.5, dsap=False)), steps=1)
    assert out.shape[0] == 2 and torch.isfinite(out).all()
    assert {call["batch"] for call in seen} == {4}  # two latents x cond / uncond


def test_flux_controlnet_calls_run_unpruned(comfy_rt, tiny, tp_node, tp_core):
    """A ControlNet adds a residual to every image token after each double block: such calls are not pruned."""
    import comfy.model_management
    case = tiny.build("flux")
    patched = tp_node.apply_token_prune(case.patcher, _settings(tp_core, 0.5, dsap=False, block_start=0))
    reference = case.patcher.clone()
    x = torch.randn(1, *case.latent.shape[1:], generator=torch.Generator().manual_seed(3))
    control = {"input": [torch.full((1, _dit_tokens(case), 128), 0.1)] * 4, "output": []}
    outs = []
    for model in (patched, reference):
        comfy.model_management.load_models_gpu([model])
        options = dict(model.model_options["transformer_options"])
        options["wrappers"] = model.wrappers  # what the sampler hands the model (the APPLY_MODEL wrapper is there)
        outs.append(model.model.apply_model(x, torch.tensor([0.5]), c_crossattn=case.positive[0][0],
                                            control=control, transformer_options=options,
                                            y=case.positive[0][1]["pooled_output"], guidance=torch.tensor([3.5])))
    assert torch.equal(outs[0], outs[1])


def _dit_block_flops(case, block, tokens, text):
    """FLOPs of one call of `block` on a cond + uncond batch with `tokens` image tokens and `text` text tokens."""
    width = 128
    g = torch.Generator().manual_seed(0)
    if case.family == "flux":
        head_dim = block.hidden_size // block.num_heads
        args = dict(img=torch.randn(2, tokens, width, generator=g), txt=torch.randn(2, text, width, generator=g),
                    vec=torch.randn(2, width, generator=g), pe=torch.zeros(2, 1, text + tokens, head_dim // 2, 2, 2))
    else:
        head_dim = block.self_attn.head_dim
        args = dict(x=torch.randn(2, tokens, width, generator=g), e=torch.randn(2, 1, 6, width, generator=g),
                    freqs=torch.zeros(1, tokens, 1, head_dim // 2, 2, 2),
                    context=torch.randn(2, text, width, generator=g), context_img_len=None)
    _, flops, _ = count_flops(block, **args)
    return flops


def _dit_overhead_macs(tp_core, case, block, tokens, ratio, settings):
    """Per batch element: q/k recompute, `iterations` G-WPR passes over the sampled rows, recovery search (pruned x
    kept, or runs of tokens against each other)."""
    kept = tp_core.kept_count(tokens, ratio)
    if case.family in ("flux", "flux2"):
        heads, width = block.num_heads, block.hidden_size
        qk = tokens * width * 3 * width  # the fused qkv
        if block.modulation:  # Flux's own img_mod row (Flux.2 shares one modulation across blocks)
            qk += width * 6 * width
    else:
        heads, width = block.self_attn.num_heads, 128
        qk = 2 * tokens * width * width
    rows = tokens if settings.score_queries >= 1 else max(1, round(settings.score_queries * tokens))
    overhead = qk + settings.iterations * (rows * tokens * width + heads * rows * tokens)
    if settings.recovery in ("similarity", "merge"):
        overhead += (tokens - kept) * kept * width
    elif settings.recovery in tp_core.WINDOWED_RECOVERY:
        windows, size = tp_core.local_windows(1, tokens, ratio, "cpu").shape
        overhead += windows * size * size * width
    return overhead


@pytest.mark.parametrize("family", DIT_FAMILIES)
@pytest.mark.parametrize("ratio,score_queries,recovery", [(0.3, 1.0, "similarity"), (0.7, 0.25, "passthrough"),
                                                          (0.5, 0.0625, "local"), (0.4, 0.25, "merge"),
                                                          (0.6, 0.25, "local merge")])
def test_dit_step_flops_match_prediction(comfy_rt, tiny, tp_node, tp_core, family, ratio, score_queries, recovery):
    case = tiny.build(family)
    recorded, seen = _with_recorder(case.patcher, _block_count(case))
    tiny.sample(case, model=recorded, steps=1)
    text = seen[0]["txt"]  # the text length the blocks see (after the model's own padding)
    _, base, _ = count_flops(tiny.sample, case, steps=1)
    settings = _settings(tp_core, ratio, dsap=False, score_queries=score_queries, recovery=recovery, iterations=2)
    _, measured, _ = count_flops(tiny.sample, case, model=tp_node.apply_token_prune(case.patcher, settings),
                                 steps=1)
    tokens = _dit_tokens(case)
    kept = tp_core.kept_count(tokens, ratio)
    blocks = getattr(case.patcher.model.diffusion_model, DIT_BLOCKS[family])
    first, last = (1, 3) if family == "flux" else (1, 2)
    predicted = base + 2 * 2 * _dit_overhead_macs(tp_core, case, blocks[first], tokens, ratio, settings)
    for index in range(first, last + 1):
        predicted -= (_dit_block_flops(case, blocks[index], tokens, text)
                      - _dit_block_flops(case, blocks[index], kept, text))
    logging.getLogger(__name__).info("%s ratio %s: base %d measured %d predicted %d FLOPs (%.1f%% fewer)", family,
                                     ratio, base, measured, predicted, 100 * (1 - measured / base))
    assert measured == predicted and measured < base


def test_dit_block_range_errors(comfy_rt, tiny, tp_node, tp_core):
    case = tiny.build("flux")
    with pytest.raises(ValueError, match=r"^TokenPrune \(G-WPR / DSAP\): block range 2\.\.4 does not fit this model's "
                                         r"4 Flux double-stream blocks \(indices 0\.\.3"):
        tp_node.apply_token_prune(case.patcher, _settings(tp_core, 0.5, block_start=2, block_end=4))
    node = comfy_rt.node_class("FreeAccel_TokenPrune")
    assert (node.validate_inputs(block_start=3, block_end=1)
            == "TokenPrune (G-WPR / DSAP): block_end (1) must not be below block_start (3)")
    assert node.validate_inputs(block_start=3, block_end=-1) is True


def _adacache(comfy_rt, model):
    """``model`` with AdaCache's fast_30 preset (it reuses steps on the tiny WAN)."""
    settings = comfy_rt.pack_module("accel_core.adacache").AdaCacheSettings(preset="fast_30")
    return comfy_rt.pack_module("nodes.adacache").apply_adacache(model, settings)


def test_dit_chains_after_adacache(comfy_rt, tiny, tp_node, tp_core):
    """TokenPrune on an AdaCache model wraps AdaCache's block replacements instead of replacing them (on the tiny
    WAN AdaCache reuses steps, so the result differs from TokenPrune alone)."""
    case = tiny.build("wan21")
    cached = _adacache(comfy_rt, case.patcher)
    settings = _settings(tp_core, 0.5)
    both = tp_node.apply_token_prune(cached, settings)
    entry = both.model_options["transformer_options"]["patches_replace"]["dit"][("double_block", 1)]
    assert entry.owner == tp_node.KEY and entry.previous.owner == comfy_rt.pack_module("nodes.adacache").KEY
    out = tiny.sample(case, model=both, steps=10)
    pruned_only = tiny.sample(case, model=tp_node.apply_token_prune(case.patcher, settings), steps=10)
    assert torch.isfinite(out).all() and not torch.equal(out, pruned_only)
    assert torch.equal(tiny.sample(case, model=cached, steps=10),
                       tiny.sample(case, model=_adacache(comfy_rt, case.patcher), steps=10))


def test_dit_token_prune_twice_replaces_the_earlier_one(comfy_rt, tiny, tp_node, tp_core):
    """A second TokenPrune on the same model takes the place of the first (their range states would collide),
    keeping whatever the first one chained to; the model's blocks are shared, never copied, by later clones."""
    case = tiny.build("wan21")
    recorded, seen = _with_recorder(case.patcher, _block_count(case))
    first = tp_node.apply_token_prune(recorded, _settings(tp_core, 0.3, dsap=False, block_start=0, block_end=3))
    second = tp_node.apply_token_prune(first, _settings(tp_core, 0.6, dsap=False, block_start=2, block_end=2))
    direct = tp_node.apply_token_prune(recorded, _settings(tp_core, 0.6, dsap=False, block_start=2, block_end=2))
    out = tiny.sample(case, model=second, steps=1)
    tokens = _dit_tokens(case)
    assert [call["img"] for call in seen] == [tokens, tokens, tp_core.kept_count(tokens, 0.6), tokens]
    assert torch.equal(out, tiny.sample(case, model=direct, steps=1))
    replacement = second.clone().model_options["transformer_options"]["patches_replace"]["dit"][("double_block", 2)]
    assert replacement.handler.args[0].scoring_block is case.patcher.model.diffusion_model.blocks[2]


def test_adacache_after_token_prune_fails_with_the_order_to_use(comfy_rt, tiny, tp_node, tp_core):
    """AdaCache applied to a TokenPrune model would measure its metric block on pruned tokens: applying it fails
    and says what to do."""
    case = tiny.build("wan21")
    pruned = tp_node.apply_token_prune(case.patcher, _settings(tp_core, 0.5))
    with pytest.raises(ValueError, match=r"^AdaCache \+ MoReg: must come before TokenPrune \(G-WPR / DSAP\) "
                                         r"\(AdaCache measures .*\): connect loader -> AdaCache \+ MoReg -> "
                                         r"TokenPrune \(G-WPR / DSAP\)$"):
        _adacache(comfy_rt, pruned)


# --- drift: what TokenPrune copies from ComfyUI, pinned against ComfyUI itself -------------------------------------

@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_pruned_stage_skeleton_equals_comfyui_spatial_transformer(comfy_rt, tiny, tp_node, tp_core, family):
    """PrunedSpatialTransformer.forward_pruned mirrors SpatialTransformer.forward: keeping every token (ratio 0 on the
    pruned path) with passthrough recovery, it gives ComfyUI's output bit for bit on every stage."""
    import comfy.model_management
    import comfy.utils
    case = tiny.build(family)
    comfy.model_management.load_models_gpu([case.patcher])
    settings = _settings(tp_core, 0.5, recovery="passthrough")
    generator = torch.Generator().manual_seed(4)
    paths = tp_node.unet_stage_paths(case.patcher.model.diffusion_model)
    assert paths
    for index, (path, _, _) in enumerate(paths):
        original = comfy.utils.get_attr(case.patcher.model, path)
        stage = tp_node.PrunedSpatialTransformer(original, tp_core.Stage(1, False), settings)
        block = original.transformer_blocks[0]
        x = torch.randn(2, original.in_channels, 5, 7, generator=generator)
        context = torch.randn(2, CONTEXT_TOKENS, block.attn2.to_k.in_features, generator=generator)
        with torch.no_grad():
            expected = original(x, context=context, transformer_options={})
            pruned_path = stage.forward_pruned(x, context, {}, 0.0)
        assert torch.equal(pruned_path, expected), path


def _captured_self_attention_qk(comfy_rt, tiny, case, block_index, qk):
    """(q, k recomputed by ``qk`` from the block's arguments, q, k of the block's first attention call as ComfyUI
    hands them to attention) for block ``block_index`` of one sampling step, both [B, H, L, D]."""
    attention = comfy_rt.pack_module("nodes.integration.attention")
    recomputed, captured, inside = [], [], []

    def replacement(args, extra):
        recomputed.append(qk(args))
        inside.append(True)
        try:
            return extra["original_block"](args)
        finally:
            inside.clear()

    def capture(call):
        if inside and len(captured) < len(recomputed):  # the block's first attention: its self-attention
            captured.append((call.q, call.k))
        return call.next()

    model = case.patcher.clone()
    model.set_model_patch_replace(replacement, "dit", "double_block", block_index)
    attention.install_attention_override(model, capture)
    tiny.sample(case, model=model, steps=1)
    assert len(recomputed) == len(captured) == 1  # cond and uncond in one batch
    return recomputed[0], captured[0]


@pytest.mark.parametrize("family", DIT_FAMILIES)
def test_recomputed_qk_equal_what_comfyui_passes_to_attention(comfy_rt, tiny, family):
    """_flux_image_qk / _wan_qk re-implement the block math before attention: they must give the q / k that
    ComfyUI's own block hands to attention (Flux: the image part of the joint attention, text first)."""
    dit = comfy_rt.pack_module("nodes.token_prune_dit")
    host = dit.DIT_HOSTS["flux" if family == "flux" else "wan"]
    case = tiny.build(family)
    families = comfy_rt.pack_module("nodes.integration.families")
    block = families.double_blocks("flux" if family == "flux" else "wan", case.patcher.model.diffusion_model)[1]
    texts = []

    def qk(args):
        texts.append(args["txt"].shape[1] if family == "flux" else 0)
        return host.qk(block, args)

    (q, k), (joint_q, joint_k) = _captured_self_attention_qk(comfy_rt, tiny, case, 1, qk)
    text = texts[0]
    assert q.shape == joint_q[:, :, text:].shape
    assert torch.equal(q, joint_q[:, :, text:]) and torch.equal(k, joint_k[:, :, text:])


def _module_copy(comfy_rt, name, monkeypatch):
    """A fresh import of the pack's ``nodes.<name>`` under another module name (the loaded one stays as it is)."""
    import importlib.util
    import sys
    loaded = comfy_rt.pack_module(f"nodes.{name}")
    spec = importlib.util.spec_from_file_location(f"{loaded.__package__}.{name}_copy", loaded.__file__)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("family,module,name", [("sd15", "comfy.ldm.modules.attention", "SpatialTransformer"),
                                                ("sdxl", "comfy.ldm.modules.diffusionmodules.openaimodel",
                                                 "Downsample"),
                                                ("flux", "comfy.ldm.flux.math", "apply_rope"),
                                                ("wan21", "comfy.ldm.wan.model", "repeat_e")])
def test_a_renamed_comfyui_internal_disables_only_its_family(comfy_rt, tiny, tp_node, tp_core, monkeypatch, family,
                                                             module, name):
    """A ComfyUI without one of the private names TokenPrune uses still imports the node's modules; applying it to
    a family that needs the name fails with a message naming it."""
    import importlib
    case = tiny.build(family)
    monkeypatch.delattr(importlib.import_module(module), name)
    if family in ("sd15", "sdxl"):
        apply = _module_copy(comfy_rt, "token_prune", monkeypatch).apply_token_prune
    else:
        monkeypatch.setattr(tp_node, "dit_host", _module_copy(comfy_rt, "token_prune_dit", monkeypatch).dit_host)
        apply = tp_node.apply_token_prune
    with pytest.raises(RuntimeError, match=rf"^TokenPrune \(G-WPR / DSAP\): this ComfyUI lacks .*'{name}'.*"
                                           r"FreeAccel needs an update"):
        apply(case.patcher, _settings(tp_core, 0.5))
