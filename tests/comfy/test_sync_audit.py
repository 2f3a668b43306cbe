"""GPU risks caught on the CPU: host-device syncs and host tensors in each technique's hot path, counted per step.

A GPU runs ahead of Python until Python reads a value back (``.item()``, ``.tolist()``, ``bool(t)`` / ``if t``,
``float(t)``, ``nonzero``, boolean-mask indexing, ``bincount``, ``.cpu()`` / ``.numpy()``): each read waits for
all queued work, so a few per block cost more than a small kernel. On a CPU those reads are free and nothing shows
them, so ``HostReadAudit`` (a TorchFunctionMode) records them while a real ComfyUI samples a tiny model:

- which tensors would live on the device: everything except what is host-born inside the audited run, i.e. made by
  a factory call (``torch.arange``, ``torch.tensor``, ``torch.zeros`` ...) without a device, with the device
  "cpu" or with a host-born tensor's ``.device``, or computed from host-born tensors only. On a GPU run the model,
  its inputs and everything computed from them are on the GPU; such a factory call makes a CPU tensor there too.
- ``sync``: a read of a device tensor (the op is named);
- ``h2d``: a host-born tensor (or a Python list through ``torch.tensor(..., device=)``) copied to the device: a CPU
  tensor built in the hot path and a copy per call;
- ``cpu tensor``: a factory call that makes a CPU tensor on any machine.
This is the "no CPU tensor in a hot path" check too: a CPU-only run cannot fail on a device mismatch, so the audit
flags the factory calls instead.

Each event is attributed to the innermost frame outside torch: events in the pack (nodes/, accel_core/, kernels/)
are pinned below per step of a short run, as ``{"kind: file.py:function op": count}``; ComfyUI's own are not ours
to pin. A PREDICT_NOISE wrapper (one call per sampling step) marks the steps; "run" is what happens outside them
(the start and end of sampling, motion guidance). Each audit clears the pack's lru caches and runs twice, recording
only the second run: cached plans are then built inside the audit (so it knows they are CPU tensors) and the pinned
counts are the steady state, whatever ran before in the process.

The remaining syncs and host tensors are named, with what removing them would take, in the comment above each pin.
"""
import collections
import functools
import os
import sys
import weakref

import pytest
import torch
from torch.overrides import TorchFunctionMode

from devtools.harness.comfy_env import PACK_ROOT

PACK_DIRS = ("nodes", "accel_core", "kernels")
TORCH_DIR = os.path.dirname(os.path.realpath(torch.__file__))
THIS_FILE = os.path.realpath(__file__)

_T = torch.Tensor
# reads that make the host wait for the device; boolean-mask __getitem__ / __setitem__ are checked per call
READS = {_T.item: "item", _T.tolist: "tolist", _T.__bool__: "bool", _T.__float__: "float", _T.__int__: "int",
         _T.__index__: "index", _T.numpy: "numpy", _T.cpu: "cpu", _T.nonzero: "nonzero", torch.nonzero: "nonzero",
         torch.argwhere: "nonzero", _T.masked_select: "masked_select", torch.masked_select: "masked_select",
         torch.unique: "unique", _T.unique: "unique", torch.bincount: "bincount", _T.bincount: "bincount",
         _T.__format__: "format", _T.__repr__: "format"}
FACTORIES = {torch.arange, torch.zeros, torch.ones, torch.full, torch.empty, torch.tensor, torch.as_tensor,
             torch.randn, torch.rand, torch.randint, torch.randperm, torch.linspace, torch.logspace, torch.eye}
MOVES = {_T.to, _T.cuda}
INDEXING = {_T.__getitem__, _T.__setitem__}
DEVICE_ATTRIBUTE = torch._C.TensorBase.__dict__["device"]  # ``tensor.device`` reaches the mode as its __get__
STEP_KEY = "freeaccel_test_sync_audit"


