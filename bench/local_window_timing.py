"""Local-window attention against dense SDPA at real attention shapes (CPU, no ComfyUI).

``python -m bench.local_window_timing [--grids 9x30x52,21x30x52] [--radii 1,10,10] [--dtype bf16] [--repeats 3]
[--implementations tiled] [--tile FxHxW]`` times ``kernels.local_window.local_window_attention`` and
``torch.nn.functional.scaled_dot_product_attention`` on the same random q, k, v [1, 12, L, 128] (WAN 2.1 1.3B's
heads) with 2 threads, one after the other in each repeat, and prints a markdown table:

- dense / window seconds: medians over the repeats;
- speedup: median over the repeats of dense / window measured side by side (robust to other load on the machine);
- ideal: dense pairs / the pairs the implementation's window attends (tiled: the pairs its tiles compute);
- efficiency: speedup / ideal.
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from kernels.local_window import (
    VideoLayout, local_window_attention, tiled_window_attention_flops, tiled_window_tile, window_attention_flops)

HEADS, HEAD_DIM = 12, 128
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def _triple(text, sep):
    values = tuple(int(part) for part in text.split(sep))
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three integers separated by {sep!r}, got {text!r}")
    return values


def _seconds(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _ideal(layout, radii, implementation, tile):
    if implementation == "tiled":
        computed, full = tiled_window_attention_flops(layout, radii, HEADS, HEAD_DIM, tile=tile)
    else:
        computed, full = window_attention_flops(layout, radii, HEADS, HEAD_DIM)
    return full / computed


def time_grid(grid, radii, dtype, repeats, implementations, tile):
    """Table rows for one grid: each implementation timed against dense SDPA, interleaved repeat by repeat."""
    layout = VideoLayout(*grid)
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, HEADS, layout.video_len, HEAD_DIM, generator=generator).to(dtype) for _ in range(3))

    def dense():
        return F.scaled_dot_product_attention(q, k, v)

    def window(implementation):
        return lambda: local_window_attention(q, k, v, layout, radii, implementation=implementation, tile=tile)

    # warm-up: the window's cached index plans, and SDPA's thread pool on a slice (a full dense call costs minutes)
    F.scaled_dot_product_attention(q[:, :, :1024], k, v)
    for implementation in implementations:
        window(implementation)()
    dense_times, window_times = [], {name: [] for name in implementations}
    for _ in range(repeats):
        dense_times.append(_seconds(dense))
        for implementation in implementations:
            window_times[implementation].append(_seconds(window(implementation)))
    rows = []
    for implementation in implementations:
        times = window_times[implementation]
        speedup = statistics.median(d / w for d, w in zip(dense_times, times))
        ideal = _ideal(layout, radii, implementation, tile)
        used_tile = (tile or tiled_window_tile(layout, radii)) if implementation == "tiled" else tile
        rows.append((grid, radii, implementation, used_tile, statistics.median(dense_times), statistics.median(times),
                     speedup, ideal))
    return rows


def markdown(rows):
    lines = ["| grid (frames x h x w) | radii | implementation | tile | dense SDPA s | window s | speedup | ideal | "
             "efficiency |", "|---|---|---|---|---|---|---|---|---|"]
    for grid, radii, implementation, tile, dense_s, window_s, speedup, ideal in rows:
        tile_text = "x".join(map(str, tile)) if tile else "default"
        lines.append(f"| {' x '.join(map(str, grid))} | {tuple(radii)} | {implementation} | {tile_text} | "
                     f"{dense_s:.2f} | {window_s:.2f} | {speedup:.2f}x | {ideal:.1f}x | {speedup / ideal:.0%} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grids", default="9x30x52,21x30x52",
                        help="comma-separated frames x height x width token grids")
    parser.add_argument("--radii", type=lambda text: _triple(text, ","), default=(1, 10, 10),
                        help="window radii: frames,rows,columns")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--implementations", default="tiled",
                        help="comma-separated local_window implementations (tiled, gathered, flex)")
    parser.add_argument("--tile", type=lambda text: _triple(text, "x"), default=None,
                        help="query tile FxHxW instead of the implementation's default")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    grids = [_triple(text, "x") for text in args.grids.split(",")]
    implementations = args.implementations.split(",")
    rows = []
    with torch.inference_mode():
        for grid in grids:
            rows += time_grid(grid, args.radii, DTYPES[args.dtype], args.repeats, implementations, args.tile)
    print(f"{args.dtype}, {torch.get_num_threads()} threads, q/k/v [1, {HEADS}, L, {HEAD_DIM}], {args.repeats} "
          f"interleaved repeats, torch {torch.__version__}")
    print(markdown(rows))


if __name__ == "__main__":
    main()
