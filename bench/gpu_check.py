"""The one-command GPU check: the suite's CUDA tests, every technique at real shapes per dtype and attention backend,
and each technique's output on the GPU against its CPU result at a small shape, in one run that fits the few minutes
a GPU machine is lent for.

    python -m bench.gpu_check [--dry-run] [--out DIR] [--budget-s 300] [--repeats 2] [--skip-tests]

Steps, each recorded in ``gpu_check.json`` and ``gpu_check.md`` (in ``--out``; default ``$OUT`` when set, else
``bench/out/gpu_check``), written again after every step so a run cut short still leaves its results:

1. setup: Python, torch, CUDA device, the ComfyUI tree (``--comfyui``, ``$COMFYUI_PATH`` or the carried
   ``.device_carry/comfyui``, see ``devtools/device_carry.py``), the carried wheels this machine lacks (installed with
   pip into ``.device_carry/site``, which goes on ``sys.path``), the import-only stand-ins for packages too large to
   carry (``.device_carry/shims``, used only when the real package is absent), and the usable attention backends.
2. ``python -m pytest -m cuda tests`` in a subprocess (the tests that skip without CUDA).
3. exactness at a small shape: tiny models of the real classes in float32 (TF32 off), each technique once on the GPU
   and once in a CPU subprocess (``--cpu-reference``); the relative error of each output next to the unpatched
   model's own GPU-vs-CPU error, and on CUDA the device syncs per run (``torch.cuda.set_sync_debug_mode``) of the
   technique next to the unpatched model's.
4. real shapes with random weights (``bench.real_shapes`` builds them), in bfloat16 and float16: WAN 2.1 1.3B at 30
   blocks, 480p x 21 latent frames (21 x 30 x 52 tokens); SDXL at 1024^2; Flux at full width (3072) with 2 double + 2
   single blocks at 1024^2. Per attention backend (sdpa; flash = SDPA restricted to its FlashAttention kernel;
   xformers and sage where they import), the unpatched model on that backend (FreeAccel_AttentionBackend) and every
   technique applied on it: seconds per model call (sampling at cfg 1 is one call per step; stateful techniques run
   their short schedules of ``bench.real_shapes``), peak GPU memory above what was allocated before the run, both
   against the unpatched model on the same backend; plus the unpatched model on ComfyUI's own attention. Medians of
   ``--repeats`` runs after one warm-up run, interleaved. Groups run in order until ``--budget-s`` would be
   exceeded by the next one's estimate (scaled by how the groups so far compared with theirs); the rest are listed as
   not run. On one H200 the whole check should take about 7 minutes.

``--dry-run`` walks every step on the CPU: setup checks, the CUDA tests collected (not run), the exactness step
(CPU against the CPU subprocess), the full list of real-shape groups with their shapes and estimated cost, each
group's code path executed once at a tiny shape in float32 on the backends usable here (one run per variant, its
time reported), and the report.
"""
import argparse
import dataclasses
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from contextlib import contextmanager, nullcontext

from devtools.device_carry import DEFAULT_OUT as CARRY, wheel_project
from devtools.harness.comfy_env import BENCH_RUNTIME, PACK_ROOT, boot, find_comfyui

JSON_NAME, MARKDOWN_NAME = "gpu_check.json", "gpu_check.md"
BACKENDS = ("sdpa", "flash", "xformers", "sage")
DTYPES = ("bf16", "fp16")
# An estimate of sustained dense half-precision throughput on one H200 (35% of its 989 TFLOP/s peak), for the plan.
H200_FLOPS = 0.35 * 989e12
BUILD_S_PER_PARAMETER = 10e-9  # random initialisation on the CPU (tiny_models.init_weights_) and the copy to the GPU
SDXL_CALL_FLOPS = 6.5e12  # one SDXL UNet call at 1024^2, batch 1 (a rough figure: its convolutions are not modelled)
TECHNIQUES = ("token_prune", "temporal_prune", "local_window", "adacache")
WAN_FULL = dict(frames=21, blocks=30)
FLUX_BLOCKS = dict(double_blocks=2, single_blocks=2)