@functools.lru_cache(maxsize=None)
def _pack_path(filename):
    """'accel_core/adacache.py' for a pack source file (also through the custom_nodes link), else None."""
    path = os.path.realpath(filename)
    relative = os.path.relpath(path, PACK_ROOT)
    return relative if relative.split(os.sep)[0] in PACK_DIRS else None


def _caller(func):
    """(pack-relative file or None, function name) of the innermost frame outside torch and this file that called
    ``func``."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = os.path.realpath(frame.f_code.co_filename)
        name = frame.f_code.co_name
        # comprehensions count as the function they are in (Python 3.12 inlines list comprehensions anyway), and
        # another torch-function mode (the pack's RoPE backward has one) that hands ``func`` on is not its caller
        passing_on = name == "__torch_function__" and frame.f_locals.get("func") is func
        if not filename.startswith(TORCH_DIR) and filename != THIS_FILE and not name.startswith("<") \
                and not passing_on:
            return _pack_path(filename), name
        frame = frame.f_back
    return None, "?"


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def _named_device(func, args, kwargs):
    """The device a .to() / .cuda() call names (a device, a device string or index, or a tensor), else None."""
    if func is _T.cuda:
        return "cuda"
    if kwargs.get("device") is not None:
        return kwargs["device"]
    return next((a for a in args[1:] if isinstance(a, (torch.device, str, torch.Tensor))
                 or (isinstance(a, int) and not isinstance(a, bool))), None)


def pack_caller(func):
    """'adacache.py:_l1' for ``func`` called from the pack's code, else None (see _caller)."""
    where, function = _caller(func)
    return None if where is None else f"{os.path.basename(where)}:{function}"


class HostReadAudit(TorchFunctionMode):
    """Records sync / h2d / cpu tensor events per phase (see the module doc); ``recording`` switches the recording
    off for warm-up runs while host-born tensors are still tracked."""

    def __init__(self, where=None):
        super().__init__()
        self.where = where or pack_caller  # (func) -> the label of the code that called func, or None
        self._host = {}  # id -> weakref of the host-born tensors alive
        self._host_devices = []  # the ``.device`` objects read from host-born tensors (a device arg naming the host)
        self.events = collections.defaultdict(collections.Counter)  # phase -> Counter(("kind", "where op"))
        self.moves = collections.Counter()  # (where, shape) of every .to() / .cuda() naming a device, from the pack
        self.phase = "run"
        self.recording = True

    def is_host(self, tensor):
        ref = self._host.get(id(tensor))
        return ref is not None and ref() is tensor

    def _mark_host(self, tensor):
        key = id(tensor)
        self._host[key] = weakref.ref(tensor, lambda _, key=key: self._host.pop(key, None))

    def _record(self, func, kind, op):
        if not self.recording:
            return
        where = self.where(func)
        if where is not None:
            self.events[self.phase][(kind, f"{where} {op}")] += 1

    def _names_host(self, device):
        """True for no device, the string "cpu" (code that means the host says so) and the device of a host-born
        tensor; a torch.device object otherwise stands for the device the run is on."""
        return device is None or (isinstance(device, str) and device.startswith("cpu")) or any(
            device is known for known in self._host_devices) or (
            isinstance(device, torch.Tensor) and self.is_host(device))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = list(_tensors(args)) + list(_tensors(kwargs))
        on_device = [t for t in inputs if not self.is_host(t)]
        if func in READS and on_device:
            self._record(func, "sync", READS[func])
        elif func in INDEXING and on_device and any(t.dtype == torch.bool for t in _tensors(args[1])):
            self._record(func, "sync", "boolean index")
        result = func(*args, **kwargs)
        if func in MOVES and self.recording and _named_device(func, args, kwargs) is not None:
            where = self.where(func)
            if where is not None:
                self.moves[(where, tuple(args[0].shape))] += 1
        if getattr(func, "__self__", None) is DEVICE_ATTRIBUTE:
            if not on_device:
                self._host_devices.append(result)
        elif func in FACTORIES and not on_device:
            if self._names_host(kwargs.get("device")):
                self._record(func, "cpu tensor", func.__name__)
                self._mark_outputs(result)
            elif func in (torch.tensor, torch.as_tensor):
                self._record(func, "h2d", func.__name__)  # host data (a Python list) copied to the device
        elif func in MOVES and inputs and self.is_host(args[0]):
            device = _named_device(func, args, kwargs)
            if device is None or self._names_host(device):
                self._mark_outputs(result)  # a dtype change, or a move to where the tensor is
            else:
                self._record(func, "h2d", "to")
                if result is args[0]:  # the move to the CPU this runs on returned the tensor itself: tag a view
                    result = result.view_as(result)
        elif inputs and not on_device:
            self._mark_outputs(result)
        return result

    def _mark_outputs(self, result):
        for tensor in _tensors(result):
            self._mark_host(tensor)

    def step_events(self):
        """{phase: {"kind: where op": count}} of the recorded run."""
        return {phase: {f"{kind}: {name}": n for (kind, name), n in sorted(counter.items())}
                for phase, counter in self.events.items() if counter}


