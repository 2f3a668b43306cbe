"""The nodes' inputs are generated from their settings fields: same order, rarely changed inputs advanced where
this ComfyUI supports it, prompt validation covering every field, and the input tables in docs/ up to date.

Regenerate the docs tables with: FREEACCEL_UPDATE_DOCS=1 python -m pytest tests/comfy/test_node_inputs.py
"""
import inspect
import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# node id -> (doc, settings module, settings class)
NODES = {
    "FreeAccel_AdaCache": ("docs/adacache.md", "accel_core.adacache", "AdaCacheSettings"),
    "FreeAccel_TokenPrune": ("docs/token_prune.md", "accel_core.token_prune", "PruneSettings"),
    "FreeAccel_TemporalAttnPrune": ("docs/temporal_prune.md", "accel_core.temporal_prune", "TemporalPruneSettings"),
    "FreeAccel_LocalWindowAttention": ("docs/motion_transfer.md", "accel_core.local_window", "LocalWindowSettings"),
    "FreeAccel_MotionTransferGuider": ("docs/motion_transfer.md", "accel_core.motion_transfer",
                                       "MotionTransferSettings"),
    "FreeAccel_AttentionBackend": ("docs/attention_backend.md", "accel_core.attention_backend",
                                   "AttentionBackendSettings"),
}


def _table_block(node_id):
    return re.compile(rf"(<!-- inputs: {node_id} \(generated from the settings\) -->\n)(.*?)(\n<!-- /inputs -->)",
                      re.S)


def _settings_class(comfy_rt, node_id):
    _, module, name = NODES[node_id]
    return getattr(comfy_rt.pack_module(module), name)


@pytest.mark.parametrize("node_id", NODES)
def test_inputs_follow_the_settings_fields(comfy_rt, node_id):
    settings = comfy_rt.pack_module("accel_core.settings")
    compat = comfy_rt.pack_module("nodes.integration.compat")
    cls = _settings_class(comfy_rt, node_id)
    node = comfy_rt.node_class(node_id)
    names = [name for name, *_ in settings.fields(cls)]
    schema_inputs = [item for item in node.define_schema().inputs if item.id in names]
    assert [item.id for item in schema_inputs] == names
    info = node.GET_NODE_INFO_V1()["input"]
    for name, _, default, spec in settings.fields(cls):
        assert name in info.get("optional" if spec.optional else "required", {}), name
        options = {**info.get("required", {}), **info.get("optional", {})}[name][1]
        assert options["tooltip"] == spec.tooltip and options.get("display_name") == spec.label
        assert options.get("advanced") is ((True if spec.advanced else None) if compat.ADVANCED_INPUTS else None)
        assert options["default"] == settings.ui_value(default, spec)
    validated = inspect.getfullargspec(node.validate_inputs).args  # what ComfyUI hands the validator
    assert validated == ["cls", *names]


def test_advanced_inputs_exist_from_comfyui_0_33(comfy_rt):
    compat = comfy_rt.pack_module("nodes.integration.compat")
    assert compat.ADVANCED_INPUTS == compat.at_least((0, 33, 0))


@pytest.mark.parametrize("node_id", NODES)
def test_validation_prefixes_the_node_name(comfy_rt, node_id):
    node = comfy_rt.node_class(node_id)
    settings = comfy_rt.pack_module("accel_core.settings")
    name, kind, _, spec = settings.fields(_settings_class(comfy_rt, node_id))[0]
    assert node.validate_inputs() is True
    bad = "nonsense" if settings.choices(kind, spec) else (spec.maximum or 0) + 1
    message = node.validate_inputs(**{name: bad})
    assert message.startswith(f"{node.define_schema().display_name}: ") and name in message


@pytest.mark.parametrize("node_id", NODES)
def test_docs_input_tables_are_generated_from_the_settings(comfy_rt, node_id):
    schema = comfy_rt.pack_module("nodes.integration.schema")
    doc = REPO / NODES[node_id][0]
    table = schema.input_table(comfy_rt.node_class(node_id).define_schema(), _settings_class(comfy_rt, node_id))
    text = doc.read_text()
    block = _table_block(node_id)
    assert block.search(text), f"{doc.name} has no generated input table for {node_id}"
    if os.environ.get("FREEACCEL_UPDATE_DOCS") == "1":
        doc.write_text(block.sub(lambda m: m.group(1) + table + m.group(3), text))
        text = doc.read_text()
    assert block.search(text).group(2) == table, (
        f"the input table of {node_id} in {doc.name} is stale; regenerate it with FREEACCEL_UPDATE_DOCS=1 "
        "python -m pytest tests/comfy/test_node_inputs.py")


@pytest.mark.parametrize("inputs,message", [
    ({"ratio": 0.96}, "TokenPrune (G-WPR / DSAP): ratio must be within [0, 0.95], got 0.96"),
    ({"min_tokens": 0}, "TokenPrune (G-WPR / DSAP): min_tokens must be at least 1, got 0"),
    ({"dsap": "maybe"}, "TokenPrune (G-WPR / DSAP): dsap must be one of on, off, got 'maybe'"),
])
def test_prompt_validation_reports_the_settings_check(comfy_rt, inputs, message):
    """ComfyUI skips its own range and option checks for the inputs a validator names; the settings check them."""
    import asyncio
    import execution
    widgets = {**dict(ratio=0.5, dsap="on", dsap_percent=0.3, levels="auto", min_tokens=1024, recovery="merge",
                      iterations=1, score_queries=0.0625, block_start=-1, block_end=-1), **inputs}
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "missing.safetensors", "weight_dtype": "default"}},
        "2": {"class_type": "FreeAccel_TokenPrune", "inputs": {"model": ["1", 0], **widgets}},
        "3": {"class_type": "ModelSave", "inputs": {"model": ["2", 0], "filename_prefix": "x"}},
    }
    _, _, _, node_errors = asyncio.run(execution.validate_prompt("token-prune-validation", prompt, None))
    details = [problem["details"] for problem in node_errors["2"]["errors"]]
    assert details and all(detail.endswith(f" - {message}") for detail in details)


def test_api_prompts_saved_before_the_adaptive_inputs_still_validate(comfy_rt):
    """TemporalAttnPrune's adaptive-mode inputs are optional: an API-format prompt with the F3 inputs only passes
    ComfyUI's validation (the node then runs with their defaults)."""
    import asyncio
    import execution
    f3 = dict(ratio=0.5, mode="identity", start_percent=0.1, calibration_steps=2)
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "missing.safetensors", "weight_dtype": "default"}},
        "2": {"class_type": "FreeAccel_TemporalAttnPrune", "inputs": {"model": ["1", 0], **f3}},
        "3": {"class_type": "ModelSave", "inputs": {"model": ["2", 0], "filename_prefix": "x"}},
    }
    _, _, _, node_errors = asyncio.run(execution.validate_prompt("temporal-prune-old-prompt", prompt, None))
    assert "2" not in node_errors, node_errors.get("2")
    settings = comfy_rt.pack_module("accel_core.settings")
    optional = [name for name, _, _, spec in settings.fields(comfy_rt.pack_module(
        "accel_core.temporal_prune").TemporalPruneSettings) if spec.optional]
    assert optional == ["mass_threshold", "dense_blocks", "window_frames", "window_height", "window_width",
                        "temporal_size", "rows_per_frame", "pattern_file"]