@dataclasses.dataclass
class Group:
    """One real-shape measurement: a model at a dtype, the unpatched model and every technique on one backend."""
    family: str
    dtype: str
    backend: str
    shape: object  # bench.real_shapes.Shape
    estimate_s: float = math.nan

    @property
    def name(self):
        return f"{self.shape.name} {self.dtype} {self.backend}"


# ---------------------------------------------------------------------------------------------------------------
# setup


def _default_out():
    return os.environ.get("OUT") or os.path.join(PACK_ROOT, "bench", "out", "gpu_check")


def _installed(project):
    try:
        importlib.metadata.distribution(project)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def prepare_imports(carry=CARRY, install=True):
    """Put the carried packages this Python lacks within reach; returns what was found and done.

    Wheels of missing distributions are installed (pip, no index, no dependencies: the carry holds the closure) into
    ``<carry>/site``; shims for absent packages go on sys.path after everything else. Both paths are also exported in
    PYTHONPATH for subprocesses. With ``install`` False (the dry run) only the plan is returned.
    """
    wheels_dir, site, shims = (os.path.join(carry, name) for name in ("wheels", "site", "shims"))
    wheels = sorted(name for name in os.listdir(wheels_dir) if name.endswith(".whl")) if os.path.isdir(
        wheels_dir) else []
    missing = [name for name in wheels if not _installed(wheel_project(name))]
    report = {"carry": carry if os.path.isdir(carry) else None, "wheels": len(wheels), "missing": missing,
              "installed": [], "shims": []}
    manifest = os.path.join(carry, "manifest.json")
    if os.path.isfile(manifest):  # what devtools/device_carry.py left out of the carried wheels, and the sizes
        with open(manifest) as file:
            saved = json.load(file)
        report.update(stripped=saved.get("stripped"), carried_mib=saved.get("total_bytes", 0) / 2 ** 20)
    if missing and install:
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                               "--target", site, *[os.path.join(wheels_dir, name) for name in missing]],
                              capture_output=True, text=True)
        report["installed"] = missing if done.returncode == 0 else []
        if done.returncode != 0:  # the imports may still work; the boot says if they do not
            report["install_error"] = done.stderr[-2000:]
    paths = [site] if os.path.isdir(site) else []
    if os.path.isdir(shims):
        absent = [name for name in sorted(os.listdir(shims)) if importlib.util.find_spec(name) is None]
        report["shims"] = absent
        if absent:
            paths.append(shims)
    for path in paths:
        if path not in sys.path:
            sys.path.append(path)
    if paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), *paths]))
    return report


def comfyui_path(explicit=None):
    found = find_comfyui(explicit)
    carried = os.path.join(CARRY, "comfyui")
    if found is None and os.path.isfile(os.path.join(carried, "nodes.py")):
        found = carried
    if found is None:
        raise SystemExit("No ComfyUI found: pass --comfyui PATH, set COMFYUI_PATH, or run "
                         "python -m devtools.device_carry")
    return found


def environment():
    import torch
    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}
    for module in ("xformers", "sageattention", "triton"):
        info[module] = importlib.metadata.version(module) if _installed(module) else None
    return info


def usable_backends(runtime, device):
    """{backend: None if usable on ``device``, else why not} for BACKENDS (flash: SDPA's FlashAttention kernel)."""
    available = runtime.pack_module("kernels.attention").available_backends(device)
    return {name: available["sdpa"] if name == "flash" else available[name] for name in BACKENDS}


@contextmanager
def backend_context(backend):
    """flash: SDPA limited to its FlashAttention kernel (a call it cannot take raises); others: nothing."""
    if backend != "flash":
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        yield


def node_backend(backend):
    """The FreeAccel_AttentionBackend choice a backend row runs on."""
    return "sdpa" if backend == "flash" else backend


# ---------------------------------------------------------------------------------------------------------------
# step 2: the CUDA tests


