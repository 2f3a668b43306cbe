"""Check and convert ComfyUI UI-format (LiteGraph 0.4) workflows against /object_info-like node schemas.

A schema entry is what ComfyUI's `GET /object_info` returns for one node (server.py node_info()): "input" with
"required"/"optional" dicts of name -> [type, options], "input_order", "output" types, "output_node", ...
Only `node_schemas_from_comfy` needs a booted ComfyUI (it is handed ComfyUI's NODE_CLASS_MAPPINGS); everything else
is plain python + json so unit tests can validate workflows against the committed snapshot of our nodes' schemas.

How a node's `widgets_values` line up with its inputs (ComfyUI frontend rules, 1.3x):
- widget inputs are the INT/FLOAT/STRING/BOOLEAN/COMBO inputs without `forceInput`, required then optional, each in
  `input_order`; linked widget inputs keep their value in `widgets_values`;
- an INT with `control_after_generate` (or, when that option is absent, an INT named seed/noise_seed) is followed by
  the hidden control value ("fixed", "randomize", ...); a COMBO with `control_after_generate` is followed by the
  control value and the control filter string;
- a COMBO with an image/video upload flag (LoadImage, LoadVideo) adds the upload button's value ("image") after the
  last required widget (the frontend appends that button as one more required input).
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

PACK_NODE_PREFIX = "FreeAccel_"
SNAPSHOT_PATH = Path(__file__).resolve().parents[2] / "tests" / "data" / "node_schemas.json"

# Nodes that exist only in the frontend: ComfyUI has no schema for them and they never reach the API prompt.
FRONTEND_ONLY_TYPES = frozenset({"Note", "MarkdownNote", "Reroute", "PrimitiveNode"})
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
# "*" is ComfyUI's Any type; MatchType inputs are checked by the frontend only (comfy_execution/validation.py).
WILDCARD_TYPES = frozenset({"*", "COMFY_MATCHTYPE_V3"})
SEED_WIDGET_NAMES = ("seed", "noise_seed")
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")
COMBO_CONTROL_VALUES = CONTROL_VALUES + ("increment-wrap",)
UPLOAD_FLAGS = ("image_upload", "video_upload", "animated_image_upload")
# Model-file combos list the files in the user's model folders, which differ between machines.
MODEL_FILE_EXTENSIONS = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin", ".gguf")
MODEL_FILE_INPUTS = frozenset({"unet_name", "ckpt_name", "vae_name", "clip_name", "lora_name", "control_net_name",
                               "style_model_name", "clip_vision_name", "model_name"})
SCHEMA_KEYS = ("input", "input_order", "output", "output_is_list", "output_name", "name", "display_name",
               "description", "category", "output_node")
SUPPORTED_MODE = 0  # 2 = muted, 4 = bypassed
# Input options our nodes set only where ComfyUI supports them (nodes/integration/compat.py): "advanced" (0.33+),
# a display hint that changes neither the widget layout nor validation.
VERSION_DEPENDENT_OPTIONS = ("advanced",)


@dataclass(frozen=True)
class WidgetSlot:
    """One position in a node's widgets_values: the input it belongs to and what it holds."""
    input_name: str
    role: str  # "value" (the input's own value), "control", "control_filter" or "upload"


# ---------------------------------------------------------------------------------------------------------------
# Schema access


def node_schemas_from_comfy(node_class_mappings, display_names=None) -> dict:
    """/object_info-like entries for every class in ComfyUI's NODE_CLASS_MAPPINGS (run inside a booted ComfyUI).

    V3 classes answer through GET_NODE_INFO_V1(); V1 classes are described the way server.py node_info() does.
    A class whose schema raises is skipped with a warning, as /object_info does.
    """
    display_names = display_names or {}
    schemas = {}
    for node_id, cls in node_class_mappings.items():
        try:
            info = cls.GET_NODE_INFO_V1() if hasattr(cls, "GET_NODE_INFO_V1") else _v1_node_info(node_id, cls)
        except Exception:  # noqa: BLE001 - one broken node must not hide all the others
            logging.warning("skipping node %s: its schema raised", node_id, exc_info=True)
            continue
        if not info.get("display_name"):
            info["display_name"] = display_names.get(node_id, node_id)
        schemas[node_id] = {key: _jsonable(info[key]) for key in SCHEMA_KEYS if info.get(key) is not None}
    return schemas


