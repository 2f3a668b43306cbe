"""Our schema snapshot and example workflows against a real ComfyUI (session fixture `comfy_rt`).

Model files: the test runtime has none of the model files a workflow names, so ComfyUI's validate_prompt reports
'value_not_in_list' for model-file combos (unet_name, clip_name, vae_name, ...); prompt_validation_errors accepts
those, and missing upload inputs (LoadImage / LoadVideo), and nothing else. The bundled workflows are checked
strictly as well: with an empty stand-in for each model file, put where the Missing Models dialog downloads it
(models/<directory>/<name>), they validate with no error at all; their inputs are what ComfyUI ships (input/example.png,
which the harness copies into its base directory as a user's install has it).
"""
import asyncio
import json
import os

import numpy as np
import pytest
from PIL import Image

from devtools.workflows.builder import TECHNIQUES, WORKFLOWS_DIR, Workflow, build_technique
from devtools.workflows.thumbnail import read_spec
from devtools.workflows.ui_format import (
    FRONTEND_ONLY_TYPES, PACK_NODE_PREFIX, SNAPSHOT_PATH, input_spec, is_model_file_combo, is_upload_combo,
    load_schema_snapshot, node_schemas_from_comfy, snapshot_view, validate_workflow, widget_layout, workflow_to_prompt)

WORKFLOW_FILES = sorted(WORKFLOWS_DIR.glob("*.json"))
REGENERATE = "regenerate it with: python -m devtools.workflows.builder --update-schemas"


@pytest.fixture(scope="module")
def live_schemas(comfy_rt):
    import nodes  # ComfyUI's nodes.py (the booted runtime put the ComfyUI root first on sys.path)

    return node_schemas_from_comfy(nodes.NODE_CLASS_MAPPINGS, nodes.NODE_DISPLAY_NAME_MAPPINGS)


def comfy_validation(prompt):
    """(valid, error, node_errors) of ComfyUI's own validate_prompt."""
    import execution

    valid, error, _outputs, node_errors = asyncio.run(execution.validate_prompt("workflow-test", prompt, None))
    return valid, error, node_errors


def prompt_validation_errors(prompt, schemas):
    """ComfyUI's own validate_prompt on `prompt`, minus the accepted missing-model-file errors."""
    valid, error, node_errors = comfy_validation(prompt)
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


def committed_core_version(path):
    """The ComfyUI version the committed workflow was built on (its core nodes' properties.ver)."""
    return next(node["properties"]["ver"] for node in json.loads(path.read_text(encoding="utf-8"))["nodes"]
                if node["properties"].get("cnr_id") == "comfy-core")


def version_neutral(ui_json, schemas):
    """What of a workflow another ComfyUI version does not change: the prompt it queues, every node's title and
    download entries, the notes and the group titles. (Core nodes' outputs, display names and sizes do change.)"""
    return {"prompt": workflow_to_prompt(ui_json, schemas),
            "nodes": [(node["id"], node["type"], node.get("title"), node["properties"].get("models"),
                       node["widgets_values"] if node["type"] in FRONTEND_ONLY_TYPES else None)
                      for node in ui_json["nodes"]],
            "groups": [group["title"] for group in ui_json["groups"]]}


@pytest.mark.parametrize("technique", TECHNIQUES)
def test_committed_workflows_and_thumbnails_are_what_the_builder_writes(technique, live_schemas, tmp_path):
    """Byte for byte on the ComfyUI version they were built on; on the others, everything that version leaves as is."""
    import comfyui_version

    rebuild = f"rebuild them with: python -m devtools.workflows.builder --build {technique}"
    built_on = committed_core_version(next(WORKFLOWS_DIR.glob("*.json")))
    same_version = comfyui_version.__version__ == built_on
    for fresh in build_technique(technique, live_schemas, built_on, tmp_path):
        committed = WORKFLOWS_DIR / fresh.name
        assert committed.is_file(), f"{committed.name} is missing; {rebuild}"
        if fresh.suffix == ".json":
            old, new = (path.read_text(encoding="utf-8") for path in (committed, fresh))
            if same_version:
                assert old == new, f"{committed.name} is stale; {rebuild}"
            assert version_neutral(json.loads(old), live_schemas) == version_neutral(json.loads(new), live_schemas), \
                f"{committed.name} is stale; {rebuild}"
            continue
        old_spec, new_spec = read_spec(committed), read_spec(fresh)
        if not same_version:  # display names differ between versions
            old_spec["chain"], new_spec["chain"] = ([t for t, _ in spec["chain"]] for spec in (old_spec, new_spec))
        assert old_spec == new_spec, f"{committed.name} is stale; {rebuild}"
        if same_version:
            with Image.open(committed) as old, Image.open(fresh) as new:  # another Pillow build may differ slightly
                difference = np.abs(np.asarray(old, np.float32) - np.asarray(new, np.float32)).mean()
            assert difference < 0.4, f"{committed.name} differs from what thumbnail.py draws now; {rebuild}"