def _clear_pack_caches(comfy_rt):
    """Empty every lru cache of the pack's modules, so cached plans are rebuilt inside the audit."""
    for name, module in list(sys.modules.items()):
        if name.startswith(comfy_rt.pack_package + "."):
            for value in vars(module).values():
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()


def _mark_steps(model, audit):
    """A clone of ``model`` whose every sampling step (PREDICT_NOISE) is phase "step <n>" of ``audit``."""
    import comfy.patcher_extension
    marked = model.clone()
    counter = [0]

    def wrapper(executor, *args, **kwargs):
        previous, audit.phase = audit.phase, f"step {counter[0]}"
        counter[0] += 1
        try:
            return executor(*args, **kwargs)
        finally:
            audit.phase = previous

    marked.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.PREDICT_NOISE, STEP_KEY, wrapper)
    return marked, counter


def _audited(comfy_rt, run):
    """``run(audit)`` twice inside one HostReadAudit, recording the second; returns the audit."""
    _clear_pack_caches(comfy_rt)
    with HostReadAudit() as audit:
        audit.recording = False
        run(audit)
        audit.recording, audit.phase = True, "run"
        audit.events.clear()
        run(audit)
    return audit


def _sampled_events(comfy_rt, tiny, case, model, steps, cfg=1.0, reference=False):
    """Step events of ``model`` sampling ``case``; with ``reference``, also checks that the technique changed the
    output of the unpatched model (so that it ran)."""
    outputs = []

    def run(audit):
        marked, _ = _mark_steps(model, audit)
        outputs.append(tiny.sample(case, model=marked, steps=steps, cfg=cfg, seed=0))
    events = _audited(comfy_rt, run).step_events()
    if reference:
        assert not torch.equal(outputs[-1], tiny.sample(case, steps=steps, cfg=cfg, seed=0))
    return events


def _node(node_id, model, **inputs):
    from bench.real_shapes import apply_node
    return apply_node(node_id, model, **inputs)


# ---------------------------------------------------------------------------------------------------------------
# the audit itself


def test_audit_classifies_reads_moves_and_factories(comfy_rt):
    """The audit's own rules on hand-made calls: reads of device tensors are syncs, reads of host-born ones not."""
    device_tensor = torch.ones(3) * 2  # made before the audit: stands for a model input on the device
    with HostReadAudit() as audit:
        _hand_made_calls(device_tensor)
    assert audit.step_events() == {}  # this file is not pack code: nothing is attributed to the pack
    with HostReadAudit(where=lambda func: "probe") as audit:
        _hand_made_calls(device_tensor)
    assert audit.step_events() == {"run": {
        "cpu tensor: probe arange": 1,
        "h2d: probe to": 1,
        "sync: probe bool": 1,
        "sync: probe boolean index": 1,
        "sync: probe item": 1,
        "sync: probe tolist": 1,
    }}