def _v1_node_info(node_id, cls) -> dict:
    inputs = cls.INPUT_TYPES()
    return {
        "input": inputs,
        "input_order": {category: list(entries) for category, entries in inputs.items()},
        "output": cls.RETURN_TYPES,
        "output_is_list": getattr(cls, "OUTPUT_IS_LIST", [False] * len(cls.RETURN_TYPES)),
        "output_name": getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES),
        "name": node_id,
        "description": getattr(cls, "DESCRIPTION", ""),
        "category": getattr(cls, "CATEGORY", "sd"),
        "output_node": getattr(cls, "OUTPUT_NODE", False) is True,
    }


def _jsonable(value):
    """The value as it comes back from a JSON round trip (tuples -> lists, enums -> their values)."""
    if isinstance(value, Enum):
        return _jsonable(value.value)
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def ordered_inputs(schema) -> list[tuple[str, str]]:
    """(input name, "required" | "optional") in the order the frontend creates them."""
    declared = schema.get("input", {})
    order = schema.get("input_order", {})
    result = []
    for category in ("required", "optional"):
        names = order.get(category) or list(declared.get(category, {}))
        result.extend((name, category) for name in names if name in declared.get(category, {}))
    return result


def input_spec(schema, name):
    """(type, options, category) of one input; type is the raw declared type (a list for V1 combos)."""
    for category in ("required", "optional"):
        entry = schema.get("input", {}).get(category, {}).get(name)
        if entry is not None:
            options = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
            return entry[0], options, category
    return None


def io_type(declared_type) -> str:
    """The socket type name: V1 combos declare their option list as the type."""
    return "COMBO" if isinstance(declared_type, list) else declared_type


def combo_options(declared_type, options) -> list:
    return declared_type if isinstance(declared_type, list) else options.get("options", [])


def is_widget(declared_type, options) -> bool:
    return io_type(declared_type) in WIDGET_TYPES and not options.get("forceInput")


def has_control_widget(name, declared_type, options) -> bool:
    control = options.get("control_after_generate")
    if io_type(declared_type) == "INT":
        return bool(name in SEED_WIDGET_NAMES if control is None else control)
    return io_type(declared_type) == "COMBO" and bool(control)


def is_upload_combo(declared_type, options) -> bool:
    return io_type(declared_type) == "COMBO" and any(options.get(flag) for flag in UPLOAD_FLAGS)


def is_model_file_combo(name, declared_type, options) -> bool:
    """A combo choosing a file from a model folder: a known loader input (VAELoader's list also holds
    "pixel_space"), or any `*_name` combo whose options are all model files (an empty list counts)."""
    if io_type(declared_type) != "COMBO" or not name.rstrip("0123456789").endswith("_name"):
        return False
    return name.rstrip("0123456789") in MODEL_FILE_INPUTS or all(
        isinstance(option, str) and option.lower().endswith(MODEL_FILE_EXTENSIONS)
        for option in combo_options(declared_type, options))


def widget_layout(schema) -> list[WidgetSlot]:
    """What each position of this node's widgets_values holds."""
    layout, upload = [], []
    for name, category in ordered_inputs(schema):
        if category == "optional":
            layout += upload  # the frontend appends the upload button as the last required input
            upload = []
        declared_type, options, _ = input_spec(schema, name)
        if not is_widget(declared_type, options):
            continue
        layout.append(WidgetSlot(name, "value"))
        if has_control_widget(name, declared_type, options):
            layout.append(WidgetSlot(name, "control"))
            if io_type(declared_type) == "COMBO":
                layout.append(WidgetSlot(name, "control_filter"))
        if is_upload_combo(declared_type, options) and not upload:
            upload = [WidgetSlot(name, "upload")]
    return layout + upload


