"""Author UI-format (LiteGraph 0.4) example workflows from a compact Python description.

    wf = Workflow(schemas)                      # schemas: node_schemas_from_comfy(...) of a booted ComfyUI
    unet = wf.add("UNETLoader", unet_name="wan2.1_t2v_1.3B_fp16.safetensors")
    sampler = wf.add("KSampler", seed=42, steps=20)
    wf.link(unet, "MODEL", sampler, "model")    # output by name, type or index; input by name
    wf.save("workflows/example.json")

Widget values left out take the schema default; seed-like widgets get the control value "fixed" so the example is
reproducible. Nodes are laid out left to right in dependency order. to_ui() refuses a graph that validate_workflow
would reject.

Every model-file widget value gets its download entry (properties.models: name, url, directory) from
model_files.OFFICIAL_MODEL_FILES; a file without one is refused, so the frontend can offer every missing model.

CLI, from the pack folder (boots ComfyUI through devtools.harness.comfy_env; ComfyUI from --comfyui, $COMFYUI_PATH
or the enclosing checkout; --build into workflows/ needs ComfyUI BUILT_ON, 0.3.75):
    python -m devtools.workflows.builder --update-schemas   rewrite tests/data/node_schemas.json from the live nodes
    python -m devtools.workflows.builder --build TECHNIQUE  write workflows/<name>.json and its thumbnail <name>.jpg
                                                            for each Example in the WORKFLOWS of
                                                            devtools/workflows/TECHNIQUE.py ({file name: Example})

The examples' texts (titles, descriptions, notes) are data, in examples.json beside this module; each technique
module holds the graphs and pairs them with its texts through examples().
"""
from __future__ import annotations

import argparse
import importlib
import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .model_files import OFFICIAL_MODEL_FILES
from .thumbnail import save_thumbnail, thumbnail_spec
from .ui_format import (
    MODEL_FILE_EXTENSIONS, PACK_NODE_PREFIX, SNAPSHOT_PATH, has_control_widget, input_spec, io_type,
    is_model_file_combo, is_widget, node_schemas_from_comfy, ordered_inputs, save_schema_snapshot, validate_workflow,
    widget_layout, combo_options)

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS_DIR = REPO_ROOT / "workflows"
EXAMPLE_TEXTS = Path(__file__).with_name("examples.json")
TECHNIQUES = ("adacache", "temporal_prune", "token_prune", "motion_transfer")  # modules defining WORKFLOWS
# The bundled workflows are built on the oldest supported ComfyUI: newer versions load what it writes, not the reverse
# (0.33's save nodes declare an IMAGE output that 0.3.75's do not have).
BUILT_ON = "0.3.75"
CORE_CNR_ID = "comfy-core"
NOTE_TYPE = "MarkdownNote"

# Layout geometry (canvas units); the frontend uses the saved sizes as they are.
NODE_WIDTH = 320
WIDE_NODE_WIDTH = 420  # nodes with a multiline text box
NOTE_SIZE = (420, 240)
SLOT_HEIGHT = 22
WIDGET_HEIGHT = 26
MULTILINE_HEIGHT = 110
COLUMN_GAP = 80
ROW_GAP = 70  # includes the node's title bar, which is not part of its size
ORIGIN = (50, 50)
GROUP_COLOR = "#3f789e"


@dataclass(frozen=True)
class NodeHandle:
    id: int
    type: str


@dataclass
class _Node:
    handle: NodeHandle
    title: str | None
    widget_values: dict
    input_links: dict = field(default_factory=dict)  # input name -> link id
    output_links: dict = field(default_factory=dict)  # output slot -> [link ids]
    models: list = field(default_factory=list)  # properties.models entries


def pack_project_info(repo_root=REPO_ROOT) -> tuple[str, str]:
    """(registry id, version) of the pack from pyproject.toml's [project] table (no tomllib on Python 3.10)."""
    text = (Path(repo_root) / "pyproject.toml").read_text(encoding="utf-8")
    project = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S).group(1)
    name = re.search(r'^name\s*=\s*"([^"]+)"', project, re.M).group(1)
    version = re.search(r'^version\s*=\s*"([^"]+)"', project, re.M).group(1)
    return name, version


