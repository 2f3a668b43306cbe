"""Per-head sparse attention against dense SDPA at WAN 2.1 1.3B's self-attention shape (CPU, no ComfyUI).

``python -m bench.head_sparse_timing [--grids 9x30x52,21x30x52] [--mixes ...] [--dtype fp32] [--repeats 1]`` times
``kernels.head_sparse.head_sparse_attention`` with each head-pattern mix and
``torch.nn.functional.scaled_dot_product_attention`` on the same random q, k, v [1, 12, L, 128] (split from [1, L, 12 * 128] as ComfyUI's attention override
passes them; WAN 2.1 1.3B: 12 heads of 128; its self-attention holds only the video tokens, text enters through cross-attention), 2 threads, one
after the other in each repeat, and prints a markdown table:

- dense / sparse seconds: medians over the repeats;
- speedup: median over the repeats of dense / sparse measured side by side (robust to other load on the machine);
- FLOP ratio: dense pairs / the pairs the per-head kernel computes (``head_sparse_flops``);
- efficiency: speedup / FLOP ratio.

A mix is ``pattern:count,...`` over the 12 heads, interleaved across the heads (as a model's choice would scatter
them) with the default pattern sizes of ``HeadPatternSettings``. It also times the pattern decision's statistics
(``decide_patterns`` on one batch entry, the default 16 sampled rows per frame) against the dense call.
"""
import argparse
import importlib
import importlib.util
import pathlib
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from bench.real_shapes import mix_patterns

HEADS, HEAD_DIM = 12, 128
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
DEFAULT_MIXES = ("dense:1,window:4,frame:4,temporal:3;window:5,frame:4,temporal:3;"
                 "window:12;frame:12;temporal:12")


def _pack():
    """The pack as the package ``freeaccel`` (accel_core reaches kernels through relative imports, as in ComfyUI)."""
    root = pathlib.Path(__file__).resolve().parent.parent
    if "freeaccel" not in sys.modules:
        spec = importlib.util.spec_from_file_location("freeaccel", root / "__init__.py",
                                                      submodule_search_locations=[str(root)])
        sys.modules["freeaccel"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["freeaccel"])
    return (importlib.import_module("freeaccel.kernels.head_sparse"),
            importlib.import_module("freeaccel.accel_core.head_patterns"),
            importlib.import_module("freeaccel.kernels.local_window"))


head_sparse, head_patterns, local_window = _pack()


def _grid(text):
    values = tuple(int(part) for part in text.split("x"))
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected frames x height x width, got {text!r}")
    return values


def parse_mix(text):
    """``pattern:count,...`` -> head patterns, interleaved: the i-th head of every pattern before the (i+1)-th."""
    counts = []
    for part in text.split(","):
        pattern, _, count = part.partition(":")
        if pattern not in head_sparse.PATTERNS or not count.isdigit():
            raise argparse.ArgumentTypeError(f"bad mix entry {part!r}: pattern:count, patterns "
                                             f"{', '.join(head_sparse.PATTERNS)}")
        counts.append((pattern, int(count)))
    if sum(count for _, count in counts) != HEADS:
        raise argparse.ArgumentTypeError(f"mix {text!r} does not give {HEADS} heads")
    return mix_patterns([item for pair in counts for item in pair], HEADS)