def _hand_made_calls(device_tensor):
    host = torch.arange(3)                     # cpu tensor
    host.tolist(), bool(host.sum() > 0)        # host reads: no sync
    moved = host.to(device_tensor.device)      # h2d
    moved.sum().item()                         # sync (item): the moved tensor is on the device
    device_tensor.tolist()                     # sync
    bool(device_tensor.sum() > 0)              # sync (bool)
    device_tensor[device_tensor > 2]           # sync (boolean index)
    device_tensor[host]                        # integer index: no sync


# ---------------------------------------------------------------------------------------------------------------
# per technique, on tiny models at cfg 1 (one model call per step, batch 1); each test also checks that the
# technique changed the output, so a count of zero cannot come from a technique that never ran

# One read of the call's sigma per model call (nodes/integration/steps.py call_sigma), in every technique that
# decides by sampling progress (AdaCache, TemporalAttnPrune, TokenPrune's DSAP, Local Window's step range): the
# decision is taken on the host and ComfyUI hands the sigma over on the device. Kept: one wait per model call is
# small against a real model call, and the alternative (counting steps on the host) breaks on samplers that call
# the model several times per step.
CALL_SIGMA = {"sync: steps.py:call_sigma float": 1}


def _plus(*parts):
    total = collections.Counter()
    for part in parts:
        total.update(part)
    return dict(sorted(total.items()))


def test_adacache_syncs_per_step(comfy_rt, tiny):
    case = tiny.build("wan21")
    model = _node("FreeAccel_AdaCache", case.patcher, preset="custom", custom_codebook="1000:3", moreg=True,
                  moreg_reference="fixed")
    # 6 steps: 0-1 computed (forced), 2-3 reused, 4-5 computed (forced last two)
    events = _sampled_events(comfy_rt, tiny, case, model, steps=6)
    # Per run: the schedule is read into host floats one sigma at a time, steps + 1 reads (nodes/adacache.py
    # _RunContext.__init__); one sample_sigmas.tolist() would make it one.
    run = {"sync: adacache.py:__init__ float": 7}
    # Per computed step, one .item() per L1 sum of the metric residual (accel_core/adacache.py _l1): MoReg's three
    # motion sums, and from the second computed step on the change and reference sums against the previous step.
    # The codebook decision is taken on the host, so one read per computed step is needed, five are not: the sums
    # stacked into one tensor and read with one .tolist() (observe_metric / motion_terms) would make it one.
    first, computed = {"sync: adacache.py:_l1 item": 3}, {"sync: adacache.py:_l1 item": 5}
    assert events == {"run": run, "step 0": _plus(CALL_SIGMA, first), "step 1": _plus(CALL_SIGMA, computed),
                      "step 2": CALL_SIGMA, "step 3": CALL_SIGMA, "step 4": _plus(CALL_SIGMA, computed),
                      "step 5": _plus(CALL_SIGMA, computed)}


def test_adacache_offload_moves_exactly_the_cache(comfy_rt, tiny):
    """With offload on, the pack moves to the CPU exactly the cached residuals: per computed step and chunk the stack
    residual and the metric residual, nothing else. Each is a device-to-host copy into pageable memory, which the
    host waits for (two per chunk per computed step); pinned buffers with non_blocking=True would make them async."""
    case = tiny.build("wan21")  # cfg 3: cond and uncond in one batch of 2, two chunks of 144 tokens x 128

    def run_with(offload):
        model = _node("FreeAccel_AdaCache", case.patcher, preset="custom", custom_codebook="1000:3",
                      offload=offload)
        outputs = []
        audit = _audited(comfy_rt, lambda _: outputs.append(tiny.sample(case, model=model, steps=6, cfg=3.0)))
        return audit.moves, outputs[-1]

    offloaded, offloaded_out = run_with(True)
    kept, kept_out = run_with(False)
    computed_steps, chunks, per_chunk = 4, 2, 2
    assert offloaded - kept == {("adacache.py:_stored", (1, 144, 128)): computed_steps * chunks * per_chunk}
    assert kept - offloaded == {}  # the moves back (to the activations' device) happen either way
    assert torch.equal(offloaded_out, kept_out)


