"""Prompt surgery of the real-weights workflow benchmark (no ComfyUI needed)."""
from bench.workflow_bench import bypass_pack_nodes


def test_bypass_rewires_consumers_to_the_unpatched_model():
    prompt = {"1": {"class_type": "UNETLoader", "inputs": {}},
              "2": {"class_type": "FreeAccel_AdaCache", "inputs": {"model": ["1", 0]}},
              "3": {"class_type": "FreeAccel_AttentionBackend", "inputs": {"model": ["2", 0]}},
              "4": {"class_type": "KSampler", "inputs": {"model": ["3", 0], "seed": 1}}}
    bypassed = bypass_pack_nodes(prompt)
    assert sorted(bypassed) == ["1", "4"] and bypassed["4"]["inputs"]["model"] == ["1", 0]
    assert prompt["4"]["inputs"]["model"] == ["3", 0]  # the input prompt is untouched
