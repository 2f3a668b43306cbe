"""Side-by-side benchmark of patched model variants against the unpatched baseline, in one process.

Every variant samples with the same model weights, seed and latent. Runs are interleaved (baseline, A, B, baseline,
A, B, ...) so slow drifts of the machine hit all variants alike; wall time is the median over repeats. Quality is
PSNR/SSIM of each variant's output against the baseline output; work is FLOPs counted in one extra, untimed run;
peak memory is the peak resident-set growth during a run (CUDA: peak allocated).
"""
import logging
import math
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field

import torch

from bench import metrics
from bench.flops import count_flops

BASELINE = "baseline"
# aten ops that carry attention in these models: the fused SDPA kernels, and the batched matmuls of ComfyUI's own
# sub-quadratic / split attention and of the chunked paths (projections and MLPs run as mm/addmm, convs as convolution).
ATTENTION_OPS = ("aten.bmm", "aten.baddbmm")
ATTENTION_OP_PREFIX = "aten._scaled_dot_product"


def attention_flops(per_op):
    return sum(n for op, n in per_op.items() if op in ATTENTION_OPS or op.startswith(ATTENTION_OP_PREFIX))


@dataclass
class VariantResult:
    name: str
    times: list = field(default_factory=list)
    median_s: float = math.nan
    speedup: float = math.nan
    psnr_latent: float = math.nan
    ssim_latent: float = math.nan
    psnr_pixels: float = None
    ssim_pixels: float = None
    gflops: float = math.nan
    attention_gflops: float = math.nan
    work_skipped: float = math.nan
    peak_mem_mb: float = math.nan
    log: list = field(default_factory=list)

    def as_json(self):
        data = asdict(self)
        for key, value in data.items():  # JSON has no inf/nan: identical outputs read "inf", unmeasured null
            if isinstance(value, float) and math.isinf(value):
                data[key] = "inf"
            elif isinstance(value, float) and math.isnan(value):
                data[key] = None
        return data


class _PeakMemory:
    """Peak memory growth of a block: CUDA allocator peak, else a resident-set sampler thread (CPU tensors)."""

    def __init__(self, interval=0.002):
        self.interval = interval
        self.peak_bytes = 0

    def __enter__(self):
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
            self._start = torch.cuda.memory_allocated()
            return self
        import psutil
        self._process = psutil.Process()
        self._start = self._process.memory_info().rss
        self._peak = self._start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self._peak = max(self._peak, self._process.memory_info().rss)
            self._stop.wait(self.interval)

    def __exit__(self, *exc):
        if torch.cuda.is_available():
            self.peak_bytes = torch.cuda.max_memory_allocated() - self._start
            return False
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self._process.memory_info().rss)
        self.peak_bytes = self._peak - self._start
        return False


class _StepLogCapture(logging.Handler):
    """Keeps the log lines in which a technique reports the work it skipped (e.g. "computed 12 of 30 steps")."""

    KEYWORDS = ("step", "skipped", "pruned", "kept")

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        message = record.getMessage()
        if any(word in message for word in self.KEYWORDS):
            self.lines.append(message)


def _captured_run(sample_fn, model):
    handler = _StepLogCapture()
    root = logging.getLogger()
    previous_level = root.level
    # the capture needs INFO records; the handlers already there keep showing only what they showed before (no
    # "Requested to load" chatter from ComfyUI in the bench output)
    shown = [(other, other.level) for other in root.handlers]
    for other, level in shown:
        other.setLevel(max(level, previous_level))
    root.addHandler(handler)
    root.setLevel(min(previous_level, logging.INFO))
    try:
        with _PeakMemory() as memory:
            try:
                output, flops, per_op = count_flops(sample_fn, model)
                attention = attention_flops(per_op)
            except TypeError as err:  # torch's counter cannot trace some ops (flex attention's higher-order op)
                handler.lines.append(f"FLOPs not countable: {str(err).splitlines()[0][:120]}")
                output, flops, attention = sample_fn(model), math.nan, math.nan
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
        for other, level in shown:
            other.setLevel(level)
    return output, flops, attention, memory.peak_bytes, handler.lines