def test_attention_backend_adds_no_sync(comfy_rt, tiny):
    case = tiny.build("wan21")
    model = _node("FreeAccel_AttentionBackend", case.patcher, backend="sdpa")
    assert _sampled_events(comfy_rt, tiny, case, model, steps=2) == {}


# The frame id of every token is built on the CPU once per model call (TokenLayout.frame_ids_for ->
# accel_core/temporal_prune.py frame_ids without a device: an arange and two fulls) and moved to the device by every
# attention call that uses it. Building it on the call's device, once per layout, would remove both.
FRAME_IDS = {"cpu tensor: temporal_prune.py:frame_ids arange": 1, "cpu tensor: temporal_prune.py:frame_ids full": 2}


def _temporal_prune_events(comfy_rt, tiny, family, steps):
    """Step 0 calibrates, the later steps prune half of the units (identity mode)."""
    case = tiny.build(family)
    model = _node("FreeAccel_TemporalAttnPrune", case.patcher, ratio=0.5, mode="identity", start_percent=0.0,
                  calibration_steps=1)
    return _sampled_events(comfy_rt, tiny, case, model, steps=steps, reference=True)


def test_temporal_prune_dit_syncs_per_step(comfy_rt, tiny):
    # 4 blocks x 2 heads = 8 units; ratio 0.5 prunes 4 heads, in 3 of the 4 blocks here
    events = _temporal_prune_events(comfy_rt, tiny, "wan21", steps=3)
    # Calibration (step 0), per self-attention call (4): the frame ids and the sampled query rows moved to the
    # device (kernels/scoring.py frame_pair_mass, _rows; sample_queries builds its rows on the CPU: 3 frames x 1
    # arange), a boolean index dropping the non-video rows (frame_pair_mass: a sync; the rows are known on the host
    # before the move), and the unit scores read back with .tolist() (TemporalScores.add: a sync per call; summing
    # on the device and reading once when the pruned set is frozen would leave one per run).
    calibrate = {"cpu tensor: temporal_prune.py:sample_queries arange": 12, "h2d: scoring.py:_rows to": 4,
                 "h2d: scoring.py:frame_pair_mass to": 8, "sync: scoring.py:frame_pair_mass boolean index": 4,
                 "sync: temporal_prune.py:add tolist": 4}
    # Pruned steps, per attention call with a pruned head (3): frame_attention moves the frame ids to the device
    # and _frame_groups (kernels/frame_attention.py) reads five values back to group the tokens by frame: the text
    # count (.item()), bincount, the equal-size check (bool), the frame size (.item()) and a boolean index. All five
    # follow from the layout (prefix, frames, tokens per frame, suffix) that the host already knows: passing the
    # groups from the TokenLayout, or caching them per layout and device, would leave no sync.
    pruned = {"h2d: frame_attention.py:frame_attention to": 3, "sync: frame_attention.py:_frame_groups bincount": 3,
              "sync: frame_attention.py:_frame_groups bool": 3,
              "sync: frame_attention.py:_frame_groups boolean index": 3,
              "sync: frame_attention.py:_frame_groups item": 6}
    assert events == {"step 0": _plus(CALL_SIGMA, FRAME_IDS, calibrate),
                      "step 1": _plus(CALL_SIGMA, FRAME_IDS, pruned), "step 2": _plus(CALL_SIGMA, FRAME_IDS, pruned)}