def run_cuda_tests(comfy_path, out, dry_run):
    """``pytest -m cuda`` in a subprocess (collect only in the dry run); its summary line and junit counts."""
    junit = os.path.join(out, "cuda_tests.xml")
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", "tests"]
    command += ["--collect-only"] if dry_run else [f"--junitxml={junit}"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=PACK_ROOT, capture_output=True, text=True,
                          env=dict(os.environ, COMFYUI_PATH=comfy_path))
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    result = {"command": " ".join(command[1:]), "returncode": done.returncode, "seconds": time.perf_counter() - start,
              "summary": lines[-1] if lines else done.stderr.strip()[-300:]}
    if dry_run:
        result["collected"] = [line for line in lines if "::" in line]
    else:
        result["output_tail"] = "\n".join(lines[-30:])
    return result


# ---------------------------------------------------------------------------------------------------------------
# step 3: exactness and syncs at a small shape

# (name, family, build overrides, node id or None for the unpatched model, node inputs, steps)
SMALL_CASES = (
    ("wan21 unpatched", "wan21", {"frames": 5}, None, {}, 3),
    ("wan21 AttentionBackend sdpa", "wan21", {"frames": 5}, "FreeAccel_AttentionBackend", {"backend": "sdpa"}, 3),
    ("wan21 AdaCache forced reuse", "wan21", {"frames": 5}, "FreeAccel_AdaCache",
     {"preset": "custom", "custom_codebook": "1000:3", "moreg": True}, 6),
    ("wan21 TemporalAttnPrune 0.5", "wan21", {"frames": 5}, "FreeAccel_TemporalAttnPrune",
     {"ratio": 0.5, "start_percent": 0.0, "calibration_steps": 1}, 3),
    ("wan21 TokenPrune 0.5", "wan21", {"frames": 5}, "FreeAccel_TokenPrune",
     {"ratio": 0.5, "dsap": "off", "min_tokens": 16}, 3),
    ("wan21 LocalWindow 1x3x3", "wan21", {"frames": 5}, "FreeAccel_LocalWindowAttention",
     {"frames": 1, "height": 3, "width": 3}, 3),
    ("sdxl unpatched", "sdxl", {}, None, {}, 3),
    ("sdxl TokenPrune 0.5", "sdxl", {}, "FreeAccel_TokenPrune", {"ratio": 0.5, "dsap": "off", "min_tokens": 64}, 3),
    ("flux unpatched", "flux", {}, None, {}, 3),
    ("flux AdaCache forced reuse", "flux", {}, "FreeAccel_AdaCache",
     {"preset": "custom", "custom_codebook": "1000:3"}, 6),
    ("flux TokenPrune 0.5", "flux", {}, "FreeAccel_TokenPrune", {"ratio": 0.5, "dsap": "off", "min_tokens": 16}, 3),
)


def small_outputs(count_syncs=False):
    """{name: (output latent on the CPU, device syncs of the run or None)} of every SMALL_CASES entry, sampled on
    the device ComfyUI runs on, in float32."""
    import torch
    from bench.real_shapes import apply_node
    from devtools.harness import tiny_models

    results = {}
    for name, family, overrides, node_id, inputs, steps in SMALL_CASES:
        case = tiny_models.build(family, **overrides)
        model = case.patcher if node_id is None else apply_node(node_id, case.patcher, **inputs)
        with torch.inference_mode(), _sync_counter(count_syncs) as syncs:
            out = tiny_models.sample(case, model=model, steps=steps, cfg=1.0, seed=0)
        results[name] = (out.float().cpu(), syncs.get("count"))
    return results


@contextmanager
def _sync_counter(enabled):
    """Counts the CUDA synchronisations torch reports (set_sync_debug_mode "warn") in the block: {"count": n}."""
    found = {}
    if not enabled:
        yield found
        return
    import torch
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield found
        finally:
            torch.cuda.set_sync_debug_mode("default")
    found["count"] = sum("synchroniz" in str(w.message) for w in caught)