@repository_workflows()
def test_repository_workflow_validates_once_its_models_are_downloaded(path, live_schemas):
    """Every error ComfyUI reports for a bundled workflow goes once the files its properties.models name are in
    models/<directory>: the download entries name the file and the folder each loader reads."""
    import folder_paths

    workflow = json.loads(path.read_text(encoding="utf-8"))
    prompt = workflow_to_prompt(workflow, live_schemas)
    valid, _error, node_errors = comfy_validation(prompt)
    missing = {(entry["class_type"], problem["extra_info"]["input_name"])
               for entry in node_errors.values() for problem in entry["errors"]}
    expected = {(node["type"], slot.input_name) for node in workflow["nodes"] if node["properties"].get("models")
                for slot in widget_layout(live_schemas[node["type"]]) if slot.role == "value"
                and is_model_file_combo(slot.input_name, *input_spec(live_schemas[node["type"]], slot.input_name)[:2])}
    assert not valid and missing == expected  # without the files: exactly the loaders, nothing else

    stand_ins = []
    try:
        for node in workflow["nodes"]:
            for entry in node["properties"].get("models", []):
                folder = folder_paths.get_folder_paths(entry["directory"])[0]  # where a download goes
                os.makedirs(folder, exist_ok=True)
                stand_in = os.path.join(folder, entry["name"])
                if not os.path.exists(stand_in):
                    open(stand_in, "wb").close()
                    stand_ins.append(stand_in)
        valid, error, node_errors = comfy_validation(prompt)
        assert valid and not node_errors, (error, node_errors)
    finally:
        for stand_in in stand_ins:
            os.remove(stand_in)


def test_wan22_two_expert_workflow_caches_each_ksampler_advanced_segment(comfy_rt, live_schemas, caplog):
    """The bundled WAN 2.2 14B workflow run through the real executor on a tiny random WAN (both experts: one tiny
    WAN 2.1-layout file, which is the 14B experts' architecture, behind the two ModelSamplingSD3 nodes), its AdaCache
    nodes set to a custom codebook that always reuses 2 steps: each 10-step KSamplerAdvanced segment is one AdaCache
    run that computes its own first two and last two steps (0, 1, 4, 7, 8, 9 of 10), and the run ends in the saved
    video."""
    import logging

    from devtools.harness import tiny_nodes
    from devtools.harness.tiny_workflow import tiny_prompt

    tiny_nodes.register()
    prompt = workflow_to_prompt(json.loads((WORKFLOWS_DIR / "wan22_t2v_14b_adacache.json").read_text("utf-8")),
                                live_schemas)
    loaders = sorted(node_id for node_id, node in prompt.items() if node["class_type"] == "UNETLoader")
    assert [prompt[node_id]["inputs"]["unet_name"] for node_id in loaders] == [
        "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors", "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors"]
    for node in prompt.values():  # the low-noise expert's shift node reads the one tiny file as well
        if node["inputs"].get("model") == [loaders[1], 0]:
            node["inputs"]["model"] = [loaders[0], 0]
    del prompt[loaders[1]]
    caches = [node for node in prompt.values() if node["class_type"] == "FreeAccel_AdaCache"]
    assert len(caches) == 2 and all(node["inputs"]["preset"] == "medium_30" and node["inputs"]["moreg"]
                                    for node in caches)
    for node in caches:
        node["inputs"].update(preset="custom", custom_codebook="1000:3")
    segments = sorted((node["inputs"]["start_at_step"], node["inputs"]["end_at_step"], node["inputs"]["steps"])
                      for node in prompt.values() if node["class_type"] == "KSamplerAdvanced")
    assert segments == [(0, 10, 20), (10, 20, 20)]

    with caplog.at_level(logging.INFO):
        outputs = comfy_rt.execute(tiny_prompt(prompt, comfy_rt.base_dir))
    summaries = [record.getMessage() for record in caplog.records if record.getMessage().startswith("AdaCache: computed")]
    assert summaries == ["AdaCache: computed 6 of 10 steps (rates 1,3,3,3,3,3)"] * 2
    (saved,) = [ui for ui in outputs.values() if "images" in ui]
    assert saved["images"][0]["filename"].startswith("wan22_t2v_14b_adacache")