def test_svd_temporal_prune_syncs_per_step(comfy_rt, tiny):
    events = _temporal_prune_events(comfy_rt, tiny, "svd", steps=2)  # 7 time_stack attention modules
    # Calibration, per temporal module (7): the scored rows and frame indices built on the CPU (nodes/temporal_prune.py
    # score_module: three aranges without a device) and moved (score_module, frame_pair_mass), then the boolean
    # index and the .tolist() of the DiT path above. Building them with device=x.device removes the moves; the two
    # syncs go as described for the DiTs. A pruned step (identity) reads nothing.
    calibrate = {"cpu tensor: temporal_prune.py:score_module arange": 21, "h2d: scoring.py:frame_pair_mass to": 14,
                 "h2d: temporal_prune.py:score_module to": 7, "sync: scoring.py:frame_pair_mass boolean index": 7,
                 "sync: temporal_prune.py:add tolist": 7}
    assert events == {"step 0": _plus(CALL_SIGMA, calibrate), "step 1": CALL_SIGMA}


def test_token_prune_unet_syncs_per_step(comfy_rt, tiny):
    case = tiny.build("sd15")
    model = _node("FreeAccel_TokenPrune", case.patcher, ratio=0.5, dsap="on", min_tokens=64)
    # Token selection, merging and refill run on the device without a read: only DSAP's sigma, once per model call
    # (nodes/token_prune.py _DsapRun.early keeps the answer for the call's sigmas tensor, shared by every stage).
    assert _sampled_events(comfy_rt, tiny, case, model, steps=2, reference=True) == {
        "step 0": CALL_SIGMA, "step 1": CALL_SIGMA}


def test_token_prune_dit_syncs_per_step(comfy_rt, tiny):
    case = tiny.build("wan21")
    model = _node("FreeAccel_TokenPrune", case.patcher, ratio=0.5, dsap="on", min_tokens=16)
    assert _sampled_events(comfy_rt, tiny, case, model, steps=2, reference=True) == {
        "step 0": CALL_SIGMA, "step 1": CALL_SIGMA}


def test_local_window_syncs_per_step(comfy_rt, tiny):
    case = tiny.build("wan21", frames=5)
    model = _node("FreeAccel_LocalWindowAttention", case.patcher, frames=1, height=3, width=3)
    # No read, but per self-attention call (4 blocks) the cached CPU plan of the tiled window is copied to the device
    # four times (kernels/local_window.py _tiled: token_slot, other, and per chunk the query and key indices). The
    # plan is built once per layout (lru cache); caching it per device as well would remove the copies.
    assert _sampled_events(comfy_rt, tiny, case, model, steps=2, reference=True) == {
        "step 0": _plus(CALL_SIGMA, {"h2d: local_window.py:_tiled to": 16}),
        "step 1": _plus(CALL_SIGMA, {"h2d: local_window.py:_tiled to": 16})}


def _motion_guided_events(comfy_rt, tiny, iterations):
    """Events of one run whose first step is guided with ``iterations`` FastVMT iterations, each a recompute."""
    import comfy.samplers
    from comfy_extras import nodes_custom_sampler as custom
    from bench.variants.motion_transfer import moving_reference

    case = tiny.build("wan21", frames=5)
    reference = moving_reference(case.latent.shape)
    settings = comfy_rt.pack_module("accel_core.motion_transfer").MotionTransferSettings(
        cfg=1.0, mode="fastvmt", guided_steps=1, iterations=iterations, recompute_every=1)
    guider_module = comfy_rt.pack_module("nodes.motion_guider")
    outputs = []

    def run(audit):
        marked, _ = _mark_steps(case.patcher, audit)
        guider = guider_module.motion_transfer_guider(marked, case.positive, case.negative, {"samples": reference},
                                                      settings)
        sigmas = custom.BasicScheduler.execute(guider.model_patcher, "simple", 2, 0.75).args[0]
        with torch.inference_mode():
            outputs.append(custom.SamplerCustomAdvanced.execute(
                custom.Noise_RandomNoise(0), guider, comfy.samplers.sampler_object("euler"), sigmas,
                {"samples": reference}).args[0]["samples"])
    events = _audited(comfy_rt, run).step_events()
    return events, outputs[-1]