@contextmanager
def exact_float32():
    """TF32 off for matmuls and convolutions (the GPU-vs-CPU comparison is in true float32)."""
    import torch
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def cpu_reference(comfy_path, path):
    """Write the SMALL_CASES outputs of a ComfyUI booted on the CPU to ``path`` (run in a subprocess)."""
    import torch
    boot(comfy_path, BENCH_RUNTIME, extra_args=("--cpu",))
    torch.save({name: out for name, (out, _) in small_outputs().items()}, path)


def exactness(comfy_path, out, on_cuda):
    """Step 3: each small case on this process's device against the CPU subprocess's result."""
    import torch
    reference_path = os.path.join(out, "cpu_reference.pt")
    subprocess.run([sys.executable, "-m", "bench.gpu_check", "--cpu-reference", reference_path,
                    "--comfyui", comfy_path], cwd=PACK_ROOT, check=True)
    reference = torch.load(reference_path)
    with exact_float32():
        outputs = small_outputs(count_syncs=on_cuda)
    rows = []
    for name, family, _, node_id, _, steps in SMALL_CASES:
        got, syncs = outputs[name]
        expected = reference[name]
        error = ((got - expected).abs().max() / expected.abs().max().clamp(min=1e-12)).item()
        rows.append({"case": name, "family": family, "steps": steps, "relative_max_error": error,
                     "syncs": syncs})
    for row in rows:  # the unpatched model's own device-vs-CPU error and syncs, for comparison
        floor = next(r for r in rows if r["family"] == row["family"] and r["case"].endswith("unpatched"))
        row["unpatched_error"] = floor["relative_max_error"]
        row["unpatched_syncs"] = floor["syncs"]
    return rows


# ---------------------------------------------------------------------------------------------------------------
# step 4: real shapes


def real_shape(family, tiny=False):
    """The real-shape case of ``family`` (``tiny``: the same layout at a size a CPU runs in seconds)."""
    from bench import real_shapes as rs
    if family == "wan21":
        if tiny:
            return rs.wan21_shape(5, height=16, width=24, blocks=2, dim=256, ffn_dim=512, text_tokens=16)
        return rs.wan21_shape(WAN_FULL["frames"], blocks=WAN_FULL["blocks"])
    if family == "sdxl":
        if tiny:
            return rs.sdxl_shape(64, 64, model_channels=32, num_head_channels=32, transformer_depth=[0, 0, 1, 1, 1, 1],
                                 transformer_depth_middle=1, transformer_depth_output=[0, 0, 0, 1, 1, 1, 1, 1, 1])
        return rs.sdxl_shape()
    if tiny:
        return rs.flux_shape(32, 32, double_blocks=1, single_blocks=1, hidden=256, text_tokens=16)
    return rs.flux_shape(**FLUX_BLOCKS)


def technique_variants(family):
    """bench.real_shapes' variants of TECHNIQUES for ``family``, without its "on SDPA" copies (here every variant
    runs on each backend's model)."""
    from bench import real_shapes as rs
    selection = rs.Selection(techniques=TECHNIQUES, families=(family,), token_prune_ratios=(0.5,))
    return [variant for variant in rs.variants(selection, family) if not variant.on_sdpa]


