"""bench.trained.procedural: seeded latent clips whose motion classes really differ, fixed per-class prompts."""
import pytest
import torch

from bench.trained import procedural as p

SEEDS = range(12)


def _still_fraction(clip, tolerance=1e-4):
    """Fraction of pixel positions whose value never changes over the clip (all channels)."""
    change = (clip[:, 1:] - clip[:, :-1]).abs().amax(dim=(0, 1))
    return (change < tolerance).float().mean().item()


@pytest.mark.parametrize("motion", p.MOTION_CLASSES)
def test_clip_shape_dtype_and_determinism(motion):
    clip = p.make_clip(motion, 7)
    assert clip.shape == (p.CHANNELS, p.FRAMES, p.HEIGHT, p.WIDTH) == (16, 9, 16, 16)
    assert clip.dtype == torch.float32 and torch.isfinite(clip).all()
    assert torch.equal(clip, p.make_clip(motion, 7))
    assert not torch.equal(clip, p.make_clip(motion, 8))
    assert 0.3 < clip.std().item() < 2.0  # roughly the scale of a normalised latent


def test_clip_size_is_configurable_and_not_transposed():
    clip = p.make_clip("fast", 0, channels=4, frames=5, height=12, width=20)
    assert clip.shape == (4, 5, 12, 20)


def test_same_seed_is_the_same_scene_in_every_class():
    """Frame 0 is the scene before anything moved, so classes differ only in motion."""
    first = [p.make_clip(motion, 3)[:, 0] for motion in p.MOTION_CLASSES]
    for frame in first[1:]:
        assert torch.allclose(frame, first[0], atol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_motion_classes_order_by_frame_difference(seed):
    static, slow, fast, mixed = (p.mean_frame_difference(p.make_clip(m, seed)) for m in p.MOTION_CLASSES)
    assert static == 0.0
    assert 0.0 < slow < fast
    assert mixed > 0.0


def test_motion_class_averages_are_well_separated():
    mean = {m: sum(p.mean_frame_difference(p.make_clip(m, s)) for s in SEEDS) / len(SEEDS)
            for m in p.MOTION_CLASSES}
    assert mean["slow_pan"] > 0.02
    assert mean["fast"] > 2.5 * mean["slow_pan"]
    assert mean["fast"] > 1.5 * mean["mixed"]


def test_mixed_has_still_regions_and_moving_ones_pan_has_almost_none():
    for seed in SEEDS:
        mixed, pan = p.make_clip("mixed", seed), p.make_clip("slow_pan", seed)
        assert 0.3 < _still_fraction(mixed) < 1.0
        assert _still_fraction(pan) < 0.2


def test_textures_are_present():
    """Frames are not flat colour blobs: a static frame has spatial structure in every channel."""
    frame = p.make_clip("static", 0)[:, 0]
    assert (frame.flatten(1).std(dim=1) > 0.05).all()


def test_make_batch_is_seeded_and_labels_match_classes():
    clips, labels = p.make_batch(5, 6)
    assert clips.shape == (6, 16, 9, 16, 16) and labels.shape == (6,) and labels.dtype == torch.long
    again, labels_again = p.make_batch(5, 6)
    assert torch.equal(clips, again) and torch.equal(labels, labels_again)
    for clip, label in zip(clips, labels.tolist()):
        moving = p.mean_frame_difference(clip) > 0
        assert moving == (p.MOTION_CLASSES[label] != "static")


def test_make_batch_restricted_classes():
    _, labels = p.make_batch(0, 10, classes=("fast",))
    assert labels.tolist() == [p.MOTION_CLASSES.index("fast")] * 10


def test_image_variant():
    image = p.make_image(4)
    assert image.shape == (16, 16, 16)
    assert torch.equal(image, p.make_clip("static", 4)[:, 0])
    assert p.make_image(4, channels=4, height=8, width=12).shape == (4, 8, 12)


def test_prompts_are_fixed_distinct_and_text_width():
    prompts = [p.prompt_embedding(m) for m in p.MOTION_CLASSES] + [p.uncond_embedding()]
    for prompt in prompts:
        assert prompt.shape == (p.PROMPT_TOKENS, 4096)
    for i in range(len(prompts)):
        for j in range(i + 1, len(prompts)):
            assert not torch.allclose(prompts[i], prompts[j])
    assert torch.equal(p.prompt_embedding("fast"), p.prompt_embedding("fast"))
    assert p.prompt_embedding("mixed", tokens=4, dim=64).shape == (4, 64)


def test_unknown_class_is_rejected():
    with pytest.raises(ValueError, match="unknown motion class 'zoom'"):
        p.make_clip("zoom", 0)
    with pytest.raises(ValueError, match="unknown motion class 'zoom'"):
        p.prompt_embedding("zoom")


def test_image_classes_hold_their_shapes():
    for shapes, squares in (("discs", False), ("squares", True)):
        g = torch.Generator().manual_seed(7)
        scene = p._random_scene(g, 4, 16, 16, square_probability=p._SQUARE_PROBABILITY[shapes])
        assert all(shape["square"] == squares for shape in scene["shapes"])
    assert not torch.equal(p.make_image(3, shapes="discs"), p.make_image(3, shapes="squares"))
    prompts = [p.image_prompt_embedding(c, tokens=4, dim=64) for c in p.IMAGE_CLASSES]
    prompts += [p.prompt_embedding(m, tokens=4, dim=64) for m in p.MOTION_CLASSES] + [p.uncond_embedding(tokens=4,
                                                                                                        dim=64)]
    assert all(not torch.equal(a, b) for i, a in enumerate(prompts) for b in prompts[i + 1:])