def run_variants(sample_fn, variants, repeats=3, decode_fn=None, progress=None):
    """Benchmark ``variants`` = [(name, model)] against ``(BASELINE, baseline_model)`` which must come first.

    ``sample_fn(model) -> latent``; ``decode_fn(latent) -> pixels`` (optional, when the graph has a VAE).
    ``progress`` is an optional tqdm-like object with ``update()``.
    """
    if not variants or variants[0][0] != BASELINE:
        raise ValueError("the first variant must be the baseline")
    results = {name: VariantResult(name) for name, _ in variants}
    outputs = {}
    for name, model in variants:  # untimed: output, FLOPs, memory, technique logs (also warms up)
        outputs[name], flops, attention, peak, lines = _captured_run(sample_fn, model)
        result = results[name]
        result.gflops = flops / 1e9
        result.attention_gflops = attention / 1e9
        result.peak_mem_mb = peak / 2 ** 20
        result.log = lines
        if progress is not None:
            progress.update()
    for _ in range(repeats):
        for name, model in variants:
            start = time.perf_counter()
            sample_fn(model)
            results[name].times.append(time.perf_counter() - start)
            if progress is not None:
                progress.update()

    reference = outputs[BASELINE]
    reference_pixels = decode_fn(reference) if decode_fn is not None else None
    base = results[BASELINE]
    base.median_s = statistics.median(base.times)
    for name, result in results.items():
        result.median_s = statistics.median(result.times)
        result.speedup = base.median_s / result.median_s
        result.psnr_latent = metrics.psnr(outputs[name], reference)
        result.ssim_latent = metrics.ssim(outputs[name], reference)
        result.work_skipped = 1.0 - result.gflops / base.gflops
        if reference_pixels is not None:
            pixels = decode_fn(outputs[name])
            result.psnr_pixels = metrics.psnr(pixels, reference_pixels)
            result.ssim_pixels = metrics.ssim(pixels, reference_pixels)
    return [results[name] for name, _ in variants]


def _psnr_text(psnr, decimals):
    return "inf" if math.isinf(psnr) else f"{psnr:.{decimals}f}"


def _name_width(names):
    """Width of the variant column: the longest name, never cut (a cut "identity 0.25" reads as 0.2)."""
    return max(len("variant"), *(len(name) for name in names))


def format_table(title, results):
    """A fixed-width text table of one benchmark case."""
    width = _name_width(r.name for r in results)
    header = f"{'variant':{width}s} {'median s':>9s} {'speedup':>8s} {'PSNR dB':>8s} {'SSIM':>6s} {'GFLOPs':>8s} " \
             f"{'attn GF':>8s} {'skipped':>8s} {'peak MB':>8s}"
    lines = [title, header, "-" * len(header)]
    for r in results:
        psnr = _psnr_text(r.psnr_latent, 2)
        lines.append(f"{r.name:{width}s} {r.median_s:9.3f} {r.speedup:7.2f}x {psnr:>8s} {r.ssim_latent:6.3f} "
                     f"{r.gflops:8.2f} {r.attention_gflops:8.3f} {100 * r.work_skipped:7.1f}% {r.peak_mem_mb:8.1f}")
        for line in r.log[-1:]:
            lines.append(f"    log: {line}")
    return "\n".join(lines)


def format_summary(title, cases, column_key):
    """One row per variant, one column per case (the cases must share their variants, e.g. one technique on several
    inputs): speedup, latent PSNR and FLOPs skipped, so one technique's behaviour across inputs reads at a glance."""
    names = [r.name for r in cases[0]["results"]]
    if any([r.name for r in case["results"]] != names for case in cases):
        raise ValueError("format_summary needs cases with the same variants")
    width = _name_width(names)
    header = (f"{'variant':{width}s}" + "".join(f" {str(case[column_key]):>22s}" for case in cases)
              + f" {'median speedup':>15s} {'worst dB':>9s} {'median dB':>10s}")
    lines = [title + " (speedup / PSNR dB / FLOPs skipped)", header, "-" * len(header)]
    for row, name in enumerate(names):
        cells = []
        results = [case["results"][row] for case in cases]
        for r in results:
            psnr = _psnr_text(r.psnr_latent, 1)
            skipped = "n/a" if math.isnan(r.work_skipped) else f"{100 * r.work_skipped:.0f}%"  # flex: uncounted
            cells.append(f"{r.speedup:.2f}x / {psnr} / {skipped}")
        psnrs = [r.psnr_latent for r in results]
        speedup = statistics.median(r.speedup for r in results)
        lines.append(f"{name:{width}s}" + "".join(f" {cell:>22s}" for cell in cells)
                     + f" {speedup:14.2f}x {_psnr_text(min(psnrs), 1):>9s} "
                       f"{_psnr_text(statistics.median(psnrs), 1):>10s}")
    return "\n".join(lines)


def plot(cases, path):
    """Speed/quality scatter, one panel per case: speedup on x, latent PSNR on y (identical outputs drawn on top)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(4, len(cases))
    rows = math.ceil(len(cases) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 4.5 * rows), squeeze=False)
    for ax in axes.flat[len(cases):]:
        ax.set_visible(False)
    for ax, case in zip(axes.flat, cases):
        finite = [r.psnr_latent for r in case["results"] if not math.isinf(r.psnr_latent)]
        ceiling = (max(finite) if finite else 40.0) + 5.0
        for r in case["results"]:
            y = ceiling if math.isinf(r.psnr_latent) else r.psnr_latent
            ax.scatter(r.speedup, y)
            ax.annotate(r.name, (r.speedup, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.axhline(ceiling, color="grey", lw=0.5, ls=":")
        ax.set_title(case["title"], fontsize=9)
        ax.set_xlabel("speedup vs baseline (x)")
        ax.set_ylabel("latent PSNR vs baseline (dB; top line = identical)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