def call_flops(shape):
    """Estimated FLOPs of one model call of ``shape`` (projections, MLPs and attention; embeddings left out)."""
    config = shape.unet_config
    if shape.family == "sdxl":
        return SDXL_CALL_FLOPS * (shape.latent[-1] * shape.latent[-2]) / 128 ** 2
    text = shape.text_tokens
    if shape.family == "wan21":
        frames, height, width = shape.latent[2:]
        tokens, dim = frames * (height // 2) * (width // 2), config["dim"]
        per_block = (2 * tokens * (6 * dim * dim + 2 * dim * config["ffn_dim"]) + 4 * text * dim * dim
                     + 4 * tokens * tokens * dim + 4 * tokens * text * dim)
        return per_block * config["num_layers"]
    tokens, dim = (shape.latent[-1] // 2) * (shape.latent[-2] // 2) + text, config["hidden_size"]
    per_block = 2 * tokens * 12 * dim * dim + 4 * tokens * tokens * dim
    return per_block * (config["depth"] + config["depth_single_blocks"])


def parameters(shape):
    """Estimated parameter count of ``shape``'s diffusion model (its transformer blocks; SDXL: the published count)."""
    config = shape.unet_config
    if shape.family == "sdxl":
        return 2.57e9 * config["model_channels"] ** 2 / 320 ** 2
    if shape.family == "wan21":
        dim = config["dim"]
        return config["num_layers"] * (8 * dim * dim + 2 * dim * config["ffn_dim"])
    dim = config["hidden_size"]
    return 36 * dim * dim * config["depth"] + 15 * dim * dim * config["depth_single_blocks"]


def group_calls(family, repeats):
    """Model calls one group makes: every variant's steps (and the baseline's one), warm-up plus repeats."""
    steps = 1 + sum(variant.steps for variant in technique_variants(family))
    return steps * (1 + repeats)


def plan(repeats, usable, tiny=False):
    """Every real-shape group in run order (bfloat16 first; per dtype, backend by backend, the WAN first), with its
    estimated seconds on an H200 (model calls only; building a model once per dtype is left out)."""
    groups = []
    for dtype in DTYPES:
        built = set()
        for backend in BACKENDS:
            if usable.get(backend) is not None:
                continue
            for family in ("wan21", "sdxl", "flux"):
                group = Group(family, dtype, backend, real_shape(family, tiny))
                group.estimate_s = call_flops(group.shape) / H200_FLOPS * group_calls(family, repeats)
                if family not in built:
                    built.add(family)
                    group.estimate_s += parameters(group.shape) * BUILD_S_PER_PARAMETER
                groups.append(group)
    return groups


def dry_run_groups(groups):
    """The groups the dry run executes: the first dtype on sdpa for every family, and the WAN on every other
    backend (the other groups run the same code with other arguments)."""
    return [group for group in groups if group.dtype == DTYPES[0] and (group.backend == "sdpa"
                                                                        or group.family == "wan21")]


def _timed(sample, model, steps, backend):
    import torch
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    start = time.perf_counter()
    with backend_context(backend), torch.inference_mode():
        sample(model, steps)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated() - before) / 2 ** 20 if cuda else math.nan
    return seconds / steps, peak


def measure_group(group, case, repeats):
    """Rows of one group on ``case`` (its model built by bench.real_shapes.build): the unpatched model on the group's
    backend (and, on sdpa, on ComfyUI's own attention) and every technique on that backend; a variant that fails is
    a row with its error."""
    from bench import real_shapes as rs
    from devtools.harness import tiny_models

    base = rs.apply_node("FreeAccel_AttentionBackend", case.patcher, backend=node_backend(group.backend))
    runs = [("unpatched", "", base, 1)]
    if group.backend == "sdpa":
        runs.append(("unpatched, ComfyUI attention", "", case.patcher, 1))
    errors = {}
    for variant in technique_variants(group.family):
        try:
            runs.append((variant.name, variant.technique, rs.apply_node(variant.node_id, base, **variant.inputs),
                         variant.steps))
        except Exception as err:  # an unsupported combination is a finding, not the end of the run
            errors[variant.name] = f"{type(err).__name__}: {err}"

    def sample(model, steps):
        tiny_models.sample(case, model=model, steps=steps, cfg=1.0, seed=0)

    times, peaks = {name: [] for name, *_ in runs}, {}
    for round_index in range(1 + repeats):  # round 0 warms up and measures memory
        for name, _, model, steps in runs:
            if name in errors:
                continue
            try:
                seconds, peak = _timed(sample, model, steps, group.backend)
            except Exception as err:
                errors[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
                continue
            if round_index == 0:
                peaks[name] = peak
            if round_index > 0 or repeats == 0:  # repeats 0 (the dry run): the warm-up run's time
                times[name].append(seconds)
    base_s = statistics.median(times["unpatched"]) if times.get("unpatched") else math.nan
    rows = []
    for name, technique, _, steps in runs + [(name, "", None, 0) for name in errors if name not in times]:
        seconds = statistics.median(times[name]) if times.get(name) else math.nan
        rows.append({"group": group.name, "family": group.family, "dtype": group.dtype, "backend": group.backend,
                     "variant": name, "technique": technique, "steps": steps, "seconds_per_call": seconds,
                     "speedup": base_s / seconds if seconds else math.nan, "peak_mb": peaks.get(name, math.nan),
                     "peak_vs_unpatched": (peaks.get(name, math.nan) / peaks["unpatched"]
                                           if peaks.get("unpatched") else math.nan),
                     "error": errors.get(name)})
    return rows


# ---------------------------------------------------------------------------------------------------------------
# the report


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def _number(value, digits, suffix=""):
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else \
        f"{value:.{digits}f}{suffix}"


def format_markdown(record):
    env = record["setup"]["environment"]
    lines = [f"GPU check{' (dry run)' if record['dry_run'] else ''}: {env['device']}, torch {env['torch']} "
             f"(CUDA {env['cuda']}), Python {env['python']}, ComfyUI {record['setup'].get('comfyui_version')}; "
             f"{record['seconds'] / 60:.1f} min in all.", ""]
    tests = record.get("cuda_tests")
    if tests:
        lines += [f"CUDA tests (`{tests['command']}`): {tests['summary']}", ""]
    if record.get("exactness"):
        lines += ["Small shape, float32 (TF32 off), this device against a CPU run of the same ComfyUI: relative max "
                  "error (max |device - CPU| / max |CPU|) and device syncs per run, next to the unpatched model's.",
                  "", "| case | steps | rel. error | unpatched rel. error | syncs | unpatched syncs |",
                  "|---|---|---|---|---|---|"]
        for row in record["exactness"]:
            lines.append(f"| {row['case']} | {row['steps']} | {row['relative_max_error']:.2e} | "
                         f"{row['unpatched_error']:.2e} | {_number(row['syncs'], 0)} | "
                         f"{_number(row['unpatched_syncs'], 0)} |")
        lines.append("")
    lines += ["Real shapes, random weights, cfg 1 (one model call per step): seconds per model call and peak memory "
              "above the allocation before the run, against the unpatched model on the same backend.", "",
              "| model | dtype | backend | variant | steps | s / call | speedup | peak MB | peak vs unpatched | "
              "error |", "|---|---|---|---|---|---|---|---|---|---|"]
    for row in record.get("rows", []):
        lines.append(f"| {row['group'].rsplit(' ', 2)[0]} | {row['dtype']} | {row['backend']} | {row['variant']} | "
                     f"{row['steps']} | {_number(row['seconds_per_call'], 3)} | {_number(row['speedup'], 2, 'x')} | "
                     f"{_number(row['peak_mb'], 0)} | {_number(row['peak_vs_unpatched'], 2, 'x')} | "
                     f"{row['error'] or ''} |")
    if record.get("plan"):
        lines += ["", f"Plan: {len(record['plan'])} groups, estimated {record['estimate_s']:.0f} s on "
                      "an H200 (FLOPs at 35% of its dense half-precision peak, and building each model once per "
                      "dtype).", "",
                  "| group | latent | estimate s | measured s | status |", "|---|---|---|---|---|"]
        for group in record["plan"]:
            lines.append(f"| {group['name']} | {'x'.join(map(str, group['shape']))} | {group['estimate_s']:.1f} | "
                         f"{_number(group.get('seconds'), 1)} | {group['status']} |")
    return "\n".join(lines) + "\n"


def write_report(record, out):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, JSON_NAME), "w") as file:
        json.dump(_json_safe(record), file, indent=2)
    with open(os.path.join(out, MARKDOWN_NAME), "w") as file:
        file.write(format_markdown(record))
    return os.path.join(out, MARKDOWN_NAME)


