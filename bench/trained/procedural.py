"""Procedural training data for the bench's tiny trained models: latent-space clips of textured, coloured shapes.

No files, no downloads: every clip is rendered analytically from a seed (pure torch, CPU, float32), so the same seed
gives the same tensor on every machine. Clips live directly in the diffusion model's latent space (the space the
model denoises in, i.e. after ComfyUI's ``process_latent_in``), shaped like a tiny WAN 2.1 latent: 16 channels x
9 latent frames x 16 x 16. Each clip belongs to one motion class:

- ``static``: nothing moves;
- ``slow_pan``: the whole scene (textured background and shapes) drifts slowly, like a camera pan;
- ``fast``: shapes fly across the frame, bouncing off the borders, while the background pans quickly;
- ``mixed``: a still scene in which one shape moves fast (static and moving regions in the same clip).

Each class has a fixed "prompt": a seeded random [tokens, 4096] tensor (4096 = the text width of the WAN file
UNETLoader detects), standing in for a text encoder's output, plus an unconditional one for classifier-free
guidance. ``make_image`` is the single-frame variant for image models.
"""
import math

import torch

MOTION_CLASSES = ("static", "slow_pan", "fast", "mixed")
IMAGE_CLASSES = ("discs", "squares", "mixed")  # still images for the UNets: which shapes a scene holds
_SQUARE_PROBABILITY = {"discs": 0.0, "squares": 1.0, "mixed": 0.5}
CHANNELS = 16
FRAMES = 9
HEIGHT = 16
WIDTH = 16
PROMPT_TOKENS = 16
TEXT_DIM = 4096

SHAPES_PER_CLIP = (2, 4)  # inclusive range of shapes in a scene
SLOW_PAN_SPEED = (0.25, 0.45)  # latent pixels per latent frame
FAST_PAN_SPEED = (1.0, 1.6)
FAST_SHAPE_SPEED = (1.8, 3.0)
PALETTE_SIZE = 6  # every colour of every scene is one of these fixed latent colours (see _palette)
STRIPE_PERIOD = (3.5, 6.0)  # pixels; shapes' stripe texture
EDGE_WIDTH = 1.5  # pixels over which a shape's edge ramps into the background: sub-pixel motion stays smooth,
# and a pixel farther than EDGE_WIDTH / 2 from every moving edge stays exactly still
_PROMPT_SEED = 0x5EED  # prompt vectors are fixed per class, independent of the data seed


def make_clip(motion, seed, *, channels=CHANNELS, frames=FRAMES, height=HEIGHT, width=WIDTH):
    """One clip [channels, frames, height, width] of motion class ``motion``; same arguments -> same tensor."""
    _class_index(motion)
    g = torch.Generator().manual_seed(int(seed))
    scene = _random_scene(g, channels, height, width)
    t = torch.arange(frames, dtype=torch.float32)
    pan_direction = _unit_vector(g)
    if motion == "static":
        pan, shape_velocity = torch.zeros(2), torch.zeros(len(scene["shapes"]), 2)
    elif motion == "slow_pan":
        pan, shape_velocity = pan_direction * _uniform(g, *SLOW_PAN_SPEED), torch.zeros(len(scene["shapes"]), 2)
    elif motion == "fast":
        pan = pan_direction * _uniform(g, *FAST_PAN_SPEED)
        shape_velocity = torch.stack([_unit_vector(g) * _uniform(g, *FAST_SHAPE_SPEED) for _ in scene["shapes"]])
    else:  # mixed: only the first shape moves
        pan = torch.zeros(2)
        shape_velocity = torch.zeros(len(scene["shapes"]), 2)
        shape_velocity[0] = _unit_vector(g) * _uniform(g, *FAST_SHAPE_SPEED)
    return torch.stack([_render(scene, pan * ti, shape_velocity * ti, height, width) for ti in t], dim=1)


def make_image(seed, *, channels=CHANNELS, height=HEIGHT, width=WIDTH, shapes="mixed"):
    """The single-frame variant for image models: one still scene [channels, height, width] whose shapes are those
    of image class ``shapes`` (IMAGE_CLASSES: discs, squares or mixed)."""
    g = torch.Generator().manual_seed(int(seed))
    scene = _random_scene(g, channels, height, width, square_probability=_SQUARE_PROBABILITY[shapes])
    return _render(scene, torch.zeros(2), torch.zeros(len(scene["shapes"]), 2), height, width)


def image_prompt_embedding(shapes, *, tokens=PROMPT_TOKENS, dim=TEXT_DIM):
    """The fixed "prompt" of an image class: a [tokens, dim] tensor, distinct from every motion-class prompt."""
    return _prompt(1 + len(MOTION_CLASSES) + IMAGE_CLASSES.index(shapes), tokens, dim)


def make_batch(seed, batch, *, classes=MOTION_CLASSES, channels=CHANNELS, frames=FRAMES, height=HEIGHT,
               width=WIDTH):
    """``batch`` clips with classes drawn uniformly from ``classes``: (clips [B, C, F, H, W], labels [B]) where
    labels index MOTION_CLASSES. Same seed -> same batch."""
    indices = [_class_index(name) for name in classes]
    g = torch.Generator().manual_seed(int(seed))
    picks = torch.randint(len(indices), (batch,), generator=g)
    clip_seeds = torch.randint(2 ** 62, (batch,), generator=g)
    labels = torch.tensor([indices[p] for p in picks.tolist()], dtype=torch.long)
    clips = torch.stack([make_clip(MOTION_CLASSES[label], clip_seed, channels=channels, frames=frames,
                                   height=height, width=width)
                         for label, clip_seed in zip(labels.tolist(), clip_seeds.tolist())])
    return clips, labels


