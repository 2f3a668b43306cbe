"""LocalWindowSettings: the one validation, the radii and which blocks the window applies in."""
from freeaccel.accel_core.local_window import LocalWindowSettings


def test_settings_errors():
    assert LocalWindowSettings().error() is None
    assert LocalWindowSettings(start_percent=0.5, end_percent=0.5).error() is None  # an empty step range is allowed
    assert LocalWindowSettings(start_percent=0.8, end_percent=0.2).error() == \
        "start_percent (0.8) must not exceed end_percent (0.2)"
    assert LocalWindowSettings(start_block=5, end_block=2).error() == \
        "end_block (2) must be -1 (last block) or at least start_block (5)"
    assert "implementation must be one of auto" in LocalWindowSettings(implementation="sparse").error()


def test_radii_are_the_kernel_window_radii():
    assert LocalWindowSettings(frames=2, height=5, width=7).radii == (2, 2, 3)


def test_block_range():
    assert [b for b in range(6) if LocalWindowSettings(start_block=1, end_block=3).covers_block(b)] == [1, 2, 3]
    assert [b for b in range(6) if LocalWindowSettings(start_block=4).covers_block(b)] == [4, 5]