@dataclass(frozen=True)
class Example:
    """One example workflow: the title and one-line description the template card and the workflow's note show,
    the note's explanation, and the function that adds the graph to a Workflow."""
    title: str
    description: str
    note: str
    build: Callable


def examples(technique, builds, **fields) -> dict[str, Example]:
    """A technique module's WORKFLOWS: {file name: Example} with the texts of EXAMPLE_TEXTS[technique] and the
    graphs of ``builds`` ({file name: build function}). The technique's note is a template: each workflow's
    ``note_extra`` fills its {extra}; ``fields`` fill the other {name}s of the note and the descriptions."""
    texts = json.loads(EXAMPLE_TEXTS.read_text(encoding="utf-8"))[technique]
    if set(texts["workflows"]) != set(builds):
        raise ValueError(f"{technique}: {EXAMPLE_TEXTS.name} has texts for {sorted(texts['workflows'])}, "
                         f"the module builds {sorted(builds)}")
    workflows = {}
    for name, text in texts["workflows"].items():
        note_fields = dict(fields, extra=text["note_extra"]) if "note_extra" in text else fields
        workflows[name] = Example(title=text["title"], description=text["description"].format(**fields),
                                  note=texts["note"].format(**note_fields), build=builds[name])
    return workflows


def wan21_loaders(wf):
    """UNETLoader, CLIPLoader and VAELoader of WAN 2.1 T2V 1.3B with ComfyUI's repackaged file names; returns the
    three handles."""
    unet = wf.add("UNETLoader", unet_name="wan2.1_t2v_1.3B_fp16.safetensors")
    clip = wf.add("CLIPLoader", clip_name="umt5_xxl_fp8_e4m3fn_scaled.safetensors", type="wan")
    vae = wf.add("VAELoader", vae_name="wan_2.1_vae.safetensors")
    return unet, clip, vae


def freeaccel_patch(wf, model, node_type, **widgets):
    """One of our model-patch nodes, fed the MODEL of ``model`` and boxed in the FreeAccel group; returns its
    handle."""
    patch = wf.add(node_type, **widgets)
    wf.link(model, "MODEL", patch, "model")
    wf.group("FreeAccel", [patch])
    return patch


def wan21_text_to_video_example(wf, save_type, filename_prefix, node_type, **widgets):
    """The WAN 2.1 T2V example around one of our model-patch nodes (``node_type`` with ``widgets``): loaders, the fox
    prompt pair, ModelSamplingSD3 shift 8, the patch, 33 frames of 832x480 sampled in 30 uni_pc steps at cfg 6, and
    ``save_type`` at 16 fps."""
    unet, clip, vae = wan21_loaders(wf)
    positive = wf.add("CLIPTextEncode", text="a red fox running through fresh snow, tracking shot")
    negative = wf.add("CLIPTextEncode", text="blurry, static, low quality")
    wf.link(clip, "CLIP", positive, "clip")
    wf.link(clip, "CLIP", negative, "clip")
    shift = wf.add("ModelSamplingSD3", shift=8.0)
    wf.link(unet, "MODEL", shift, "model")
    patch = freeaccel_patch(wf, shift, node_type, **widgets)
    latent = wf.add("EmptyHunyuanLatentVideo", width=832, height=480, length=33, batch_size=1)
    wf.sample_decode_save((patch, "MODEL"), (positive, "CONDITIONING"), (negative, "CONDITIONING"),
                          (latent, "LATENT"), (vae, "VAE"),
                          dict(seed=42, steps=30, cfg=6.0, sampler_name="uni_pc", scheduler="simple", denoise=1.0),
                          save_type, dict(filename_prefix=filename_prefix, fps=16.0))


