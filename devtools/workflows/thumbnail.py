"""Template-browser thumbnails: a square JPEG beside each example workflow, drawn from the workflow itself.

ComfyUI serves `workflows/<name>.jpg` next to `<name>.json` and the frontend shows it on the template card (custom-node
templates always use the .jpg extension). A thumbnail shows the workflow's title and description and its main node
chain (loader to output, through the FreeAccel node, which is highlighted). What was drawn, the spec, is kept as the
JPEG comment, so a test can tell a stale thumbnail from a fresh one without comparing compressed bytes.

    spec = thumbnail_spec(ui_json, title, description, display_names)
    save_thumbnail(spec, "workflows/example.jpg");  read_spec("workflows/example.jpg") == spec
"""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, features

from .ui_format import FRONTEND_ONLY_TYPES, PACK_NODE_PREFIX

SIZE = 512
MARGIN = 28
JPEG_QUALITY = 88
BACKGROUND = (30, 34, 44)
TITLE_COLOR = (242, 244, 248)
TEXT_COLOR = (178, 186, 200)
BOX_COLOR = (58, 64, 80)
BOX_TEXT = (225, 229, 236)
ACCENT = (63, 120, 158)  # the builder's group colour around the FreeAccel node
ARROW_COLOR = (120, 130, 150)
TITLE_PX, TEXT_PX, BOX_PX, BRAND_PX = 32, 18, 20, 16
BOX_HEIGHT, ARROW_GAP = 38, 14
BRAND = "FreeAccel"


def main_chain(ui_json) -> list[str]:
    """Node types from a source to the output node, through the pack's node: walking back from the node nothing
    consumes, each step takes the first linked input whose upstream holds a FreeAccel node, else the first linked
    input. Returns the types in execution order."""
    nodes = {node["id"]: node for node in ui_json["nodes"] if node["type"] not in FRONTEND_ONLY_TYPES}
    links = {link[0]: link for link in ui_json["links"]}
    sources = {node_id: [links[i["link"]][1] for i in node.get("inputs") or [] if i.get("link") is not None]
               for node_id, node in nodes.items()}
    consumed = {source for upstream in sources.values() for source in upstream}
    sinks = sorted(node_id for node_id in nodes if node_id not in consumed)
    if len(sinks) != 1:
        raise ValueError(f"a thumbnail chain needs exactly one output node, found nodes {sinks}")

    def holds_pack_node(node_id, seen=()):
        return nodes[node_id]["type"].startswith(PACK_NODE_PREFIX) or any(
            holds_pack_node(source, seen + (node_id,)) for source in sources[node_id] if source not in seen)

    chain = [sinks[0]]
    while sources[chain[-1]]:
        upstream = sources[chain[-1]]
        chain.append(next((s for s in upstream if holds_pack_node(s)), upstream[0]))
    return [nodes[node_id]["type"] for node_id in reversed(chain)]


def thumbnail_spec(ui_json, title, description, display_names) -> dict:
    """What a thumbnail shows; display_names maps node types to the names the frontend gives them."""
    return {"title": title, "description": description,
            "chain": [[node_type, display_names.get(node_type, node_type)] for node_type in main_chain(ui_json)]}


def _font(size):
    if not features.check("freetype2"):
        raise RuntimeError("drawing thumbnails needs Pillow built with FreeType (its scalable default font)")
    return ImageFont.load_default(size=size)


def _fitting_font(label, width, height):
    """The box font, shrunk until the label fits the box."""
    size = min(BOX_PX, height)
    while size > 10 and _font(size).getlength(label) > width:
        size -= 1
    return _font(size)


def _wrap(text, font, width) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if line and font.getlength(candidate) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    return lines + ([line] if line else [])


def render(spec) -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), BACKGROUND)
    draw = ImageDraw.Draw(image)
    title_font, text_font, brand_font = (_font(px) for px in (TITLE_PX, TEXT_PX, BRAND_PX))
    width = SIZE - 2 * MARGIN
    y = MARGIN
    for line in _wrap(spec["title"], title_font, width):
        draw.text((MARGIN, y), line, font=title_font, fill=TITLE_COLOR)
        y += TITLE_PX + 6
    y += 2
    for line in _wrap(spec["description"], text_font, width):
        draw.text((MARGIN, y), line, font=text_font, fill=TEXT_COLOR)
        y += TEXT_PX + 5
    chain = spec["chain"]
    top, bottom = y + 12, SIZE - MARGIN - BRAND_PX - 10
    gap = ARROW_GAP
    box_height = min(BOX_HEIGHT, (bottom - top - (len(chain) - 1) * gap) // len(chain))
    y = bottom - len(chain) * box_height - (len(chain) - 1) * gap
    left, right, centre = MARGIN + 24, SIZE - MARGIN - 24, SIZE // 2
    for index, (node_type, label) in enumerate(chain):
        ours = node_type.startswith(PACK_NODE_PREFIX)
        draw.rounded_rectangle((left, y, right, y + box_height), radius=8,
                               fill=ACCENT if ours else BOX_COLOR, outline=TITLE_COLOR if ours else None, width=2)
        draw.text((centre, y + box_height // 2), label, font=_fitting_font(label, right - left - 16, box_height - 8),
                  fill=BOX_TEXT, anchor="mm")
        y += box_height
        if index < len(chain) - 1:
            draw.line((centre, y + 2, centre, y + gap - 3), fill=ARROW_COLOR, width=2)
            draw.polygon(((centre - 5, y + gap - 7), (centre + 5, y + gap - 7), (centre, y + gap - 2)),
                         fill=ARROW_COLOR)
            y += gap
    draw.text((SIZE - MARGIN, SIZE - MARGIN), BRAND, font=brand_font, fill=ACCENT, anchor="rd")
    return image


def save_thumbnail(spec, path) -> Path:
    path = Path(path)
    comment = json.dumps(spec, ensure_ascii=False, sort_keys=True).encode("utf-8")
    render(spec).save(path, "JPEG", quality=JPEG_QUALITY, optimize=True, comment=comment)
    return path


def read_spec(path) -> dict:
    with Image.open(path) as image:
        return json.loads(image.info["comment"].decode("utf-8"))