def prompt_embedding(motion, *, tokens=PROMPT_TOKENS, dim=TEXT_DIM):
    """The fixed "prompt" of a motion class: a [tokens, dim] tensor (the same in every process)."""
    return _prompt(1 + _class_index(motion), tokens, dim)


def uncond_embedding(*, tokens=PROMPT_TOKENS, dim=TEXT_DIM):
    """The fixed unconditional ("empty prompt") embedding [tokens, dim], for classifier-free guidance."""
    return _prompt(0, tokens, dim)


def mean_frame_difference(clip):
    """Mean absolute difference between consecutive frames of a clip [..., C, F, H, W]: a motion measure."""
    return (clip[..., 1:, :, :] - clip[..., :-1, :, :]).abs().mean().item()


# ---------------------------------------------------------------------------------------------------------------


def _class_index(motion):
    try:
        return MOTION_CLASSES.index(motion)
    except ValueError:
        raise ValueError(f"unknown motion class {motion!r}; known: {MOTION_CLASSES}") from None


def _prompt(index, tokens, dim):
    g = torch.Generator().manual_seed(_PROMPT_SEED * 1000 + index)
    return torch.randn(tokens, dim, generator=g)


def _uniform(g, low, high):
    return low + (high - low) * torch.rand((), generator=g).item()


def _unit_vector(g):
    angle = 2 * math.pi * torch.rand((), generator=g).item()
    return torch.tensor([math.sin(angle), math.cos(angle)])


def _palette(channels):
    """PALETTE_SIZE fixed latent "colours" (one value per channel, roughly unit size like a normalised latent). Like a
    real VAE latent, whose channels are strongly correlated, every clip then lies in a low-dimensional subspace of
    the channels, which is what lets a tiny model learn to denoise within a CPU training budget."""
    g = torch.Generator().manual_seed(_PROMPT_SEED + channels)
    return torch.randn(PALETTE_SIZE, channels, generator=g) * 0.8


def _colour(g, palette):
    return palette[int(torch.randint(len(palette), (), generator=g))]


def _random_scene(g, channels, height, width, square_probability=0.5):
    """Background: a base colour plus a low-frequency wave texture in a second colour. Shapes: discs and squares
    (each a square with ``square_probability``), each with its own colour and a finer stripe texture in a third
    colour."""
    palette = _palette(channels)
    background = {"base": _colour(g, palette), "tint": _colour(g, palette) * 0.6,
                  "wave": _unit_vector(g) * (2 * math.pi / _uniform(g, 6.0, 10.0)),
                  "phase": _uniform(g, 0.0, 2 * math.pi)}
    count = int(torch.randint(SHAPES_PER_CLIP[0], SHAPES_PER_CLIP[1] + 1, (), generator=g))
    shapes = []
    for _ in range(count):
        radius = _uniform(g, 0.12, 0.22) * min(height, width)
        shapes.append({
            "square": bool(torch.rand((), generator=g) < square_probability),
            "radius": radius,
            "centre": torch.tensor([_uniform(g, radius, height - radius), _uniform(g, radius, width - radius)]),
            "colour": _colour(g, palette) * 1.5,
            "stripe_colour": _colour(g, palette) * 0.5,
            "stripes": _unit_vector(g) * (2 * math.pi / _uniform(g, *STRIPE_PERIOD)),
        })
    return {"background": background, "shapes": shapes}


def _reflect(position, low, high):
    """Bounce a coordinate off [low, high] (a triangle wave), so fast shapes stay in the frame."""
    span = high - low
    if span <= 0:
        return position.new_full(position.shape, low)
    phase = torch.remainder(position - low, 2 * span)
    return low + torch.where(phase > span, 2 * span - phase, phase)


def _render(scene, pan, shape_shift, height, width):
    """One frame [C, H, W]: the scene with the background and shapes translated by ``pan`` and every shape
    additionally moved by its row of ``shape_shift`` (bounced off the borders)."""
    ys = torch.arange(height, dtype=torch.float32).view(height, 1).expand(height, width)
    xs = torch.arange(width, dtype=torch.float32).view(1, width).expand(height, width)
    bg = scene["background"]
    # the background texture moves with the pan: evaluate it at the point that was under (y, x) at frame 0
    wave = torch.sin(bg["wave"][0] * (ys - pan[0]) + bg["wave"][1] * (xs - pan[1]) + bg["phase"])
    frame = bg["base"].view(-1, 1, 1) + bg["tint"].view(-1, 1, 1) * wave
    for shape, shift in zip(scene["shapes"], shape_shift):
        r = shape["radius"]
        cy = _reflect(shape["centre"][0] + pan[0] + shift[0], r, height - r)
        cx = _reflect(shape["centre"][1] + pan[1] + shift[1], r, width - r)
        dy, dx = ys - cy, xs - cx
        if shape["square"]:
            distance = torch.maximum(dy.abs(), dx.abs()) - r
        else:
            distance = torch.sqrt(dy * dy + dx * dx) - r
        inside = (0.5 - distance / EDGE_WIDTH).clamp(0.0, 1.0)
        stripes = torch.sin(shape["stripes"][0] * dy + shape["stripes"][1] * dx)
        fill = shape["colour"].view(-1, 1, 1) + shape["stripe_colour"].view(-1, 1, 1) * stripes
        frame = frame + inside * (fill - frame)
    return frame