def test_motion_guider_syncs_per_iteration(comfy_rt, tiny):
    (one, first), (two, second) = (_motion_guided_events(comfy_rt, tiny, n) for n in (1, 2))
    assert not torch.equal(first, second)
    # Guidance runs outside the sampler's steps ("run"); the sampler's own steps read nothing of ours.
    # Per guided step: the reference flow (below, once), the reference noise drawn on the CPU with the seed's
    # generator and moved (nodes/motion_guider.py guide: as ComfyUI draws its noise, so it does not depend on the
    # device), the sigma read for the log line (guide: float(sigma)), and torch AdamW's step counter, which torch
    # keeps on the CPU on purpose (created in optimize_latent's first optimizer.step()).
    per_step = {"cpu tensor: motion_guider.py:guide randn": 1, "h2d: motion_guider.py:guide to": 1,
                "sync: motion_guider.py:guide float": 1, "cpu tensor: motion_transfer.py:optimize_latent tensor": 1}
    # Per flow of the 5-frame video (the reference once per guided step, the latent once per recompute iteration):
    # 9 windowed frame pairs (span 4), each building its tile starts and slots on the CPU (kernels/amf.py _tiles:
    # two aranges; window_pair_flow: two aranges) and moving two index tensors to the device (window_pair_flow).
    # Building them with device=device would remove the copies; no value is read.
    per_flow = {"cpu tensor: amf.py:_tiles arange": 18, "cpu tensor: amf.py:window_pair_flow arange": 18,
                "h2d: amf.py:window_pair_flow to": 18}
    # Per recompute iteration, the loss read for the loss history (accel_core/motion_transfer.py optimize_latent:
    # loss.item()); keeping the losses on the device and reading them once after the loop would leave one per step.
    # And the pair weights, a Python list copied to the device per loss (pair_weights: torch.tensor(list, device));
    # they depend only on the pairs and settings, so they could be made once per guided step.
    per_iteration = _plus(per_flow, {"sync: motion_transfer.py:optimize_latent item": 1,
                                     "h2d: motion_transfer.py:pair_weights tensor": 1})
    assert one == {"run": _plus(per_step, per_flow, per_iteration)}
    assert two == {"run": _plus(per_step, per_flow, per_iteration, per_iteration)}


@pytest.mark.cuda
@pytest.mark.parametrize("node_id, inputs", [
    ("FreeAccel_AdaCache", {"preset": "custom", "custom_codebook": "1000:3", "moreg": True}),
    ("FreeAccel_TemporalAttnPrune", {"ratio": 0.5, "start_percent": 0.0, "calibration_steps": 1}),
    ("FreeAccel_LocalWindowAttention", {"frames": 1, "height": 3, "width": 3}),
])
def test_audit_matches_the_syncs_cuda_reports(comfy_rt, tiny, node_id, inputs):
    """On a GPU the audit's sync count equals the synchronisations torch reports from the pack's files
    (torch.cuda.set_sync_debug_mode "warn" names the Python frame that made each)."""
    import warnings

    if not torch.cuda.is_available() or comfy_rt.device == "cpu":
        pytest.skip("needs ComfyUI running on a CUDA device")
    case = tiny.build("wan21", frames=5)
    model = _node(node_id, case.patcher, **inputs)
    audit = _audited(comfy_rt, lambda _: tiny.sample(case, model=model, steps=4, cfg=1.0))
    predicted = sum(n for counter in audit.events.values() for (kind, _), n in counter.items() if kind == "sync")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            tiny.sample(case, model=model, steps=4, cfg=1.0)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    reported = [f"{_pack_path(w.filename)}:{w.lineno}" for w in caught
                if "synchroniz" in str(w.message) and _pack_path(w.filename)]
    assert len(reported) == predicted, (sorted(reported), audit.step_events())
