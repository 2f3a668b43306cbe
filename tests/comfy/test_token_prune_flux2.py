"""TokenPrune's block range on Flux.2 (the Flux class with one modulation shared by all blocks, 512 padded text
tokens, SiLU-gated MLPs): exactness at ratio 0, the kept tokens inside the range, and the step's FLOPs against an
exact prediction from the real blocks' own FLOPs at N and K image tokens (its FLOP model holds)."""
import functools
import logging

import pytest
import torch

from bench.flops import count_flops
from test_token_prune_comfy import _dit_overhead_macs, _settings


@pytest.fixture(scope="module")
def tp_node(comfy_rt):
    return comfy_rt.pack_module("nodes.token_prune")


@pytest.fixture(scope="module")
def tp_core(comfy_rt):
    return comfy_rt.pack_module("accel_core.token_prune")


def _recorder(model, blocks):
    """Clone of ``model`` whose double blocks record their dit args (a copy) before running: installed before
    TokenPrune, it sees the pruned arguments."""
    seen = []

    def record(index, args, extra):
        seen.append((index, dict(args)))
        return extra["original_block"](args)

    recorded = model.clone()
    for index in range(blocks):
        recorded.set_model_patch_replace(functools.partial(record, index), "dit", "double_block", index)
    return recorded, seen


def _image_tokens(case):
    return case.latent.shape[-2] * case.latent.shape[-1]  # patch 1 on the 128-channel latent


def test_ratio_zero_is_bit_identical_and_pruning_acts(comfy_rt, tiny, tp_node, tp_core):
    case = tiny.build("flux2")
    reference = tiny.sample(case, steps=2)
    zero = tp_node.apply_token_prune(case.patcher, _settings(tp_core, 0.0, dsap=False, block_start=0))
    assert torch.equal(tiny.sample(case, model=zero, steps=2), reference)
    pruned = tp_node.apply_token_prune(case.patcher, _settings(tp_core, 0.5, dsap=False))
    out = tiny.sample(case, model=pruned, steps=2)
    assert torch.isfinite(out).all() and not torch.equal(out, reference)
    assert torch.equal(tiny.sample(case, steps=2), reference)


def test_kept_tokens_and_rotary_rows_inside_the_range(comfy_rt, tiny, tp_node, tp_core):
    ratio = 0.6
    case = tiny.build("flux2")
    blocks = len(case.patcher.model.diffusion_model.double_blocks)
    recorded, seen = _recorder(case.patcher, blocks)
    tiny.sample(case, model=tp_node.apply_token_prune(recorded, _settings(tp_core, ratio, dsap=False)), steps=1)
    tokens = _image_tokens(case)
    kept = tp_core.kept_count(tokens, ratio)
    assert [index for index, _ in seen] == list(range(blocks))
    for index, args in seen:
        inside = 1 <= index <= blocks - 1  # the default range: every double block but the first
        assert args["img"].shape[1] == (kept if inside else tokens)
        assert args["pe"].shape[2] == args["txt"].shape[1] + args["img"].shape[1]


@pytest.mark.parametrize("ratio,score_queries,recovery", [(0.3, 1.0, "similarity"), (0.5, 0.25, "merge"),
                                                          (0.6, 0.25, "local merge")])
def test_step_flops_match_prediction(comfy_rt, tiny, tp_node, tp_core, ratio, score_queries, recovery):
    case = tiny.build("flux2")
    blocks = case.patcher.model.diffusion_model.double_blocks
    recorded, seen = _recorder(case.patcher, len(blocks))
    tiny.sample(case, model=recorded, steps=1)
    _, base, _ = count_flops(tiny.sample, case, steps=1)
    settings = _settings(tp_core, ratio, dsap=False, score_queries=score_queries, recovery=recovery, iterations=2)
    _, measured, _ = count_flops(tiny.sample, case, model=tp_node.apply_token_prune(case.patcher, settings),
                                 steps=1)
    tokens = _image_tokens(case)
    kept = tp_core.kept_count(tokens, ratio)

    def block_flops(index, image_tokens):
        args = seen[index][1]
        text = args["txt"].shape[1]
        call = dict(img=args["img"][:, :image_tokens], txt=args["txt"], vec=args["vec"],
                    pe=args["pe"][:, :, :text + image_tokens], attn_mask=args.get("attn_mask"))
        return count_flops(blocks[index], **call)[1]

    batch = seen[0][1]["img"].shape[0]  # cond + uncond in one batch
    predicted = base + 2 * batch * _dit_overhead_macs(tp_core, case, blocks[1], tokens, ratio, settings)
    for index in range(1, len(blocks)):
        predicted -= block_flops(index, tokens) - block_flops(index, kept)
    logging.getLogger(__name__).info("flux2 ratio %s: base %d measured %d predicted %d FLOPs", ratio, base,
                                     measured, predicted)
    assert measured == predicted and measured < base