class Workflow:
    def __init__(self, schemas, *, core_version="0.8.0", pack_prefix=PACK_NODE_PREFIX, pack_info=None,
                 model_files=OFFICIAL_MODEL_FILES):
        self.schemas = schemas
        self.model_files = model_files
        self.core_version = core_version
        self.pack_prefix = pack_prefix
        self.pack_id, self.pack_version = pack_info or pack_project_info()
        self._nodes: dict[int, _Node] = {}
        self._notes: dict[int, tuple[str, str | None]] = {}
        self._links: dict[int, list] = {}
        self._groups: list[tuple[str, list[NodeHandle]]] = []

    # -- building -----------------------------------------------------------------------------------------------

    def add(self, node_type, title=None, **widget_values) -> NodeHandle:
        schema = self.schemas.get(node_type)
        if schema is None:
            raise ValueError(f"unknown node type {node_type!r}")
        widget_names = [slot.input_name for slot in widget_layout(schema) if slot.role == "value"]
        unknown = sorted(set(widget_values) - set(widget_names))
        if unknown:
            raise ValueError(f"{node_type} has no widget {unknown}; its widgets are {widget_names}")
        handle = NodeHandle(self._next_node_id(), node_type)
        values = {name: widget_values[name] if name in widget_values else self._default(schema, name)
                  for name in widget_names}
        self._nodes[handle.id] = _Node(handle, title, values, models=self._model_entries(node_type, schema, values))
        return handle

    def note(self, text, title=None) -> NodeHandle:
        """A Markdown note (frontend-only node) placed left of the graph."""
        handle = NodeHandle(self._next_node_id(), NOTE_TYPE)
        self._notes[handle.id] = (text, title)
        return handle

    def link(self, src, out_slot_or_name, dst, input_name) -> int:
        if src.id not in self._nodes or dst.id not in self._nodes:
            raise ValueError("notes have no sockets to link")
        source, target = self._nodes[src.id], self._nodes[dst.id]
        out_slot = self._output_slot(src.type, out_slot_or_name)
        spec = input_spec(self.schemas[dst.type], input_name)
        if spec is None:
            raise ValueError(f"{dst.type} has no input {input_name!r}")
        if spec[1].get("socketless"):
            raise ValueError(f"{dst.type} input {input_name!r} is a widget without a socket")
        if input_name in target.input_links:
            raise ValueError(f"{dst.type} (node {dst.id}) input {input_name!r} is already linked")
        out_type = self.schemas[src.type]["output"][out_slot]
        in_type = io_type(spec[0])
        link_id = len(self._links) + 1
        self._links[link_id] = [link_id, src.id, out_slot, dst.id, None, out_type if in_type == "*" else in_type]
        target.input_links[input_name] = link_id
        source.output_links.setdefault(out_slot, []).append(link_id)
        return link_id

    def sample_decode_save(self, model, positive, negative, latent, vae, sampler_widgets, save_type, save_widgets):
        """KSampler -> VAEDecode -> a save node, the tail every example workflow shares.

        ``model``, ``positive``, ``negative``, ``latent`` and ``vae`` are (handle, output name) pairs.
        """
        sampler = self.add("KSampler", **sampler_widgets)
        for (source, output), name in zip((model, positive, negative, latent),
                                          ("model", "positive", "negative", "latent_image")):
            self.link(source, output, sampler, name)
        self.decode_save((sampler, "LATENT"), vae, save_type, save_widgets)
        return sampler

    def decode_save(self, samples, vae, save_type, save_widgets):
        """VAEDecode of ``samples`` with ``vae`` ((handle, output name) pairs) -> a ``save_type`` node."""
        decode = self.add("VAEDecode")
        self.link(*samples, decode, "samples")
        self.link(*vae, decode, "vae")
        save = self.add(save_type, **save_widgets)
        self.link(decode, "IMAGE", save, "images")

    def group(self, title, handles):
        """A titled box drawn around the given nodes."""
        self._groups.append((title, list(handles)))

    # -- output ---------------------------------------------------------------------------------------------------

    def to_ui(self) -> dict:
        order = self._execution_order()
        nodes = {node_id: self._ui_node(node_id, order.index(node_id)) for node_id in order}
        for link in self._links.values():  # target slot = position in the target's inputs list
            target_inputs = nodes[link[3]]["inputs"]
            link[4] = next(i for i, entry in enumerate(target_inputs) if entry["link"] == link[0])
        self._place(nodes)
        ui = {
            "last_node_id": max(nodes, default=0),
            "last_link_id": max(self._links, default=0),
            "nodes": [nodes[node_id] for node_id in sorted(nodes)],
            "links": [list(self._links[link_id]) for link_id in sorted(self._links)],
            "groups": [self._ui_group(index + 1, title, handles, nodes)
                       for index, (title, handles) in enumerate(self._groups)],
            "config": {},
            "extra": {"ds": {"scale": 1, "offset": [0, 0]}},
            "version": 0.4,
        }
        errors = validate_workflow(ui, self.schemas)
        if errors:
            raise ValueError("workflow is not valid:\n  " + "\n  ".join(errors))
        return ui

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_ui(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    # -- internals ------------------------------------------------------------------------------------------------

    def _model_entries(self, node_type, schema, values) -> list[dict]:
        """properties.models of a node: the download entry of each model file its widgets name (the frontend offers
        the download when no file of that name is in `models/<directory>`)."""
        entries = []
        for name, value in values.items():
            if not (isinstance(value, str) and value.lower().endswith(MODEL_FILE_EXTENSIONS)
                    and is_model_file_combo(name, *input_spec(schema, name)[:2])):
                continue
            source = self.model_files.get(value)
            if source is None:
                raise ValueError(f"{node_type} {name}={value!r}: no download source known; add the file ComfyUI's "
                                 "own templates use for it to devtools/workflows/model_files.py")
            entries.append(source.entry(value))
        return entries

    def _next_node_id(self):
        return len(self._nodes) + len(self._notes) + 1

    @staticmethod
    def _default(schema, name):
        declared_type, options, _ = input_spec(schema, name)
        if "default" in options:
            return options["default"]
        kind = io_type(declared_type)
        if kind == "COMBO":
            choices = combo_options(declared_type, options)
            if not choices or is_model_file_combo(name, declared_type, options):
                raise ValueError(f"combo {name!r} lists files from the local disk: give its value explicitly "
                                 f"(e.g. {name}='model.safetensors')")
            return choices[0]
        if kind in ("INT", "FLOAT"):  # the frontend starts at 0; keep that inside [min, max]
            value = max(0, options.get("min", 0))
            return min(value, options["max"]) if "max" in options else value
        return {"STRING": "", "BOOLEAN": False}[kind]

    def _output_slot(self, node_type, slot_or_name) -> int:
        schema = self.schemas[node_type]
        outputs = schema.get("output", [])
        if isinstance(slot_or_name, int):
            if not 0 <= slot_or_name < len(outputs):
                raise ValueError(f"{node_type} has no output slot {slot_or_name}")
            return slot_or_name
        names = schema.get("output_name", outputs)
        for candidates in (names, outputs):
            matches = [slot for slot, name in enumerate(candidates) if name == slot_or_name]
            if len(matches) == 1:
                return matches[0]
        raise ValueError(f"{node_type} has no single output named or typed {slot_or_name!r}; outputs {names}")

    def _execution_order(self) -> list[int]:
        """Notes first, then a topological order of the graph (ties broken by node id)."""
        sources = {node_id: {self._links[link_id][1] for link_id in node.input_links.values()}
                   for node_id, node in self._nodes.items()}
        order = sorted(self._notes)
        done = set()
        while len(done) < len(sources):
            ready = sorted(node_id for node_id, deps in sources.items() if node_id not in done and deps <= done)
            if not ready:
                raise ValueError("the graph has a cycle")
            order.append(ready[0])
            done.add(ready[0])
        return order

    def _ui_node(self, node_id, order) -> dict:
        if node_id in self._notes:
            text, title = self._notes[node_id]
            entry = {"id": node_id, "type": NOTE_TYPE, "pos": [0, 0], "size": list(NOTE_SIZE), "flags": {},
                     "order": order, "mode": 0, "inputs": [], "outputs": [], "properties": {},
                     "widgets_values": [text]}
            if title:
                entry["title"] = title
            return entry
        node = self._nodes[node_id]
        schema = self.schemas[node.handle.type]
        sockets, widgets = [], []
        for name, _category in ordered_inputs(schema):
            declared_type, options, _ = input_spec(schema, name)
            slot = {"name": name, "type": io_type(declared_type)}
            if is_widget(declared_type, options):
                if options.get("socketless"):
                    continue
                slot["widget"] = {"name": name}
                widgets.append(slot)
            else:
                sockets.append(slot)
            slot["link"] = node.input_links.get(name)
        output_names = schema.get("output_name", schema.get("output", []))
        outputs = [{"name": output_names[slot], "type": out_type, "links": node.output_links.get(slot, []),
                    "slot_index": slot} for slot, out_type in enumerate(schema.get("output", []))]
        entry = {"id": node_id, "type": node.handle.type, "pos": [0, 0], "size": self._size(schema),
                 "flags": {}, "order": order, "mode": 0, "inputs": sockets + widgets, "outputs": outputs,
                 "properties": self._properties(node.handle.type, node.models),
                 "widgets_values": self._widgets_values(schema, node.widget_values)}
        if node.title:
            entry["title"] = node.title
        return entry

    def _properties(self, node_type, models) -> dict:
        ours = node_type.startswith(self.pack_prefix)
        properties = {"Node name for S&R": node_type,
                      "cnr_id": self.pack_id if ours else CORE_CNR_ID,
                      "ver": self.pack_version if ours else self.core_version}
        if models:
            properties["models"] = [dict(model) for model in models]
        return properties

    @staticmethod
    def _widgets_values(schema, values) -> list:
        extra = {"control": "fixed", "control_filter": "", "upload": "image"}
        return [values[slot.input_name] if slot.role == "value" else extra[slot.role]
                for slot in widget_layout(schema)]

    @staticmethod
    def _size(schema) -> list[int]:
        sockets, widget_rows, multiline = 0, 0, False
        for name, _category in ordered_inputs(schema):
            declared_type, options, _ = input_spec(schema, name)
            if not is_widget(declared_type, options):
                sockets += 1
            elif options.get("multiline"):
                multiline = True
            else:
                widget_rows += 2 if has_control_widget(name, declared_type, options) else 1
        rows = max(sockets, len(schema.get("output", [])))
        height = 10 + rows * SLOT_HEIGHT + widget_rows * WIDGET_HEIGHT + (MULTILINE_HEIGHT if multiline else 0)
        return [WIDE_NODE_WIDTH if multiline else NODE_WIDTH, height]

    def _place(self, nodes):
        """Columns by dependency depth (notes in their own first column), stacked top to bottom in order."""
        depth = {}
        for node_id in sorted(nodes, key=lambda n: nodes[n]["order"]):
            if node_id in self._notes:
                depth[node_id] = 0
                continue
            sources = [self._links[link_id][1] for link_id in self._nodes[node_id].input_links.values()]
            depth[node_id] = max((depth[s] + 1 for s in sources), default=1 if self._notes else 0)
        x = ORIGIN[0]
        for column in sorted(set(depth.values())):
            members = sorted((n for n in nodes if depth[n] == column), key=lambda n: nodes[n]["order"])
            y = ORIGIN[1]
            for node_id in members:
                nodes[node_id]["pos"] = [x, y]
                y += nodes[node_id]["size"][1] + ROW_GAP
            x += max(nodes[n]["size"][0] for n in members) + COLUMN_GAP

    @staticmethod
    def _ui_group(group_id, title, handles, nodes) -> dict:
        margin, title_bar = 20, 40
        boxes = [(nodes[h.id]["pos"], nodes[h.id]["size"]) for h in handles]
        left = min(pos[0] for pos, _ in boxes) - margin
        top = min(pos[1] for pos, _ in boxes) - margin - title_bar
        right = max(pos[0] + size[0] for pos, size in boxes) + margin
        bottom = max(pos[1] + size[1] for pos, size in boxes) + margin
        return {"id": group_id, "title": title, "bounding": [left, top, right - left, bottom - top],
                "color": GROUP_COLOR, "font_size": 24, "flags": {}}


# ---------------------------------------------------------------------------------------------------------------
# CLI


def live_schemas(comfy_path=None) -> tuple[dict, str]:
    """(schemas of every node of a freshly booted ComfyUI with the pack loaded, ComfyUI version)."""
    from devtools.harness.comfy_env import boot, find_comfyui

    root = find_comfyui(comfy_path)
    if root is None:
        raise SystemExit("no ComfyUI checkout: pass --comfyui PATH or set COMFYUI_PATH")
    boot(root, tempfile.mkdtemp(prefix="freeaccel-schemas-"))
    import comfyui_version
    import nodes  # ComfyUI's nodes.py: boot() put the ComfyUI root first on sys.path

    schemas = node_schemas_from_comfy(nodes.NODE_CLASS_MAPPINGS, nodes.NODE_DISPLAY_NAME_MAPPINGS)
    return schemas, comfyui_version.__version__


def build_technique(technique, schemas, core_version, out_dir=WORKFLOWS_DIR) -> list[Path]:
    """Write <name>.json and its thumbnail <name>.jpg into out_dir for each Example in the WORKFLOWS of
    devtools/workflows/<technique>.py; returns the paths written."""
    if technique not in TECHNIQUES:
        raise ValueError(f"unknown technique {technique!r}; one of {', '.join(TECHNIQUES)}")
    examples = importlib.import_module(f".{technique}", __package__).WORKFLOWS
    display_names = {node_type: schema.get("display_name", node_type) for node_type, schema in schemas.items()}
    written = []
    for file_name, example in examples.items():
        workflow = Workflow(schemas, core_version=core_version)
        workflow.note(f"{example.description}\n\n{example.note}", title=example.title)
        example.build(workflow)
        path = workflow.save(Path(out_dir) / file_name)
        spec = thumbnail_spec(json.loads(path.read_text(encoding="utf-8")), example.title, example.description,
                              display_names)
        written += [path, save_thumbnail(spec, path.with_suffix(".jpg"))]
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comfyui", help="ComfyUI checkout (default: $COMFYUI_PATH or the enclosing checkout)")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--update-schemas", action="store_true",
                        help=f"rewrite {SNAPSHOT_PATH.relative_to(REPO_ROOT)} from the live {PACK_NODE_PREFIX}* nodes")
    action.add_argument("--build", metavar="TECHNIQUE", choices=TECHNIQUES + ("all",),
                        help=f"a module of devtools/workflows ({', '.join(TECHNIQUES)}, or all) defining "
                             "WORKFLOWS = {file name: Example}")
    parser.add_argument("--out", default=str(WORKFLOWS_DIR), help="folder for --build (default: workflows/)")
    args = parser.parse_args(argv)

    schemas, core_version = live_schemas(args.comfyui)
    if args.update_schemas:
        written = save_schema_snapshot(schemas)
        print(f"wrote {len(written)} node schemas to {SNAPSHOT_PATH}: {', '.join(written) or '(none)'}")
        return
    if Path(args.out).resolve() == WORKFLOWS_DIR and core_version != BUILT_ON:
        raise SystemExit(f"build the bundled workflows on ComfyUI {BUILT_ON}, not {core_version} (--comfyui PATH), "
                         "or write them elsewhere with --out")
    for technique in TECHNIQUES if args.build == "all" else (args.build,):
        for path in build_technique(technique, schemas, core_version, args.out):
            print("wrote", path)


if __name__ == "__main__":
    main()
