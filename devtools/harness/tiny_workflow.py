"""Rewrite a bundled workflow's API prompt to run on tiny random models (see devtools/harness/tiny_nodes.py).

The diffusion model file becomes a tiny model of the same family saved under the bench's own ComfyUI base directory
and loaded by the real UNETLoader; text encoders and VAEs, which have no tiny stand-in, are replaced by seeded
conditioning of the width that tiny model expects and a fixed latent-to-RGB projection; latent sizes shrink.
"""
import os

from safetensors import safe_open

# Substring of the user's model file name -> tiny family. Only WAN: ComfyUI's detection pins Flux files to full
# width (24 heads x 128), so no samplable tiny Flux file exists (see tiny_models.save_unet_file).
FILE_FAMILIES = (("wan", "wan21"),)
# state-dict key whose second dimension is the text width, and the pooled-vector key (if the family has one)
TEXT_WIDTH_KEYS = {"wan21": ("text_embedding.0.weight", None)}
DROPPED = ("CLIPLoader", "DualCLIPLoader", "TripleCLIPLoader", "VAELoader")
LATENT_SIZE = {"width": 128, "height": 96}  # pixels; tiny models want a small, non-square grid
MAX_VIDEO_LENGTH = 9  # pixel frames -> 3 latent frames for WAN's 4x temporal compression


def _family_of_file(unet_name):
    for needle, family in FILE_FAMILIES:
        if needle in unet_name.lower():
            return family
    raise ValueError(f"no tiny stand-in for the model file {unet_name!r}; tiny runs support "
                     + ", ".join(f"'*{needle}*' files" for needle, _ in FILE_FAMILIES))


def tiny_model_file(family, base_dir):
    """Save (once) the tiny model of ``family`` where UNETLoader finds it; return its file name."""
    from devtools.harness.tiny_models import save_unet_file
    name = f"freeaccel_tiny_{family}.safetensors"
    path = os.path.join(base_dir, "models", "diffusion_models", name)
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        save_unet_file(family, path)
    return name, path


def _text_widths(family, path):
    text_key, pooled_key = TEXT_WIDTH_KEYS[family]
    with safe_open(path, framework="pt") as f:
        text = f.get_slice(text_key).get_shape()[1]
        pooled = f.get_slice(pooled_key).get_shape()[1] if pooled_key else 0
    return text, pooled


def tiny_prompt(prompt, base_dir):
    """A copy of the API prompt rewired to tiny models; raises ValueError for nodes that have no tiny stand-in."""
    prompt = {node_id: {**node, "inputs": dict(node["inputs"])} for node_id, node in prompt.items()}
    loaders = [node for node in prompt.values() if node["class_type"] == "UNETLoader"]
    if len(loaders) != 1:
        raise ValueError(f"tiny runs need exactly one UNETLoader, found {len(loaders)}")
    family = _family_of_file(loaders[0]["inputs"]["unet_name"])
    file_name, path = tiny_model_file(family, base_dir)
    loaders[0]["inputs"].update(unet_name=file_name, weight_dtype="default")
    text_dim, pooled_dim = _text_widths(family, path)

    for node_id, node in list(prompt.items()):
        kind, inputs = node["class_type"], node["inputs"]
        if kind == "CLIPTextEncode":
            prompt[node_id] = {"class_type": "FreeAccelBench_TinyConditioning",
                               "inputs": {"text": inputs["text"], "tokens": 16, "dim": text_dim,
                                          "pooled_dim": pooled_dim}}
        elif kind == "VAEDecode":
            prompt[node_id] = {"class_type": "FreeAccelBench_TinyDecode", "inputs": {"samples": inputs["samples"]}}
        elif kind in DROPPED:
            del prompt[node_id]
        elif kind.startswith("Empty") and "width" in inputs:
            inputs.update(LATENT_SIZE)
            if "length" in inputs:
                inputs["length"] = min(inputs["length"], MAX_VIDEO_LENGTH)
    dangling = sorted(f"{node['class_type']}.{name}" for node in prompt.values()
                      for name, value in node["inputs"].items()
                      if isinstance(value, list) and len(value) == 2 and str(value[0]) not in prompt)
    if dangling:
        raise ValueError(f"no tiny stand-in for inputs fed by text encoders / VAEs: {', '.join(dangling)}")
    return prompt
