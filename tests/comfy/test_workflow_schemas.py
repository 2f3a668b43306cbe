"""Our schema snapshot and example workflows against a real ComfyUI (session fixture `comfy_rt`).

Model files and user inputs: the test runtime has none of the model files a workflow names, nor the user's own input
files (e.g. the reference video of the motion-transfer workflow), so ComfyUI's validate_prompt reports
'value_not_in_list' for model-file combos (unet_name, clip_name, vae_name, ...) and a missing-file error for upload
inputs (LoadImage / LoadVideo). Those errors, and only those, are accepted; any other validation error fails the test.
"""
import asyncio
import json

import pytest

from devtools.workflows.builder import WORKFLOWS_DIR, Workflow
from devtools.workflows.ui_format import (
    PACK_NODE_PREFIX, SNAPSHOT_PATH, input_spec, is_model_file_combo, is_upload_combo, load_schema_snapshot,
    node_schemas_from_comfy,
    snapshot_view, validate_workflow, widget_layout, workflow_to_prompt)

WORKFLOW_FILES = sorted(WORKFLOWS_DIR.glob("*.json"))
REGENERATE = "regenerate it with: python -m devtools.workflows.builder --update-schemas"


@pytest.fixture(scope="module")
def live_schemas(comfy_rt):
    import nodes  # ComfyUI's nodes.py (the booted runtime put the ComfyUI root first on sys.path)

    return node_schemas_from_comfy(nodes.NODE_CLASS_MAPPINGS, nodes.NODE_DISPLAY_NAME_MAPPINGS)


def prompt_validation_errors(prompt, schemas):
    """ComfyUI's own validate_prompt on `prompt`, minus the accepted missing-model-file errors."""
    import execution

    valid, error, _outputs, node_errors = asyncio.run(execution.validate_prompt("workflow-test", prompt, None))
    unexpected = []
    for node_id, entry in node_errors.items():
        for problem in entry["errors"]:
            name = problem.get("extra_info", {}).get("input_name")
            spec = input_spec(schemas[entry["class_type"]], name) if name else None
            missing_model = problem["type"] == "value_not_in_list" and spec and is_model_file_combo(name, *spec[:2])
            missing_input = problem["type"] in ("value_not_in_list", "custom_validation_failed") and spec and \
                is_upload_combo(*spec[:2])
            if not (missing_model or missing_input):
                unexpected.append(f"node {node_id} ({entry['class_type']}): {problem['type']}: {problem['details']}")
    if not valid and not node_errors:  # a prompt-level failure (no outputs, unknown node ...)
        unexpected.append(f"{error['type']}: {error['message']} {error['details']}")
    return unexpected


def test_pack_nodes_carry_the_snapshot_prefix(comfy_rt):
    assert comfy_rt.node_ids and all(node_id.startswith(PACK_NODE_PREFIX) for node_id in comfy_rt.node_ids)


def test_committed_snapshot_equals_live_pack_schemas(live_schemas):
    live = snapshot_view(live_schemas)
    committed = load_schema_snapshot(SNAPSHOT_PATH) if SNAPSHOT_PATH.exists() else {}
    stale = sorted(node_id for node_id in set(live) | set(committed) if live.get(node_id) != committed.get(node_id))
    assert not stale, f"{SNAPSHOT_PATH.name} is out of date for {stale}; {REGENERATE}"
    assert json.dumps(live) == json.dumps(committed), f"{SNAPSHOT_PATH.name}: key order differs; {REGENERATE}"


def test_live_schemas_give_the_frontend_widget_layouts_of_v1_and_v3_core_nodes(live_schemas):
    def layout(node_type):
        return [(slot.input_name, slot.role) for slot in widget_layout(live_schemas[node_type])]

    assert layout("KSampler") == [("seed", "value"), ("seed", "control"), ("steps", "value"), ("cfg", "value"),
                                  ("sampler_name", "value"), ("scheduler", "value"), ("denoise", "value")]
    assert layout("LoadImage") == [("image", "value"), ("image", "upload")]
    assert layout("EmptyHunyuanLatentVideo") == [("width", "value"), ("height", "value"), ("length", "value"),
                                                 ("batch_size", "value")]  # a V3 (io.ComfyNode) core node


def test_builder_workflow_of_core_nodes_passes_comfyui_validation(live_schemas, tmp_path):
    wf = Workflow(live_schemas)
    unet = wf.add("UNETLoader", unet_name="wan2.1_t2v_1.3B_fp16.safetensors")
    clip = wf.add("CLIPLoader", clip_name="umt5_xxl_fp8_e4m3fn_scaled.safetensors", type="wan")
    vae = wf.add("VAELoader", vae_name="wan_2.1_vae.safetensors")
    positive = wf.add("CLIPTextEncode", text="a red fox running through snow")
    negative = wf.add("CLIPTextEncode", title="Negative prompt", text="blurry")
    latent = wf.add("EmptyHunyuanLatentVideo", width=480, height=320, length=17)
    sampler = wf.add("KSampler", seed=3, steps=8, cfg=5.0, sampler_name="uni_pc", scheduler="simple")
    decode = wf.add("VAEDecode")
    save = wf.add("SaveImage", filename_prefix="fox")
    wf.link(unet, "MODEL", sampler, "model")
    wf.link(clip, "CLIP", positive, "clip")
    wf.link(clip, "CLIP", negative, "clip")
    wf.link(positive, 0, sampler, "positive")
    wf.link(negative, 0, sampler, "negative")
    wf.link(latent, "LATENT", sampler, "latent_image")
    wf.link(sampler, "LATENT", decode, "samples")
    wf.link(vae, "VAE", decode, "vae")
    wf.link(decode, "IMAGE", save, "images")
    workflow = json.loads(wf.save(tmp_path / "core.json").read_text(encoding="utf-8"))
    assert validate_workflow(workflow, live_schemas) == []
    prompt = workflow_to_prompt(workflow, live_schemas)
    assert prompt_validation_errors(prompt, live_schemas) == []
    assert prompt[str(sampler.id)]["inputs"]["seed"] == 3
    # the check is not vacuous: a wrong value is reported by ComfyUI itself
    prompt[str(sampler.id)]["inputs"]["steps"] = 0
    assert prompt_validation_errors(prompt, live_schemas) == [
        f"node {sampler.id} (KSampler): value_smaller_than_min: steps"]


def repository_workflows():
    return pytest.mark.parametrize("path", WORKFLOW_FILES or [None], ids=lambda p: p.name if p else "no-workflows")


@repository_workflows()
def test_repository_workflow_validates_against_all_live_nodes(path, live_schemas):
    if path is None:
        assert not any(WORKFLOWS_DIR.glob("*.json"))
        return
    assert validate_workflow(json.loads(path.read_text(encoding="utf-8")), live_schemas) == []


@repository_workflows()
def test_repository_workflow_prompt_passes_comfyui_validation(path, live_schemas):
    if path is None:
        assert not any(WORKFLOWS_DIR.glob("*.json"))
        return
    prompt = workflow_to_prompt(json.loads(path.read_text(encoding="utf-8")), live_schemas)
    assert prompt_validation_errors(prompt, live_schemas) == []