# ---------------------------------------------------------------------------------------------------------------


def run_real_shapes(record, groups, args, save):
    """Step 4: the groups in order, each model built once per dtype; the budget check scales the estimates by how
    the groups measured so far compared with theirs. The dry run measures in float32 (no fast half precision on a
    CPU) and labels its rows so."""
    import torch
    from bench import real_shapes as rs

    executed = dry_run_groups(groups) if args.dry_run else groups
    cases, spent, estimated = {}, 0.0, 0.0
    for entry, group in zip(record["plan"], groups):
        if group not in executed:
            entry["status"] = "dry run: not executed (the same code path runs for another group)"
            continue
        scale = spent / estimated if estimated else 1.0
        if not args.dry_run and spent + scale * group.estimate_s > args.budget_s:
            entry["status"] = (f"not run: estimate {scale * group.estimate_s:.0f} s past the {args.budget_s:.0f} s "
                               "budget")
            continue
        group_start = time.perf_counter()
        dtype = torch.float32 if args.dry_run else rs.pick_dtype(group.dtype)
        if any(key[1] != dtype for key in cases):  # a new dtype: the previous one's models go
            cases.clear()
            rs.free_models()
        if (group.family, dtype) not in cases:
            cases[(group.family, dtype)] = rs.build(group.shape, dtype)
        rows = measure_group(group, cases[(group.family, dtype)], 0 if args.dry_run else args.repeats)
        for row in rows:
            row["dtype"] = str(dtype).removeprefix("torch.") + (" (dry run)" if args.dry_run else "")
        record["rows"] += rows
        entry["seconds"] = time.perf_counter() - group_start
        spent, estimated = spent + entry["seconds"], estimated + group.estimate_s
        entry["status"] = "done" if not args.dry_run else "dry run: done at a tiny shape in float32"
        save()
    cases.clear()
    rs.free_models()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="walk every step on the CPU at tiny shapes")
    parser.add_argument("--out", default=_default_out(), help="report folder (default: $OUT, else "
                                                              "bench/out/gpu_check)")
    parser.add_argument("--comfyui", help="ComfyUI tree (default: $COMFYUI_PATH, ../.., or .device_carry/comfyui)")
    parser.add_argument("--budget-s", type=float, default=300.0,
                        help="seconds the real-shape groups may take; a group whose estimate would pass it is "
                             "not started (default 300)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per variant after the warm-up "
                                                               "(default 2)")
    parser.add_argument("--skip-tests", action="store_true", help="leave out pytest -m cuda")
    parser.add_argument("--cpu-reference", help=argparse.SUPPRESS)  # internal: the CPU subprocess of step 3
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    imports = prepare_imports(install=not args.dry_run)
    comfy_path = comfyui_path(args.comfyui)
    if args.cpu_reference:
        cpu_reference(comfy_path, args.cpu_reference)
        return 0
    import logging
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    runtime = boot(comfy_path, BENCH_RUNTIME)
    import torch
    import comfyui_version
    on_cuda = torch.cuda.is_available()
    if not on_cuda and not args.dry_run:
        raise SystemExit("No CUDA device: run with --dry-run on a CPU")
    usable = usable_backends(runtime, runtime.device)
    record = {"dry_run": args.dry_run, "seconds": 0.0, "setup": {
        "environment": environment(), "imports": imports, "comfyui": comfy_path,
        "comfyui_version": getattr(comfyui_version, "__version__", None), "backends": usable}}

    def save():
        record["seconds"] = time.perf_counter() - start
        return write_report(record, args.out)

    save()
    if not args.skip_tests:
        record["cuda_tests"] = run_cuda_tests(comfy_path, args.out, args.dry_run)
        save()
    record["exactness"] = exactness(comfy_path, args.out, on_cuda)
    save()
    full = plan(args.repeats, usable)
    record["plan"] = [{"name": group.name, "shape": list(group.shape.latent), "estimate_s": group.estimate_s,
                       "status": "planned"} for group in full]
    record["estimate_s"] = sum(group.estimate_s for group in full)
    record["rows"] = []
    run_real_shapes(record, plan(args.repeats, usable, tiny=True) if args.dry_run else full, args, save)
    path = save()
    print(open(path).read())
    print(f"wrote {path} and {os.path.join(args.out, JSON_NAME)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