def types_compatible(received, expected) -> bool:
    """Link type check with ComfyUI's non-strict rules (comfy_execution/validation.py validate_node_input)."""
    if received == expected:
        return True
    if isinstance(received, list):
        return expected == "COMBO"
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    received_set = {part.strip() for part in received.split(",")}
    expected_set = {part.strip() for part in expected.split(",")}
    if (received_set | expected_set) & WILDCARD_TYPES:
        return True
    return bool(received_set & expected_set)


def value_error(name, declared_type, options, value) -> str | None:
    """Why `value` is not a legal value for this widget input, or None when it is."""
    kind = io_type(declared_type)
    if kind == "COMBO":
        choices = combo_options(declared_type, options)
        if value in choices:
            return None
        if is_model_file_combo(name, declared_type, options) and isinstance(value, str) \
                and value.lower().endswith(MODEL_FILE_EXTENSIONS):
            return None
        if is_upload_combo(declared_type, options) and isinstance(value, str) and value:
            return None  # an input file from the user's input folder
        shown = choices if len(choices) <= 20 else f"a list of {len(choices)} options"
        return f"{value!r} is not one of {shown}"
    if kind == "BOOLEAN":
        return None if isinstance(value, bool) else f"{value!r} is not a boolean"
    if kind == "STRING":
        return None if isinstance(value, str) else f"{value!r} is not a string"
    if kind == "INT" and (isinstance(value, bool) or not isinstance(value, int)):
        return f"{value!r} is not an integer"
    if kind == "FLOAT" and (isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value)):
        return f"{value!r} is not a number"
    if "min" in options and value < options["min"]:
        return f"{value!r} is smaller than min {options['min']}"
    if "max" in options and value > options["max"]:
        return f"{value!r} is bigger than max {options['max']}"
    return None


def _slot_value_error(slot, declared_type, options, value) -> str | None:
    if slot.role == "value":
        return value_error(slot.input_name, declared_type, options, value)
    if slot.role == "control":
        allowed = COMBO_CONTROL_VALUES if io_type(declared_type) == "COMBO" else CONTROL_VALUES
        return None if value in allowed else f"control value {value!r} is not one of {list(allowed)}"
    return None if isinstance(value, str) else f"{slot.role} value {value!r} is not a string"


# ---------------------------------------------------------------------------------------------------------------
# Validation


def validate_workflow(ui_json, schemas, *, only_prefix=None) -> list[str]:
    """Every problem found in a UI-format 0.4 workflow, as readable messages (empty = valid).

    only_prefix: the schemas are authoritative only for node types starting with this prefix (the committed
    snapshot of our nodes). Other node types missing from `schemas` are then not checked, but their links to known
    nodes still are, using the types those nodes declare in the workflow.
    """
    if not isinstance(ui_json, dict):
        return ["workflow is not a JSON object"]
    errors = []
    if ui_json.get("version") != 0.4:
        errors.append(f"version is {ui_json.get('version')!r}, expected 0.4")
    nodes, links = ui_json.get("nodes"), ui_json.get("links")
    if not isinstance(nodes, list) or not isinstance(links, list):
        return errors + ["'nodes' and 'links' must be lists"]
    node_by_id = _index_nodes(nodes, errors)
    link_by_id = _index_links(links, errors)
    _check_counters(ui_json, node_by_id, link_by_id, errors)
    _check_groups(ui_json.get("groups", []), errors)

    def schema_of(node):
        node_type = node.get("type")
        if node_type in FRONTEND_ONLY_TYPES:
            return None
        if node_type not in schemas:
            if only_prefix is None or str(node_type).startswith(only_prefix):
                errors.append(f"{_name(node)}: unknown node type {node_type!r}")
            return None
        return schemas[node_type]

    known = {node_id: schema_of(node) for node_id, node in node_by_id.items()}
    for link in link_by_id.values():
        _check_link(link, node_by_id, known, errors)
    for node_id, node in node_by_id.items():
        _check_slots_reference_links(node, link_by_id, errors)
        if node.get("mode", SUPPORTED_MODE) != SUPPORTED_MODE:
            errors.append(f"{_name(node)}: mode {node.get('mode')!r} (muted/bypassed) is not supported")
        if known[node_id] is not None:
            _check_node_against_schema(node, known[node_id], errors)
    executable = [node_id for node_id, node in node_by_id.items() if node.get("type") not in FRONTEND_ONLY_TYPES]
    if all(known[node_id] is not None for node_id in executable) \
            and not any(known[node_id].get("output_node") for node_id in executable):
        errors.append("no output node (such as SaveImage): ComfyUI would refuse to run the workflow")
    return errors


