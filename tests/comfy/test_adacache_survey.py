"""bench.variants.adacache.step_records: the distance survey computes every step and records c and MoReg's motion."""
from bench.variants import adacache as variants_adacache


def test_step_records_compute_every_step_with_distances_and_motion(comfy_rt):
    from devtools.harness import tiny_models
    records = variants_adacache.step_records(tiny_models.build("wan21"), steps=6, moreg="residual")
    assert [r.step for r in records] == list(range(6))
    assert all(r.computed and r.rate == 1 for r in records)
    assert records[0].distance is None and all(r.distance > 0 for r in records[1:])
    assert all(0 <= r.motion <= 1 for r in records)  # |frame difference| / (sum of the two frames' norms)
