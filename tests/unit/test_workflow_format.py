"""UI-format workflow checks without ComfyUI: devtools.workflows.ui_format (validation, prompt conversion, snapshot) and the
devtools.workflows.builder builder, on hand-made schemas copied from ComfyUI 0.8.0's /object_info (lists shortened)."""
import copy
import json
import pytest

from devtools.workflows.builder import WORKFLOWS_DIR, Workflow
from devtools.workflows.model_files import ModelFile
from devtools.workflows.ui_format import (
    SNAPSHOT_PATH, WidgetSlot, load_schema_snapshot, save_schema_snapshot, snapshot_view, types_compatible,
    validate_workflow, widget_layout, workflow_to_prompt)

WORKFLOW_FILES = sorted(WORKFLOWS_DIR.glob("*.json"))

SCHEMAS = {
    "UNETLoader": {
        "input": {"required": {"unet_name": [[]], "weight_dtype": [["default", "fp8_e4m3fn", "fp8_e5m2"]]}},
        "input_order": {"required": ["unet_name", "weight_dtype"]},
        "output": ["MODEL"], "output_name": ["MODEL"], "name": "UNETLoader", "display_name": "Load Diffusion Model",
        "output_node": False},
    "KSampler": {
        "input": {"required": {
            "model": ["MODEL", {}],
            "seed": ["INT", {"default": 0, "min": 0, "max": 18446744073709551615, "control_after_generate": True}],
            "steps": ["INT", {"default": 20, "min": 1, "max": 10000}],
            "cfg": ["FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}],
            "sampler_name": [["euler", "euler_ancestral", "uni_pc"], {}],
            "scheduler": [["simple", "normal", "karras"], {}],
            "positive": ["CONDITIONING", {}], "negative": ["CONDITIONING", {}], "latent_image": ["LATENT", {}],
            "denoise": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}]}},
        "input_order": {"required": ["model", "seed", "steps", "cfg", "sampler_name", "scheduler", "positive",
                                     "negative", "latent_image", "denoise"]},
        "output": ["LATENT"], "output_name": ["LATENT"], "name": "KSampler", "display_name": "KSampler",
        "output_node": False},
    "VAEDecode": {
        "input": {"required": {"samples": ["LATENT", {}], "vae": ["VAE", {}]}},
        "input_order": {"required": ["samples", "vae"]},
        "output": ["IMAGE"], "output_name": ["IMAGE"], "name": "VAEDecode", "display_name": "VAE Decode",
        "output_node": False},
    "SaveImage": {
        "input": {"required": {"images": ["IMAGE", {}], "filename_prefix": ["STRING", {"default": "ComfyUI"}]},
                  "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}},
        "input_order": {"required": ["images", "filename_prefix"], "hidden": ["prompt", "extra_pnginfo"]},
        "output": [], "output_name": [], "name": "SaveImage", "display_name": "Save Image", "output_node": True},
    "LoadImageMask": {
        "input": {"required": {"image": [[], {"image_upload": True}],
                               "channel": [["alpha", "red", "green", "blue"]]}},
        "input_order": {"required": ["image", "channel"]},
        "output": ["MASK"], "output_name": ["MASK"], "name": "LoadImageMask", "display_name": "Load Image (as Mask)",
        "output_node": False},
    # V3-style entry (GET_NODE_INFO_V1 of an io.ComfyNode): "COMBO" type with options, optional inputs.
    "FreeAccel_Demo": {
        "input": {"required": {
            "model": ["MODEL", {}],
            "mode": ["COMBO", {"default": "fast", "multiselect": False, "options": ["fast", "slow"]}],
            "threshold": ["FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0}],
            "noise_seed": ["INT", {"default": 0, "min": 0, "max": 100}]},
            "optional": {
            "enabled": ["BOOLEAN", {"default": True}],
            "label": ["STRING", {"default": "", "multiline": True}],
            "lora_name": ["COMBO", {"options": []}],
            "latent": ["LATENT", {}],
            "count": ["INT", {"default": 3, "forceInput": True}]}},
        "input_order": {"required": ["model", "mode", "threshold", "noise_seed"],
                        "optional": ["enabled", "label", "lora_name", "latent", "count"]},
        "output": ["MODEL", "LATENT,IMAGE"], "output_name": ["model", "any"], "name": "FreeAccel_Demo",
        "display_name": "Demo", "output_node": False},
    "VAELoader": {
        "input": {"required": {"vae_name": [["pixel_space"]]}}, "input_order": {"required": ["vae_name"]},
        "output": ["VAE"], "output_name": ["VAE"], "name": "VAELoader", "display_name": "Load VAE",
        "output_node": False},
    "EmptyLatentImage": {
        "input": {"required": {"width": ["INT", {"default": 512, "min": 16, "max": 16384, "step": 8}],
                               "height": ["INT", {"default": 512, "min": 16, "max": 16384, "step": 8}],
                               "batch_size": ["INT", {"default": 1, "min": 1, "max": 4096}]}},
        "input_order": {"required": ["width", "height", "batch_size"]},
        "output": ["LATENT"], "output_name": ["LATENT"], "name": "EmptyLatentImage",
        "display_name": "Empty Latent Image", "output_node": False},
    "ZeroConditioning": {  # a made-up source node: no inputs, one CONDITIONING output
        "input": {"required": {}}, "input_order": {"required": []}, "output": ["CONDITIONING"],
        "output_name": ["CONDITIONING"], "name": "ZeroConditioning", "display_name": "Zero", "output_node": False},
}


def _widget(name, type_, link=None):
    return {"name": name, "type": type_, "widget": {"name": name}, "link": link}


def good_workflow():
    """UNETLoader -> KSampler -> VAEDecode -> SaveImage (+ conditioning, latent and VAE sources and a note),
    hand-written in the frontend's 0.4 layout."""
    def plain(node_id, node_type, inputs, outputs, widgets_values):
        return {"id": node_id, "type": node_type, "pos": [400 * node_id, 0], "size": [320, 100], "flags": {},
                "order": node_id - 1, "mode": 0, "inputs": inputs, "outputs": outputs,
                "properties": {"Node name for S&R": node_type}, "widgets_values": widgets_values}

    def output(type_, links):
        return {"name": type_, "type": type_, "links": links, "slot_index": 0}

    return {
        "last_node_id": 8, "last_link_id": 7,
        "nodes": [
            plain(1, "UNETLoader", [_widget("unet_name", "COMBO"), _widget("weight_dtype", "COMBO")],
                  [output("MODEL", [1])], ["wan2.1_t2v_1.3B_fp16.safetensors", "default"]),
            plain(2, "KSampler",
                  [{"name": "model", "type": "MODEL", "link": 1},
                   {"name": "positive", "type": "CONDITIONING", "link": 4},
                   {"name": "negative", "type": "CONDITIONING", "link": 5},
                   {"name": "latent_image", "type": "LATENT", "link": 6},
                   _widget("seed", "INT"), _widget("steps", "INT"), _widget("cfg", "FLOAT"),
                   _widget("sampler_name", "COMBO"), _widget("scheduler", "COMBO"), _widget("denoise", "FLOAT")],
                  [output("LATENT", [2])], [42, "fixed", 20, 6.0, "uni_pc", "simple", 1.0]),
            plain(3, "VAEDecode", [{"name": "samples", "type": "LATENT", "link": 2},
                                   {"name": "vae", "type": "VAE", "link": 7}], [output("IMAGE", [3])], []),
            plain(4, "SaveImage",
                  [{"name": "images", "type": "IMAGE", "link": 3}, _widget("filename_prefix", "STRING")], [], ["out"]),
            {"id": 5, "type": "MarkdownNote", "pos": [0, 300], "size": [400, 200], "flags": {}, "order": 4,
             "mode": 0, "inputs": [], "outputs": [], "properties": {}, "widgets_values": ["# read me"]},
            plain(6, "ZeroConditioning", [], [output("CONDITIONING", [4, 5])], []),
            plain(7, "EmptyLatentImage", [_widget("width", "INT"), _widget("height", "INT"),
                                          _widget("batch_size", "INT")], [output("LATENT", [6])], [64, 64, 1]),
            plain(8, "VAELoader", [_widget("vae_name", "COMBO")], [output("VAE", [7])], ["wan_2.1_vae.safetensors"]),
        ],
        "links": [[1, 1, 0, 2, 0, "MODEL"], [2, 2, 0, 3, 0, "LATENT"], [3, 3, 0, 4, 0, "IMAGE"],
                  [4, 6, 0, 2, 1, "CONDITIONING"], [5, 6, 0, 2, 2, "CONDITIONING"], [6, 7, 0, 2, 3, "LATENT"],
                  [7, 8, 0, 3, 1, "VAE"]],
        "groups": [{"id": 1, "title": "Sampling", "bounding": [0, 0, 800, 400], "flags": {}}],
        "config": {}, "extra": {}, "version": 0.4,
    }


def node(workflow, node_id):
    return next(n for n in workflow["nodes"] if n["id"] == node_id)


def relink(workflow, link_id, origin=None, target=None, type_=None):
    """Re-point one link, keeping both ends' bookkeeping (outputs[].links, inputs[].link) consistent."""
    link = next(link for link in workflow["links"] if link[0] == link_id)
    if origin is not None:
        node(workflow, link[1])["outputs"][link[2]]["links"].remove(link_id)
        link[1], link[2] = origin
        node(workflow, link[1])["outputs"][link[2]]["links"].append(link_id)
    if target is not None:
        node(workflow, link[3])["inputs"][link[4]]["link"] = None
        link[3], link[4] = target
        node(workflow, link[3])["inputs"][link[4]]["link"] = link_id
    if type_ is not None:
        link[5] = type_


# -- widget layout ------------------------------------------------------------------------------------------------

def test_ksampler_widget_layout_has_the_hidden_seed_control_after_seed():
    assert widget_layout(SCHEMAS["KSampler"]) == [
        WidgetSlot("seed", "value"), WidgetSlot("seed", "control"), WidgetSlot("steps", "value"),
        WidgetSlot("cfg", "value"), WidgetSlot("sampler_name", "value"), WidgetSlot("scheduler", "value"),
        WidgetSlot("denoise", "value")]


def test_layout_follows_input_order_skips_sockets_and_forced_inputs_and_treats_noise_seed_as_seed():
    layout = [(slot.input_name, slot.role) for slot in widget_layout(SCHEMAS["FreeAccel_Demo"])]
    assert layout == [("mode", "value"), ("threshold", "value"), ("noise_seed", "value"), ("noise_seed", "control"),
                      ("enabled", "value"), ("label", "value"), ("lora_name", "value")]


def test_explicit_control_after_generate_false_disables_the_seed_control_and_combo_control_adds_two_values():
    schema = {"input": {"required": {"seed": ["INT", {"control_after_generate": False}],
                                     "pick": [["a", "b"], {"control_after_generate": True}]}},
              "input_order": {"required": ["seed", "pick"]}, "output": []}
    assert [(s.input_name, s.role) for s in widget_layout(schema)] == [
        ("seed", "value"), ("pick", "value"), ("pick", "control"), ("pick", "control_filter")]


def test_upload_button_value_comes_after_the_last_required_widget():
    assert [(s.input_name, s.role) for s in widget_layout(SCHEMAS["LoadImageMask"])] == [
        ("image", "value"), ("channel", "value"), ("image", "upload")]


def test_types_compatible_follows_comfyui_rules():
    assert types_compatible("MODEL", "MODEL")
    assert not types_compatible("IMAGE", "LATENT")
    assert types_compatible("*", "LATENT") and types_compatible("LATENT", "*")
    assert types_compatible("LATENT,IMAGE", "IMAGE")
    assert types_compatible("INT", "STRING, INT")
    assert not types_compatible("INT,FLOAT", "STRING")
    assert types_compatible("COMFY_MATCHTYPE_V3", "IMAGE")
    assert types_compatible(["a", "b"], "COMBO")


# -- validate_workflow ---------------------------------------------------------------------------------------------

def test_good_workflow_validates():
    assert validate_workflow(good_workflow(), SCHEMAS) == []


def test_unknown_node_type():
    wf = good_workflow()
    node(wf, 3)["type"] = "VAEDecodeTiledX"
    assert validate_workflow(wf, SCHEMAS) == ["node 3 (VAEDecodeTiledX): unknown node type 'VAEDecodeTiledX'"]


def test_link_type_mismatch():
    wf = good_workflow()
    relink(wf, 3, origin=(2, 0))  # KSampler LATENT -> SaveImage images (IMAGE)
    assert validate_workflow(wf, SCHEMAS) == [
        "link 3: node 2 (KSampler) output 0 is LATENT, but node 4 (SaveImage) input 'images' takes IMAGE"]


def test_link_type_field_must_match_an_end():
    wf = good_workflow()
    relink(wf, 1, type_="CLIP")
    assert validate_workflow(wf, SCHEMAS) == ["link 1: type 'CLIP' matches neither end (MODEL -> MODEL)"]


def test_illegal_combo_value():
    wf = good_workflow()
    node(wf, 2)["widgets_values"][4] = "dpmpp_9m"
    assert validate_workflow(wf, SCHEMAS) == [
        "node 2 (KSampler): widget 'sampler_name': 'dpmpp_9m' is not one of ['euler', 'euler_ancestral', 'uni_pc']"]


@pytest.mark.parametrize("index, value, message", [
    (2, 0, "widget 'steps': 0 is smaller than min 1"),
    (2, 10001, "widget 'steps': 10001 is bigger than max 10000"),
    (2, 20.5, "widget 'steps': 20.5 is not an integer"),
    (2, True, "widget 'steps': True is not an integer"),
    (6, 1.5, "widget 'denoise': 1.5 is bigger than max 1.0"),
    (6, "1", "widget 'denoise': '1' is not a number"),
    (1, "sometimes", "widget 'seed': control value 'sometimes' is not one of "
                     "['fixed', 'increment', 'decrement', 'randomize']"),
])
def test_out_of_range_or_mistyped_values(index, value, message):
    wf = good_workflow()
    node(wf, 2)["widgets_values"][index] = value
    assert validate_workflow(wf, SCHEMAS) == [f"node 2 (KSampler): {message}"]


def test_string_and_boolean_values_must_have_their_type():
    wf = good_workflow()
    node(wf, 4)["widgets_values"] = [7]
    assert validate_workflow(wf, SCHEMAS) == ["node 4 (SaveImage): widget 'filename_prefix': 7 is not a string"]


def test_missing_required_input():
    wf = good_workflow()
    wf["links"] = [link for link in wf["links"] if link[0] != 1]
    node(wf, 1)["outputs"][0]["links"] = []
    node(wf, 2)["inputs"][0]["link"] = None
    assert validate_workflow(wf, SCHEMAS) == ["node 2 (KSampler): required input 'model' is not linked"]


def test_wrong_widget_count_names_the_expected_values():
    wf = good_workflow()
    del node(wf, 2)["widgets_values"][1]  # the "fixed" control value forgotten
    assert validate_workflow(wf, SCHEMAS) == [
        "node 2 (KSampler): 6 widget values, expected 7: ['seed', '<control of seed>', 'steps', 'cfg', "
        "'sampler_name', 'scheduler', 'denoise']"]


def test_model_file_combo_accepts_any_model_file_name_but_not_other_strings():
    wf = good_workflow()
    for name in ("model.sft", "sub/dir/model.gguf", "model.ckpt", "model.pt"):
        node(wf, 1)["widgets_values"][0] = name
        assert validate_workflow(wf, SCHEMAS) == []
    node(wf, 1)["widgets_values"][0] = "model.txt"
    assert validate_workflow(wf, SCHEMAS) == ["node 1 (UNETLoader): widget 'unet_name': 'model.txt' is not one of []"]


def test_upload_combo_accepts_input_file_names_and_checks_the_upload_slot():
    wf = {"last_node_id": 2, "last_link_id": 0, "version": 0.4, "links": [], "groups": [], "nodes": [
        {"id": 1, "type": "LoadImageMask", "pos": [0, 0], "size": [1, 1], "mode": 0,
         "outputs": [{"name": "MASK", "type": "MASK", "links": []}], "widgets_values": ["me.png", "red", "image"]},
        {"id": 2, "type": "SaveImage", "pos": [0, 0], "size": [1, 1], "mode": 0, "inputs": [], "widgets_values": []}]}
    assert validate_workflow(wf, SCHEMAS) == [
        "node 2 (SaveImage): required input 'images' is not linked",
        "node 2 (SaveImage): 0 widget values, expected 1: ['filename_prefix']"]
    node(wf, 1)["widgets_values"] = ["", "red", None]
    assert validate_workflow(wf, SCHEMAS)[:2] == [
        "node 1 (LoadImageMask): widget 'image': '' is not one of []",
        "node 1 (LoadImageMask): widget 'image': upload value None is not a string"]


def test_link_bookkeeping_must_agree_on_both_ends():
    wf = good_workflow()
    node(wf, 3)["inputs"][0]["link"] = 1
    node(wf, 1)["outputs"][0]["links"] = [1, 9]
    errors = validate_workflow(wf, SCHEMAS)
    assert "link 2: node 3 (VAEDecode) input 'samples' points at link 1" in errors
    assert "node 3 (VAEDecode): input 'samples' refers to link 1, which does not end at this input" in errors
    assert "node 1 (UNETLoader): output 0 lists link 9, which does not start at this output" in errors


def test_link_to_missing_slot_or_node():
    wf = good_workflow()
    wf["links"][0][2] = 3
    wf["links"][2][3] = 99
    errors = validate_workflow(wf, SCHEMAS)
    assert "link 1: node 1 (UNETLoader) has no output slot 3" in errors
    assert "link 3: node 99 does not exist" in errors


def test_header_errors():
    wf = good_workflow()
    wf["version"] = 1
    wf["last_link_id"] = 2
    node(wf, 4)["mode"] = 4
    assert validate_workflow(wf, SCHEMAS) == [
        "version is 1, expected 0.4",
        "last_link_id is 2, must be an integer >= the largest id (7)",
        "node 4 (SaveImage): mode 4 (muted/bypassed) is not supported"]


def test_a_workflow_needs_an_output_node():
    wf = good_workflow()
    node(wf, 4)["type"] = "PreviewAny"
    assert validate_workflow(wf, dict(SCHEMAS, PreviewAny=dict(SCHEMAS["SaveImage"], output_node=False))) == [
        "no output node (such as SaveImage): ComfyUI would refuse to run the workflow"]


def test_unknown_input_name_and_wrong_declared_output_type():
    wf = good_workflow()
    node(wf, 4)["inputs"].append({"name": "quality", "type": "INT", "link": None})
    node(wf, 3)["outputs"][0]["type"] = "MASK"
    assert validate_workflow(wf, SCHEMAS) == [
        "node 3 (VAEDecode): output 0 is declared 'MASK', the node returns IMAGE",
        "node 4 (SaveImage): input 'quality' does not exist on this node"]


def test_v3_node_with_optional_inputs_and_upload_combo():
    wf = {
        "last_node_id": 3, "last_link_id": 2, "version": 0.4, "groups": [], "config": {}, "extra": {},
        "nodes": [
            {"id": 1, "type": "UNETLoader", "pos": [0, 0], "size": [1, 1], "mode": 0,
             "outputs": [{"name": "MODEL", "type": "MODEL", "links": [1]}], "widgets_values": ["a.safetensors",
                                                                                            "default"]},
            {"id": 2, "type": "FreeAccel_Demo", "pos": [0, 0], "size": [1, 1], "mode": 0,
             "inputs": [{"name": "model", "type": "MODEL", "link": 1}, {"name": "latent", "type": "LATENT",
                                                                         "link": None}],
             "outputs": [{"name": "model", "type": "MODEL", "links": []},
                         {"name": "any", "type": "LATENT,IMAGE", "links": [2]}],
             "widgets_values": ["slow", 0.25, 7, "fixed", False, "text", "style.safetensors"]},
            {"id": 3, "type": "SaveImage", "pos": [0, 0], "size": [1, 1], "mode": 0,
             "inputs": [{"name": "images", "type": "IMAGE", "link": 2}], "widgets_values": ["x"]},
        ],
        "links": [[1, 1, 0, 2, 0, "MODEL"], [2, 2, 1, 3, 0, "IMAGE"]],
    }
    assert validate_workflow(wf, SCHEMAS) == []
    node(wf, 2)["widgets_values"][4] = 1
    node(wf, 2)["widgets_values"][0] = "medium"
    assert validate_workflow(wf, SCHEMAS) == [
        "node 2 (FreeAccel_Demo): widget 'mode': 'medium' is not one of ['fast', 'slow']",
        "node 2 (FreeAccel_Demo): widget 'enabled': 1 is not a boolean"]


def test_only_prefix_skips_unknown_core_nodes_but_checks_ours_and_links_into_ours():
    ours_only = {"FreeAccel_Demo": SCHEMAS["FreeAccel_Demo"]}
    wf = {
        "last_node_id": 2, "last_link_id": 1, "version": 0.4, "groups": [], "config": {}, "extra": {},
        "nodes": [
            {"id": 1, "type": "CheckpointLoaderSimple", "pos": [0, 0], "size": [1, 1], "mode": 0,
             "outputs": [{"name": "MODEL", "type": "MODEL", "links": [1]}], "widgets_values": ["anything"]},
            {"id": 2, "type": "FreeAccel_Demo", "pos": [0, 0], "size": [1, 1], "mode": 0,
             "inputs": [{"name": "model", "type": "MODEL", "link": 1}],
             "outputs": [], "widgets_values": ["fast", 0.5, 0, "fixed", True, "", "l.safetensors"]},
        ],
        "links": [[1, 1, 0, 2, 0, "MODEL"]],
    }
    assert validate_workflow(wf, ours_only, only_prefix="FreeAccel_") == []
    assert validate_workflow(wf, ours_only) == [
        "node 1 (CheckpointLoaderSimple): unknown node type 'CheckpointLoaderSimple'"]
    node(wf, 1)["outputs"][0]["type"] = "CLIP"
    wf["links"][0][5] = "CLIP"
    assert validate_workflow(wf, ours_only, only_prefix="FreeAccel_") == [
        "link 1: node 1 (CheckpointLoaderSimple) output 0 is CLIP, but node 2 (FreeAccel_Demo) input 'model' "
        "takes MODEL"]
    node(wf, 1)["outputs"][0]["type"] = wf["links"][0][5] = "MODEL"
    node(wf, 2)["type"] = "FreeAccel_Typo"
    assert validate_workflow(wf, ours_only, only_prefix="FreeAccel_") == [
        "node 2 (FreeAccel_Typo): unknown node type 'FreeAccel_Typo'"]


# -- workflow_to_prompt ----------------------------------------------------------------------------------------------

def test_prompt_maps_widgets_by_name_skips_the_seed_control_and_links_to_id_slot_pairs():
    prompt = workflow_to_prompt(good_workflow(), SCHEMAS)
    assert list(prompt) == ["1", "2", "3", "4", "6", "7", "8"]  # the MarkdownNote is frontend-only
    assert prompt["2"] == {
        "class_type": "KSampler",
        "inputs": {"seed": 42, "steps": 20, "cfg": 6.0, "sampler_name": "uni_pc", "scheduler": "simple",
                   "denoise": 1.0, "model": ["1", 0], "positive": ["6", 0], "negative": ["6", 0],
                   "latent_image": ["7", 0]},
        "_meta": {"title": "KSampler"}}
    assert prompt["1"]["inputs"] == {"unet_name": "wan2.1_t2v_1.3B_fp16.safetensors", "weight_dtype": "default"}
    assert prompt["1"]["_meta"] == {"title": "Load Diffusion Model"}
    assert prompt["4"]["inputs"] == {"filename_prefix": "out", "images": ["3", 0]}


def test_prompt_follows_reroutes_and_keeps_widget_values_fed_by_primitive_nodes():
    wf = good_workflow()
    wf["nodes"] += [
        {"id": 9, "type": "Reroute", "pos": [0, 0], "size": [75, 26], "mode": 0,
         "inputs": [{"name": "", "type": "*", "link": 1}],
         "outputs": [{"name": "", "type": "MODEL", "links": [8]}], "properties": {}},
        {"id": 10, "type": "PrimitiveNode", "pos": [0, 0], "size": [200, 80], "mode": 0,
         "outputs": [{"name": "INT", "type": "INT", "links": [9], "widget": {"name": "steps"}}],
         "widgets_values": [20, "fixed"]},
    ]
    relink(wf, 1, target=(9, 0))
    wf["links"] += [[8, 9, 0, 2, 0, "MODEL"], [9, 10, 0, 2, 5, "INT"]]
    node(wf, 2)["inputs"][0]["link"] = 8
    node(wf, 2)["inputs"][5]["link"] = 9
    node(wf, 2)["title"] = "Sampler"
    wf["last_node_id"], wf["last_link_id"] = 10, 9
    assert validate_workflow(wf, SCHEMAS) == []
    prompt = workflow_to_prompt(wf, SCHEMAS)
    assert sorted(prompt) == ["1", "2", "3", "4", "6", "7", "8"]
    assert prompt["2"]["inputs"]["model"] == ["1", 0]
    assert prompt["2"]["inputs"]["steps"] == 20
    assert prompt["2"]["_meta"] == {"title": "Sampler"}


def test_prompt_wraps_list_values_and_refuses_muted_nodes_and_bad_widget_counts():
    schemas = {"Pick": {"input": {"required": {"tags": ["COMBO", {"options": ["a", "b"], "multi_select": True}]}},
                        "input_order": {"required": ["tags"]}, "output": []}}
    wf = {"version": 0.4, "links": [], "nodes": [{"id": 1, "type": "Pick", "mode": 0, "widgets_values": [["a"]]}]}
    assert workflow_to_prompt(wf, schemas)["1"]["inputs"] == {"tags": {"__value__": ["a"]}}
    wf["nodes"][0]["mode"] = 2
    with pytest.raises(ValueError, match=r"node 1 \(Pick\): mode 2 \(muted/bypassed\) is not supported"):
        workflow_to_prompt(wf, schemas)
    wf["nodes"][0].update(mode=0, widgets_values=[])
    with pytest.raises(ValueError, match="0 widget values, expected 1"):
        workflow_to_prompt(wf, schemas)


# -- builder -------------------------------------------------------------------------------------------------------



DEMO_MODEL_FILES = {
    "wan.safetensors": ModelFile("diffusion_models", "https://example.org/wan.safetensors"),
    "style.safetensors": ModelFile("loras", "https://example.org/style.safetensors"),
    "wan_2.1_vae.safetensors": ModelFile("vae", "https://example.org/wan_2.1_vae.safetensors"),
}


def build_demo():
    """Note | UNETLoader -> FreeAccel_Demo -> KSampler -> VAEDecode -> SaveImage, plus the sampler's other inputs."""
    wf = Workflow(SCHEMAS, pack_info=("freeaccel", "9.9.9"), model_files=DEMO_MODEL_FILES)
    handles = {"note": wf.note("Run me", title="Notes")}
    handles["unet"] = wf.add("UNETLoader", unet_name="wan.safetensors")
    handles["demo"] = wf.add("FreeAccel_Demo", mode="slow", lora_name="style.safetensors")
    handles["cond"] = wf.add("ZeroConditioning")
    handles["latent"] = wf.add("EmptyLatentImage", width=64)
    handles["sampler"] = wf.add("KSampler", seed=7, steps=4, sampler_name="euler")
    handles["vae"] = wf.add("VAELoader", vae_name="wan_2.1_vae.safetensors")
    handles["decode"] = wf.add("VAEDecode")
    handles["save"] = wf.add("SaveImage", title="Save")
    wf.link(handles["unet"], "MODEL", handles["demo"], "model")
    wf.link(handles["demo"], "model", handles["sampler"], "model")
    wf.link(handles["cond"], 0, handles["sampler"], "positive")
    wf.link(handles["cond"], "CONDITIONING", handles["sampler"], "negative")
    wf.link(handles["latent"], "LATENT", handles["sampler"], "latent_image")
    wf.link(handles["sampler"], 0, handles["decode"], "samples")
    wf.link(handles["vae"], "VAE", handles["decode"], "vae")
    wf.link(handles["decode"], "IMAGE", handles["save"], "images")
    return wf, handles


def test_builder_fills_defaults_fixes_seeds_and_marks_core_and_pack_nodes():
    wf, h = build_demo()
    ui = wf.to_ui()
    assert validate_workflow(ui, SCHEMAS) == []
    assert (ui["version"], ui["last_node_id"], ui["last_link_id"]) == (0.4, 9, 8)
    nodes = {n["id"]: n for n in ui["nodes"]}
    sampler, demo = nodes[h["sampler"].id], nodes[h["demo"].id]
    assert sampler["widgets_values"] == [7, "fixed", 4, 8.0, "euler", "simple", 1.0]
    assert demo["widgets_values"] == ["slow", 0.5, 0, "fixed", True, "", "style.safetensors"]
    assert nodes[h["latent"].id]["widgets_values"] == [64, 512, 1]
    assert sampler["properties"] == {"Node name for S&R": "KSampler", "cnr_id": "comfy-core", "ver": "0.8.0"}
    assert demo["properties"] == {"Node name for S&R": "FreeAccel_Demo", "cnr_id": "freeaccel", "ver": "9.9.9",
                                  "models": [DEMO_MODEL_FILES["style.safetensors"].entry("style.safetensors")]}
    assert nodes[h["save"].id]["title"] == "Save" and "title" not in sampler
    assert nodes[h["note"].id]["type"] == "MarkdownNote" and nodes[h["note"].id]["widgets_values"] == ["Run me"]


def test_builder_lists_sockets_then_widget_inputs_and_links_point_at_those_slots():
    wf, h = build_demo()
    ui = wf.to_ui()
    sampler = next(n for n in ui["nodes"] if n["id"] == h["sampler"].id)
    assert [(i["name"], i["type"], "widget" in i) for i in sampler["inputs"]] == [
        ("model", "MODEL", False), ("positive", "CONDITIONING", False), ("negative", "CONDITIONING", False),
        ("latent_image", "LATENT", False), ("seed", "INT", True), ("steps", "INT", True), ("cfg", "FLOAT", True),
        ("sampler_name", "COMBO", True), ("scheduler", "COMBO", True), ("denoise", "FLOAT", True)]
    assert [link for link in ui["links"] if link[3] == h["sampler"].id] == [
        [2, h["demo"].id, 0, h["sampler"].id, 0, "MODEL"],
        [3, h["cond"].id, 0, h["sampler"].id, 1, "CONDITIONING"],
        [4, h["cond"].id, 0, h["sampler"].id, 2, "CONDITIONING"],
        [5, h["latent"].id, 0, h["sampler"].id, 3, "LATENT"]]
    cond = next(n for n in ui["nodes"] if n["id"] == h["cond"].id)
    assert cond["outputs"] == [{"name": "CONDITIONING", "type": "CONDITIONING", "links": [3, 4], "slot_index": 0}]


def test_builder_layout_runs_left_to_right_in_dependency_order():
    wf, h = build_demo()
    ui = wf.to_ui()
    nodes = {n["id"]: n for n in ui["nodes"]}
    for link in ui["links"]:
        origin, target = nodes[link[1]], nodes[link[3]]
        assert origin["order"] < target["order"]
        assert origin["pos"][0] + origin["size"][0] < target["pos"][0]
    assert sorted(n["order"] for n in ui["nodes"]) == list(range(len(ui["nodes"])))
    note = nodes[h["note"].id]
    assert all(note["pos"][0] + note["size"][0] < n["pos"][0] for n in ui["nodes"] if n is not note)
    chain = [h[k].id for k in ("unet", "demo", "sampler", "decode", "save")]
    xs = [nodes[node_id]["pos"][0] for node_id in chain]
    assert xs == sorted(set(xs))
    # nodes sharing a column do not overlap
    by_column = {}
    for n in ui["nodes"]:
        by_column.setdefault(n["pos"][0], []).append(n)
    for members in by_column.values():
        members.sort(key=lambda n: n["pos"][1])
        for upper, lower in zip(members, members[1:]):
            assert upper["pos"][1] + upper["size"][1] < lower["pos"][1]


def test_builder_groups_and_model_links():
    wf, h = build_demo()
    wf.group("Models", [h["unet"], h["vae"]])
    ui = wf.to_ui()
    unet = next(n for n in ui["nodes"] if n["id"] == h["unet"].id)
    assert unet["properties"]["models"] == [
        {"name": "wan.safetensors", "url": "https://example.org/wan.safetensors", "directory": "diffusion_models"}]
    (group,) = ui["groups"]
    left, top, width, height = group["bounding"]
    for member in (h["unet"], h["vae"]):
        n = next(n for n in ui["nodes"] if n["id"] == member.id)
        assert left < n["pos"][0] and n["pos"][0] + n["size"][0] < left + width
        assert top < n["pos"][1] and n["pos"][1] + n["size"][1] < top + height
    assert validate_workflow(ui, SCHEMAS) == []


def test_builder_save_is_deterministic_json_with_trailing_newline(tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    build_demo()[0].save(first)
    wf, _ = build_demo()
    wf.save(second)
    text = first.read_text(encoding="utf-8")
    assert text == second.read_text(encoding="utf-8")
    assert text.endswith("}\n") and text.startswith('{\n  "last_node_id": 9,')
    assert json.loads(text) == wf.to_ui()
    prompt = workflow_to_prompt(json.loads(text), SCHEMAS)
    assert prompt["6"]["inputs"] == {"seed": 7, "steps": 4, "cfg": 8.0, "sampler_name": "euler",
                                     "scheduler": "simple", "denoise": 1.0, "model": ["3", 0],
                                     "positive": ["4", 0], "negative": ["4", 0], "latent_image": ["5", 0]}


def test_builder_refuses_an_incomplete_graph():
    wf = Workflow(SCHEMAS, pack_info=("freeaccel", "0"))
    wf.add("VAEDecode")
    with pytest.raises(ValueError, match=r"node 1 \(VAEDecode\): required input 'samples' is not linked"):
        wf.to_ui()


def test_builder_argument_errors():
    wf = Workflow(SCHEMAS, pack_info=("freeaccel", "0"), model_files=DEMO_MODEL_FILES)
    with pytest.raises(ValueError, match=r"KSampler has no widget \['stepz'\]; its widgets are \['seed', 'steps'"):
        wf.add("KSampler", stepz=3)
    with pytest.raises(ValueError, match="unknown node type 'KSamplr'"):
        wf.add("KSamplr")
    with pytest.raises(ValueError, match="combo 'unet_name' lists files from the local disk"):
        wf.add("UNETLoader")
    with pytest.raises(ValueError, match=r"UNETLoader unet_name='mystery.safetensors': no download source known"):
        wf.add("UNETLoader", unet_name="mystery.safetensors")
    assert wf.add("VAELoader", vae_name="pixel_space").id == 1  # a choice that is not a file needs no source
    demo = wf.add("FreeAccel_Demo", lora_name="style.safetensors")
    save = wf.add("SaveImage")
    with pytest.raises(ValueError, match="FreeAccel_Demo has no single output named or typed 'IMAGE'"):
        wf.link(demo, "IMAGE", save, "images")
    with pytest.raises(ValueError, match="SaveImage has no input 'image'"):
        wf.link(demo, "any", save, "image")
    wf.link(demo, "any", save, "images")
    with pytest.raises(ValueError, match=r"SaveImage \(node 3\) input 'images' is already linked"):
        wf.link(demo, "any", save, "images")
    with pytest.raises(ValueError, match="notes have no sockets"):
        wf.link(demo, "model", wf.note("text"), "model")


# -- snapshot and the repository's workflows -----------------------------------------------------------------------

def test_snapshot_keeps_only_our_nodes_empties_model_file_options_and_drops_version_dependent_ones(tmp_path):
    schemas = copy.deepcopy(SCHEMAS)
    schemas["FreeAccel_Demo"]["input"]["optional"]["lora_name"][1]["options"] = ["mine.safetensors"]
    schemas["FreeAccel_Demo"]["input"]["optional"]["label"][1]["advanced"] = True  # only ComfyUI 0.33+ sends it
    path = tmp_path / "node_schemas.json"
    written = save_schema_snapshot(schemas, path)
    assert list(written) == ["FreeAccel_Demo"]
    assert written["FreeAccel_Demo"]["input"]["optional"]["lora_name"] == ["COMBO", {"options": []}]
    assert written["FreeAccel_Demo"]["input"]["required"] == SCHEMAS["FreeAccel_Demo"]["input"]["required"]
    assert written["FreeAccel_Demo"]["input"]["optional"]["label"] == SCHEMAS["FreeAccel_Demo"]["input"]["optional"][
        "label"]
    assert load_schema_snapshot(path) == written == snapshot_view(schemas)
    assert path.read_text(encoding="utf-8").endswith("}\n")


def test_committed_snapshot_holds_only_pack_nodes():
    snapshot = load_schema_snapshot(SNAPSHOT_PATH)
    assert all(node_id.startswith("FreeAccel_") for node_id in snapshot)
    assert snapshot == snapshot_view(snapshot)


def test_workflows_folder_exists():
    assert WORKFLOWS_DIR.is_dir()


@pytest.mark.parametrize("path", WORKFLOW_FILES or [None], ids=lambda p: p.name if p else "no-workflows-yet")
def test_repository_workflow_validates_against_snapshot(path):
    if path is None:
        assert not any(WORKFLOWS_DIR.glob("*.json"))
        return
    workflow = json.loads(path.read_text(encoding="utf-8"))
    assert validate_workflow(workflow, load_schema_snapshot(SNAPSHOT_PATH), only_prefix="FreeAccel_") == []
