"""The real-shape benchmark's machinery (bench.real_shapes) on small stand-ins of its cases: every technique's variants
on every family it covers, through the same code path as the real run."""
import dataclasses
import json
import math

import pytest

from bench import real_shapes


def _small_shapes():
    """Each family's builder with small sizes (head dims kept at the real 128 for the DiTs)."""
    small_unet = dict(model_channels=32, transformer_depth=[0, 0, 1, 1, 1, 1], transformer_depth_middle=1,
                      transformer_depth_output=[0, 0, 0, 1, 1, 1, 1, 1, 1])
    return [real_shapes.sd15_shape(height=16, width=16, model_channels=32),
            real_shapes.sdxl_shape(height=16, width=16, **small_unet),
            real_shapes.flux_shape(height=16, width=16, double_blocks=1, single_blocks=1, hidden=256, text_tokens=16),
            real_shapes.wan21_shape(frames=3, height=8, width=12, dim=256, ffn_dim=512, text_tokens=16)]


@pytest.mark.once_per_matrix
def test_real_shape_machinery_reports_every_variant(comfy_rt, tmp_path):
    shapes = _small_shapes()
    selection = dataclasses.replace(real_shapes.FULL, repeats=1, motion_iterations=1)
    report = real_shapes.bench_real_shapes(selection, shapes=shapes)
    table = real_shapes.format_markdown(report)
    with open(real_shapes.write_json(report, str(tmp_path))) as file:
        saved = json.load(file)

    for shape in shapes:
        expected = ["baseline"] + [v.name for v in real_shapes.variants(selection, shape.family)]
        if shape.family == "wan21":
            expected += ["DiTFlow guidance", "FastVMT guidance"]
        rows = [row for row in saved["rows"] if row["case"] == shape.name]
        assert [row["variant"] for row in rows] == expected
        for row in rows:
            for key in ("seconds", "speedup", "ideal", "efficiency"):
                assert row[key] is not None and math.isfinite(row[key]), (shape.name, row["variant"], key)
            assert f"| {shape.name} | {row['variant']} |" in table
    baselines = [row for row in saved["rows"] if row["variant"] == "baseline"]
    assert all(row["speedup"] == 1.0 and row["ideal"] == 1.0 for row in baselines)