def _name(node) -> str:
    return f"node {node.get('id')} ({node.get('type')})"


def _index_nodes(nodes, errors) -> dict:
    by_id = {}
    for node in nodes:
        node_id = node.get("id") if isinstance(node, dict) else None
        if not isinstance(node_id, int) or isinstance(node_id, bool):
            errors.append(f"node without an integer id: {node!r:.80}")
            continue
        if node_id in by_id:
            errors.append(f"duplicate node id {node_id}")
            continue
        for key, size in (("pos", 2), ("size", 2)):
            if not (isinstance(node.get(key), list) and len(node[key]) == size):
                errors.append(f"{_name(node)}: '{key}' must be a list of {size} numbers")
        by_id[node_id] = node
    return by_id


def _index_links(links, errors) -> dict:
    by_id = {}
    for link in links:
        if not (isinstance(link, list) and len(link) == 6 and all(isinstance(v, int) for v in link[:5])):
            errors.append(f"link {link!r} is not [id, origin_id, origin_slot, target_id, target_slot, type]")
            continue
        if link[0] in by_id:
            errors.append(f"duplicate link id {link[0]}")
            continue
        by_id[link[0]] = link
    return by_id


def _check_counters(ui_json, node_by_id, link_by_id, errors):
    for key, ids in (("last_node_id", node_by_id), ("last_link_id", link_by_id)):
        last = ui_json.get(key)
        if not isinstance(last, int) or (ids and last < max(ids)):
            errors.append(f"{key} is {last!r}, must be an integer >= the largest id ({max(ids, default=0)})")


def _check_groups(groups, errors):
    if not isinstance(groups, list):
        errors.append("'groups' must be a list")
        return
    for group in groups:
        if not (isinstance(group, dict) and isinstance(group.get("title"), str)
                and isinstance(group.get("bounding"), list) and len(group["bounding"]) == 4):
            errors.append(f"group {group!r:.80} needs a title and a 4-number bounding box")


def _check_link(link, node_by_id, known, errors):
    link_id, origin_id, origin_slot, target_id, target_slot, link_type = link
    origin, target = node_by_id.get(origin_id), node_by_id.get(target_id)
    if origin is None or target is None:
        errors.append(f"link {link_id}: node {origin_id if origin is None else target_id} does not exist")
        return
    outputs, inputs = origin.get("outputs") or [], target.get("inputs") or []
    if not 0 <= origin_slot < len(outputs):
        errors.append(f"link {link_id}: {_name(origin)} has no output slot {origin_slot}")
        return
    if not 0 <= target_slot < len(inputs):
        errors.append(f"link {link_id}: {_name(target)} has no input slot {target_slot}")
        return
    output, target_input = outputs[origin_slot], inputs[target_slot]
    if link_id not in (output.get("links") or []):
        errors.append(f"link {link_id}: not listed in the links of {_name(origin)} output {origin_slot}")
    if target_input.get("link") != link_id:
        errors.append(f"link {link_id}: {_name(target)} input {target_input.get('name')!r} "
                      f"points at link {target_input.get('link')!r}")
    received = output.get("type")
    if known[origin_id] is not None:
        schema_outputs = known[origin_id].get("output", [])
        if origin_slot >= len(schema_outputs):
            errors.append(f"link {link_id}: {_name(origin)} has only {len(schema_outputs)} outputs")
            return
        received = schema_outputs[origin_slot]
    expected = target_input.get("type")
    if known[target_id] is not None:
        spec = input_spec(known[target_id], target_input.get("name"))
        if spec is None:
            return  # reported as an unknown input by the node check
        expected = io_type(spec[0])
    if not types_compatible(received, expected):
        errors.append(f"link {link_id}: {_name(origin)} output {origin_slot} is {received}, but "
                      f"{_name(target)} input {target_input.get('name')!r} takes {expected}")
    if link_type not in (received, expected, output.get("type"), target_input.get("type")):
        errors.append(f"link {link_id}: type {link_type!r} matches neither end ({received} -> {expected})")


