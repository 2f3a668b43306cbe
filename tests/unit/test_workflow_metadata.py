"""What a newcomer gets with the bundled workflows, checked without ComfyUI: every model file a loader names carries
its download entry (properties.models) the way the frontend's Missing Models dialog reads it, and every workflow has
its thumbnail and title. The same files rebuilt from a live ComfyUI: tests/comfy/test_workflow_schemas.py."""
import importlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from devtools.workflows.builder import BUILT_ON, TECHNIQUES, WORKFLOWS_DIR
from devtools.workflows.model_files import DOWNLOAD_SOURCES, DOWNLOAD_SUFFIXES, OFFICIAL_MODEL_FILES
from devtools.workflows.thumbnail import JPEG_QUALITY, SIZE, main_chain, read_spec, render
from devtools.workflows.ui_format import FRONTEND_ONLY_TYPES, MODEL_FILE_EXTENSIONS

WORKFLOW_FILES = sorted(WORKFLOWS_DIR.glob("*.json"))
EXAMPLES = {name: example for technique in TECHNIQUES
            for name, example in importlib.import_module(f"devtools.workflows.{technique}").WORKFLOWS.items()}
# The model folder of each loader the workflows use, as ComfyUI's loaders list it (and as the frontend's
# modelNodeMappings map them, which leaves out DualCLIPLoader).
LOADER_FOLDERS = {"UNETLoader": "diffusion_models", "CLIPLoader": "text_encoders",
                  "DualCLIPLoader": "text_encoders", "VAELoader": "vae", "CheckpointLoaderSimple": "checkpoints",
                  "ImageOnlyCheckpointLoader": "checkpoints"}
# Mean absolute difference (0-255) allowed between a committed thumbnail and a fresh rendering of its spec, both
# JPEG-compressed: 0 with the Pillow that drew it, a little more with another FreeType or libjpeg build; one word
# changed in a title already differs by about 1.6, a changed layout or colour by far more.
THUMBNAIL_TOLERANCE = 0.4

workflows = pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def as_committed(image):
    """The image after the JPEG compression thumbnail.save_thumbnail applies."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return Image.open(buffer).convert("RGB")


def model_file_values(node):
    """The widget values the frontend scans as model files (a model-file extension)."""
    return [value for value in node.get("widgets_values") or []
            if isinstance(value, str) and value.lower().endswith(MODEL_FILE_EXTENSIONS)]


def test_every_committed_workflow_is_an_example_of_a_technique_module_built_on_the_oldest_comfyui():
    assert sorted(path.name for path in WORKFLOW_FILES) == sorted(EXAMPLES)
    for path in WORKFLOW_FILES:
        assert {node["properties"]["ver"] for node in load(path)["nodes"]
                if node["properties"].get("cnr_id") == "comfy-core"} == {BUILT_ON}, path.name


@workflows
def test_every_model_file_a_loader_names_has_its_download_entry(path):
    loaders = 0
    for node in load(path)["nodes"]:
        if node["type"] in FRONTEND_ONLY_TYPES:
            continue
        names = model_file_values(node)
        entries = node["properties"].get("models", [])
        assert [entry["name"] for entry in entries] == names, f"node {node['id']} ({node['type']})"
        for name, entry in zip(names, entries):
            loaders += 1
            assert entry["directory"] == LOADER_FOLDERS[node["type"]], f"{name} of {node['type']}"
            assert entry["url"].startswith(DOWNLOAD_SOURCES) and entry["url"].endswith("/" + name)
            assert name.endswith(DOWNLOAD_SUFFIXES), f"the frontend downloads only {DOWNLOAD_SUFFIXES}, not {name}"
            assert entry == OFFICIAL_MODEL_FILES[name].entry(name)
    assert loaders, "a workflow without any model file"


def test_model_file_registry_points_at_files_of_that_name():
    for name, source in OFFICIAL_MODEL_FILES.items():
        assert source.url.startswith("https://huggingface.co/") and source.url.endswith("/" + name)
        assert "?" not in source.url
        assert source.directory in set(LOADER_FOLDERS.values())


@workflows
def test_note_carries_the_title_and_description_of_the_example(path):
    example = EXAMPLES[path.name]
    note = load(path)["nodes"][0]
    assert (note["type"], note["title"]) == ("MarkdownNote", example.title)
    assert note["widgets_values"] == [f"{example.description}\n\n{example.note}"]


@workflows
def test_thumbnail_beside_the_workflow_shows_its_title_and_chain(path):
    thumbnail = path.with_suffix(".jpg")
    assert thumbnail.is_file(), f"{thumbnail.name} missing; python -m devtools.workflows.builder --build all"
    example, spec = EXAMPLES[path.name], read_spec(thumbnail)
    assert (spec["title"], spec["description"]) == (example.title, example.description)
    assert [node_type for node_type, _label in spec["chain"]] == main_chain(load(path))
    with Image.open(thumbnail) as committed:
        assert (committed.format, committed.size) == ("JPEG", (SIZE, SIZE))
        difference = np.abs(np.asarray(committed.convert("RGB"), np.float32) -
                            np.asarray(as_committed(render(spec)), np.float32)).mean()
    assert difference < THUMBNAIL_TOLERANCE, f"{thumbnail.name} is not what thumbnail.py draws now: rebuild it"
    assert thumbnail.stat().st_size < 100_000


def test_main_chain_runs_from_a_source_to_the_output_through_the_pack_node():
    # A: loader -> FreeAccel -> sampler -> save; the sampler also takes a latent from B, listed first.
    def node(node_id, node_type, inputs):
        return {"id": node_id, "type": node_type, "inputs": [{"name": n, "link": link} for n, link in inputs]}

    ui = {"nodes": [node(1, "MarkdownNote", []), node(2, "UNETLoader", []), node(3, "FreeAccel_X", [("model", 1)]),
                    node(4, "EmptyLatent", []), node(5, "KSampler", [("latent", 3), ("model", 2)]),
                    node(6, "Save", [("images", 4)])],
          "links": [[1, 2, 0, 3, 0, "MODEL"], [2, 3, 0, 5, 1, "MODEL"], [3, 4, 0, 5, 0, "LATENT"],
                    [4, 5, 0, 6, 0, "LATENT"]]}
    assert main_chain(ui) == ["UNETLoader", "FreeAccel_X", "KSampler", "Save"]
    ui["nodes"][2]["type"] = "Plain"  # no pack node: the first linked input
    assert main_chain(ui) == ["EmptyLatent", "KSampler", "Save"]
    ui["nodes"].append(node(7, "Save", []))
    with pytest.raises(ValueError, match=r"exactly one output node, found nodes \[6, 7\]"):
        main_chain(ui)
