"""The real-shape bench's assumed head tables (bench.real_shapes.mix_patterns) and the kernel bench's mix parser that
shares it: the heads of each pattern are interleaved, counts are kept, and a model with other head counts gets the
spread cut or cycled."""
import argparse

import pytest

from bench import head_sparse_timing
from bench.real_shapes import HEAD_MIXES, mix_patterns


def test_a_mix_is_interleaved_and_keeps_its_counts():
    spread = mix_patterns(("dense", 1, "frame", 2, "window", 3), 6)
    assert spread == ("dense", "frame", "window", "frame", "window", "window")
    mixed = mix_patterns(HEAD_MIXES[0], 12)
    assert {pattern: mixed.count(pattern) for pattern in set(mixed)} == {"dense": 1, "frame": 4, "window": 4,
                                                                          "temporal": 3}


def test_other_head_counts_cut_or_cycle_the_spread():
    assert mix_patterns(HEAD_MIXES[0], 2) == ("dense", "frame")
    assert mix_patterns(("frame", 1, "temporal", 1), 5) == ("frame", "temporal", "frame", "temporal", "frame")


def test_the_kernel_bench_parses_the_same_spread_and_checks_the_head_count():
    assert head_sparse_timing.parse_mix("dense:1,frame:4,window:4,temporal:3") == mix_patterns(HEAD_MIXES[0], 12)
    with pytest.raises(argparse.ArgumentTypeError, match="does not give 12 heads"):
        head_sparse_timing.parse_mix("frame:4")
