"""Output fingerprints of every node on the tiny models: the recorded comparison behind "a refactor changed nothing".

    python -m bench.fingerprint before.json                      # record (e.g. in a worktree of the old commit)
    python -m bench.fingerprint after.json --compare before.json # record again and list every difference

Each case samples a tiny real-ComfyUI model through a node (called with keyword inputs, as ComfyUI calls it) and
records the SHA-256 of the output latent's bytes, so "equal" means bit-identical.
"""
import hashlib
import json

STEPS = 6
ADACACHE = dict(preset="fast_30", custom_codebook="100.0:3", metric_block=-1, moreg=False, start_percent=0.0,
                end_percent=1.0, offload=False, moreg_normaliser=0.385, moreg_exponent=8.0)
TEMPORAL = dict(ratio=0.5, mode="identity", start_percent=0.0, calibration_steps=1)
TOKEN_PRUNE = dict(ratio=0.5, dsap="on", dsap_percent=0.3, levels="auto", min_tokens=16, recovery="similarity",
                   iterations=1, score_queries=0.25, block_start=-1, block_end=-1)
WINDOW = dict(frames=1, height=3, width=5, start_block=0, end_block=-1, start_percent=0.0, end_percent=1.0,
              implementation="gathered")
GUIDER = dict(cfg=5.0, mode="fastvmt", guided_steps=2, iterations=3, lr_start=0.003, lr_end=0.002, amf_block=2,
              temporal_span=3, tile_height=3, tile_width=4, window_height=5, window_width=5, recompute_every=2)

# (name, node id, family, build overrides, inputs)
CASES = [
    ("adacache wan21 eager", "FreeAccel_AdaCache", "wan21", {}, dict(ADACACHE, preset="custom")),
    ("adacache wan21 fast+moreg", "FreeAccel_AdaCache", "wan21", {}, dict(ADACACHE, moreg=True)),
    ("adacache flux eager", "FreeAccel_AdaCache", "flux", {}, dict(ADACACHE, preset="custom")),
    ("adacache hunyuan eager", "FreeAccel_AdaCache", "hunyuan_video", {}, dict(ADACACHE, preset="custom")),
    ("adacache mochi eager", "FreeAccel_AdaCache", "mochi", {}, dict(ADACACHE, preset="custom")),
    ("temporal wan21 identity", "FreeAccel_TemporalAttnPrune", "wan21", {"frames": 5}, TEMPORAL),
    ("temporal wan21 skip", "FreeAccel_TemporalAttnPrune", "wan21", {"frames": 5}, dict(TEMPORAL, mode="skip")),
    ("temporal svd identity", "FreeAccel_TemporalAttnPrune", "svd", {"frames": 4}, TEMPORAL),
    ("temporal svd skip", "FreeAccel_TemporalAttnPrune", "svd", {"frames": 4}, dict(TEMPORAL, mode="skip")),
    ("temporal ltxv identity", "FreeAccel_TemporalAttnPrune", "ltxv", {"frames": 4}, TEMPORAL),
    ("temporal hunyuan identity", "FreeAccel_TemporalAttnPrune", "hunyuan_video", {"frames": 4}, TEMPORAL),
    ("temporal mochi identity", "FreeAccel_TemporalAttnPrune", "mochi", {"frames": 4}, TEMPORAL),
    ("token prune sd15", "FreeAccel_TokenPrune", "sd15", {}, TOKEN_PRUNE),
    ("token prune sd15 passthrough", "FreeAccel_TokenPrune", "sd15", {}, dict(TOKEN_PRUNE, recovery="passthrough")),
    ("token prune sdxl", "FreeAccel_TokenPrune", "sdxl", {}, TOKEN_PRUNE),
    ("token prune flux", "FreeAccel_TokenPrune", "flux", {}, TOKEN_PRUNE),
    ("token prune wan21", "FreeAccel_TokenPrune", "wan21", {}, TOKEN_PRUNE),
    ("token prune wan22", "FreeAccel_TokenPrune", "wan22", {}, TOKEN_PRUNE),
    ("local window wan21", "FreeAccel_LocalWindowAttention", "wan21", {"frames": 5}, WINDOW),
    ("local window hunyuan", "FreeAccel_LocalWindowAttention", "hunyuan_video", {"frames": 5}, WINDOW),
    ("local window ltxv", "FreeAccel_LocalWindowAttention", "ltxv", {"frames": 5}, WINDOW),
    ("local window mochi", "FreeAccel_LocalWindowAttention", "mochi", {"frames": 5}, WINDOW),
    ("attention backend sdpa wan21", "FreeAccel_AttentionBackend", "wan21", {}, dict(backend="sdpa")),
    ("attention backend sdpa flux", "FreeAccel_AttentionBackend", "flux", {}, dict(backend="sdpa")),
    ("motion guider wan21", "FreeAccel_MotionTransferGuider", "wan21", {"frames": 5}, GUIDER),
]


def _digest(tensor):
    return hashlib.sha256(tensor.contiguous().cpu().numpy().tobytes()).hexdigest()


def _sample_with_guider(node, case, inputs):
    import torch
    import comfy.samplers
    from comfy_extras import nodes_custom_sampler as custom

    from bench.variants.motion_transfer import moving_reference
    reference = {"samples": moving_reference(case.latent.shape)}
    guider = node.execute(case.patcher, positive=case.positive, negative=case.negative, reference=reference,
                          **inputs).result[0]
    sigmas = custom.BasicScheduler.execute(case.patcher, "simple", STEPS, 0.75).result[0]
    with torch.inference_mode():
        out = custom.SamplerCustomAdvanced.execute(custom.Noise_RandomNoise(0), guider,
                                                   comfy.samplers.sampler_object("euler"), sigmas, reference)
    return out.result[0]["samples"]


def fingerprints():
    import nodes

    from devtools.harness import tiny_models
    found = {}
    for name, node_id, family, overrides, inputs in CASES:
        node = nodes.NODE_CLASS_MAPPINGS[node_id]
        case = tiny_models.build(family, **overrides)
        if node_id == "FreeAccel_MotionTransferGuider":
            out = _sample_with_guider(node, case, inputs)
        else:
            model = node.execute(case.patcher, **inputs).result[0]
            out = tiny_models.sample(case, model=model, steps=STEPS)
        found[name] = _digest(out)
    return found


def main(argv=None):
    import argparse
    import tempfile

    from devtools.harness.comfy_env import boot, find_comfyui
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="JSON file to write the fingerprints to")
    parser.add_argument("--compare", help="an earlier fingerprint file: print every case that differs")
    args = parser.parse_args(argv)
    boot(find_comfyui(), tempfile.mkdtemp(prefix="freeaccel-fingerprint-"))
    import torch
    torch.set_num_threads(1)  # thread count changes reduction order, hence bits
    found = fingerprints()
    with open(args.out, "w") as file:
        json.dump(found, file, indent=1)
    if args.compare:
        with open(args.compare) as file:
            before = json.load(file)
        differing = [name for name in found if before.get(name) != found[name]]
        print(f"{len(found) - len(differing)} of {len(found)} cases bit-identical")
        for name in differing:
            print(f"  differs: {name}")
        raise SystemExit(1 if differing else 0)


if __name__ == "__main__":
    main()