def _check_slots_reference_links(node, link_by_id, errors):
    for slot, node_input in enumerate(node.get("inputs") or []):
        link_id = node_input.get("link")
        if link_id is None:
            continue
        link = link_by_id.get(link_id)
        if link is None or (link[3], link[4]) != (node["id"], slot):
            errors.append(f"{_name(node)}: input {node_input.get('name')!r} refers to link {link_id}, "
                          f"which does not end at this input")
    for slot, output in enumerate(node.get("outputs") or []):
        for link_id in output.get("links") or []:
            link = link_by_id.get(link_id)
            if link is None or (link[1], link[2]) != (node["id"], slot):
                errors.append(f"{_name(node)}: output {slot} lists link {link_id}, "
                              f"which does not start at this output")


def _check_node_against_schema(node, schema, errors):
    name = _name(node)
    linked = set()
    seen = set()
    for node_input in node.get("inputs") or []:
        input_name = node_input.get("name")
        spec = input_spec(schema, input_name)
        if spec is None:
            errors.append(f"{name}: input {input_name!r} does not exist on this node")
            continue
        if input_name in seen:
            errors.append(f"{name}: input {input_name!r} is listed twice")
        seen.add(input_name)
        if not types_compatible(node_input.get("type"), io_type(spec[0])):
            errors.append(f"{name}: input {input_name!r} is declared {node_input.get('type')!r}, "
                          f"the node takes {io_type(spec[0])}")
        if node_input.get("link") is not None:
            linked.add(input_name)
    schema_outputs = schema.get("output", [])
    for slot, output in enumerate(node.get("outputs") or []):
        if slot >= len(schema_outputs):
            errors.append(f"{name}: output slot {slot} does not exist on this node")
        elif output.get("type") != schema_outputs[slot]:
            errors.append(f"{name}: output {slot} is declared {output.get('type')!r}, "
                          f"the node returns {schema_outputs[slot]}")
    for input_name, category in ordered_inputs(schema):
        declared_type, options, _ = input_spec(schema, input_name)
        if category == "required" and not is_widget(declared_type, options) and input_name not in linked:
            errors.append(f"{name}: required input {input_name!r} is not linked")
    _check_widget_values(node, schema, errors)


def _check_widget_values(node, schema, errors):
    name = _name(node)
    layout = widget_layout(schema)
    values = node.get("widgets_values", [])
    if not isinstance(values, list):
        errors.append(f"{name}: widgets_values must be a list")
        return
    if len(values) != len(layout):
        shown = [slot.input_name if slot.role == "value" else f"<{slot.role} of {slot.input_name}>"
                 for slot in layout]
        errors.append(f"{name}: {len(values)} widget values, expected {len(layout)}: {shown}")
        return
    for slot, value in zip(layout, values):
        declared_type, options, _ = input_spec(schema, slot.input_name)
        problem = _slot_value_error(slot, declared_type, options, value)
        if problem:
            errors.append(f"{name}: widget {slot.input_name!r}: {problem}")


# ---------------------------------------------------------------------------------------------------------------
# Conversion to the API prompt