def _seconds(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved_seconds(reference, variants, repeats):
    """(reference seconds, {name: seconds}) per repeat: in every repeat the reference, then each variant, so a ratio
    taken repeat by repeat compares runs under the same load."""
    reference_times, variant_times = [], {name: [] for name in variants}
    for _ in range(repeats):
        reference_times.append(_seconds(reference))
        for name, run in variants.items():
            variant_times[name].append(_seconds(run))
    return reference_times, variant_times


def _mix_name(patterns):
    return ", ".join(f"{pattern} {patterns.count(pattern)}" for pattern in head_sparse.PATTERNS
                     if pattern in patterns)


def time_grid(grid, mixes, dtype, repeats):
    """(rows, statistics seconds, dense seconds of that repeat) for one grid."""
    layout = local_window.VideoLayout(*grid)
    settings = head_patterns.HeadPatternSettings()
    shapes = settings.shapes
    generator = torch.Generator().manual_seed(0)
    # [1, L, H*D] split into heads, as the attention override receives them (the rows of a head are not contiguous)
    q, k, v = (torch.randn(1, layout.video_len, HEADS * HEAD_DIM, generator=generator).to(dtype)
               .unflatten(-1, (HEADS, HEAD_DIM)).transpose(1, 2) for _ in range(3))

    def dense():
        return F.scaled_dot_product_attention(q, k, v)

    def sparse(patterns):
        return lambda: head_sparse.head_sparse_attention(q, k, v, layout, patterns, shapes)

    # warm-up: the cached tile plans, and SDPA's thread pool on a slice (a full dense call costs minutes)
    F.scaled_dot_product_attention(q[:, :, :1024], k, v)
    for patterns in mixes:
        sparse(patterns)()
    head_patterns.decide_patterns(q, k, layout, settings)
    statistics_seconds = _seconds(lambda: head_patterns.decide_patterns(q, k, layout, settings))
    dense_times, sparse_times = interleaved_seconds(dense, {patterns: sparse(patterns) for patterns in mixes},
                                                    repeats)
    rows = []
    for patterns in mixes:
        times = sparse_times[patterns]
        speedup = statistics.median(d / s for d, s in zip(dense_times, times))
        computed, full = head_sparse.head_sparse_flops(patterns, layout, shapes, HEAD_DIM)
        rows.append((grid, _mix_name(patterns), statistics.median(dense_times), statistics.median(times), speedup,
                     full / computed))
    return rows, statistics_seconds, statistics.median(dense_times)


def markdown(rows):
    lines = ["| grid (frames x h x w) | heads (of 12) | dense SDPA s | per-head s | speedup | FLOP ratio | efficiency |",
             "|---|---|---|---|---|---|---|"]
    for grid, mix, dense_s, sparse_s, speedup, ratio in rows:
        lines.append(f"| {' x '.join(map(str, grid))} | {mix} | {dense_s:.2f} | {sparse_s:.2f} | {speedup:.2f}x | "
                     f"{ratio:.2f}x | {speedup / ratio:.0%} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grids", default="9x30x52,21x30x52", help="comma-separated frames x height x width grids")
    parser.add_argument("--mixes", default=DEFAULT_MIXES,
                        help="semicolon-separated head mixes, each pattern:count,... over the 12 heads")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    grids = [_grid(text) for text in args.grids.split(",")]
    mixes = [parse_mix(text) for text in args.mixes.split(";")]
    shapes = head_patterns.HeadPatternSettings().shapes
    rows, notes = [], []
    with torch.inference_mode():
        for grid in grids:
            grid_rows, statistics_seconds, dense_seconds = time_grid(grid, mixes, DTYPES[args.dtype], args.repeats)
            rows += grid_rows
            layout = local_window.VideoLayout(*grid)
            tiles = ", ".join(f"{pattern} {'x'.join(map(str, head_sparse.pattern_tile(pattern, layout, shapes)))}"
                              for pattern in head_sparse.PATTERNS[1:])
            notes.append(f"{' x '.join(map(str, grid))}: query tiles {tiles}; pattern statistics (16 rows per frame) "
                         f"{statistics_seconds:.2f} s = {statistics_seconds / dense_seconds:.1%} of the dense call "
                         f"(multiply-adds: {head_patterns.statistics_fraction(layout, 16, HEAD_DIM):.1%})")
    print(f"{args.dtype}, {torch.get_num_threads()} threads, q/k/v [1, {HEADS}, L, {HEAD_DIM}], {args.repeats} "
          f"interleaved repeats, torch {torch.__version__}; window radii {shapes.window}, temporal radii "
          f"{shapes.temporal}, tiles of at least {shapes.min_tile_queries} queries")
    print(markdown(rows))
    print("\n".join(notes))


if __name__ == "__main__":
    main()