def workflow_to_prompt(ui_json, schemas) -> dict:
    """The API-format prompt {id: {class_type, inputs, _meta}} the frontend would queue for this workflow.

    Frontend-only nodes are left out: links through Reroutes are followed to their source, and inputs fed by a
    PrimitiveNode keep the value the target widget holds (the frontend keeps both in sync). Muted or bypassed nodes
    are refused (ValueError) rather than half-emulated.
    """
    node_by_id = {node["id"]: node for node in ui_json["nodes"]}
    link_by_id = {link[0]: link for link in ui_json["links"]}
    prompt = {}
    for node_id in sorted(node_by_id):
        node = node_by_id[node_id]
        if node["type"] in FRONTEND_ONLY_TYPES:
            continue
        if node.get("mode", SUPPORTED_MODE) != SUPPORTED_MODE:
            raise ValueError(f"{_name(node)}: mode {node.get('mode')} (muted/bypassed) is not supported")
        if node["type"] not in schemas:
            raise ValueError(f"{_name(node)}: unknown node type")
        schema = schemas[node["type"]]
        layout = widget_layout(schema)
        values = node.get("widgets_values", [])
        if len(values) != len(layout):
            raise ValueError(f"{_name(node)}: {len(values)} widget values, expected {len(layout)}")
        inputs = {slot.input_name: _prompt_value(value)
                  for slot, value in zip(layout, values) if slot.role == "value"}
        for node_input in node.get("inputs") or []:
            if node_input.get("link") is None:
                continue
            source = _link_source(node_input["link"], node_by_id, link_by_id)
            if source is not None:
                inputs[node_input["name"]] = [str(source[0]), source[1]]
        prompt[str(node_id)] = {"class_type": node["type"], "inputs": inputs,
                                "_meta": {"title": node.get("title") or schema.get("display_name", node["type"])}}
    return prompt


def _prompt_value(value):
    # A list in a prompt means a link; list-valued widgets are wrapped the way the frontend does it.
    return {"__value__": value} if isinstance(value, list) else value


def _link_source(link_id, node_by_id, link_by_id):
    """(origin node id, slot) of a link after following Reroutes; None for PrimitiveNodes or a dangling Reroute."""
    while True:
        _, origin_id, origin_slot = link_by_id[link_id][:3]
        origin = node_by_id[origin_id]
        if origin["type"] == "PrimitiveNode":
            return None
        if origin["type"] != "Reroute":
            return origin_id, origin_slot
        reroute_inputs = origin.get("inputs") or []
        if not reroute_inputs or reroute_inputs[0].get("link") is None:
            return None
        link_id = reroute_inputs[0]["link"]


# ---------------------------------------------------------------------------------------------------------------
# The committed snapshot of our nodes' schemas


def snapshot_view(schemas, prefix=PACK_NODE_PREFIX) -> dict:
    """Our nodes' entries, sorted by id, with model-file combo options emptied (they list the local disk) and the
    input options only some ComfyUI versions send left out (VERSION_DEPENDENT_OPTIONS), so that one snapshot holds
    for every supported version."""
    view = {}
    for node_id in sorted(node_id for node_id in schemas if node_id.startswith(prefix)):
        entry = json.loads(json.dumps(schemas[node_id]))
        for category in ("required", "optional"):
            for name, spec in entry.get("input", {}).get(category, {}).items():
                options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                for key in VERSION_DEPENDENT_OPTIONS:
                    options.pop(key, None)
                if is_model_file_combo(name, spec[0], options):
                    if isinstance(spec[0], list):
                        spec[0] = []
                    else:
                        options["options"] = []
        view[node_id] = entry
    return view


def save_schema_snapshot(schemas, path=SNAPSHOT_PATH) -> dict:
    """Write snapshot_view(schemas) as JSON (indent 2, trailing newline); returns what was written."""
    view = snapshot_view(schemas)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(view, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return view


def load_schema_snapshot(path=SNAPSHOT_PATH) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))
