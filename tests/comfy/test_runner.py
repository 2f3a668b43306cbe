"""The headless runner and the bench framework, on tiny models inside the session's ComfyUI."""
import json
import math

import pytest
import torch

from bench import run
from devtools.harness import tiny_workflow
from devtools.workflows.builder import Workflow
from devtools.workflows.ui_format import node_schemas_from_comfy


@pytest.fixture(scope="module")
def tiny_nodes(comfy_rt):
    from devtools.harness import tiny_nodes  # imports ComfyUI's API: only after boot
    tiny_nodes.register()
    return tiny_nodes


@pytest.fixture(scope="module")
def bench_nodes(comfy_rt, tiny_nodes):
    return comfy_rt


def test_tiny_bench_default_is_the_quick_subset_and_full_is_everything(comfy_rt):
    def selected(*flags):
        return [(technique, family) for technique, _, family in run._tiny_cases(run.parse_args(["--bench", "--tiny",
                                                                                                 *flags]))]
    assert sorted(selected()) == sorted(run.QUICK)
    everything = selected("--full")
    assert set(run.QUICK) < set(everything) and {t for t, _ in everything} == set(run.TECHNIQUES)
    assert selected("--techniques", "adacache") == [p for p in everything if p[0] == "adacache"]
    assert selected("--families", "sd15") == [p for p in everything if p[1] == "sd15"]


def test_tiny_bench_writes_table_json_and_png(bench_nodes, tmp_path, capsys):
    args = run.parse_args(["--bench", "--tiny", "--techniques", "attention_backend", "--families", "wan21",
                           "--steps", "2", "--repeats", "1", "--out", str(tmp_path)])
    cases = run.bench_tiny(args)
    run.write_report(cases, args)
    table = capsys.readouterr().out
    assert "attention_backend on tiny wan21" in table and "AttentionBackend sdpa" in table
    report = json.loads((tmp_path / "bench.json").read_text())
    (case,) = report["cases"]
    names = [r["name"] for r in case["results"]]
    assert names == ["baseline", "AttentionBackend sdpa", "AttentionBackend flex", "AttentionBackend auto"]
    baseline = case["results"][0]
    assert baseline["psnr_latent"] == "inf" and baseline["speedup"] == 1.0 and baseline["gflops"] > 0
    for result in case["results"][1:]:
        assert result["psnr_latent"] == "inf" or result["psnr_latent"] > 60  # same maths, another kernel
        if result["gflops"] is None:  # torch's FLOP counter cannot trace flex attention
            assert result["name"].endswith("flex") and "FLOPs not countable" in result["log"][-1]
        else:
            assert math.isclose(result["gflops"], baseline["gflops"], rel_tol=1e-6)
    assert (tmp_path / "bench.png").stat().st_size > 1000


def _wan_workflow(schemas):
    wf = Workflow(schemas)
    unet = wf.add("UNETLoader", unet_name="wan2.1_t2v_1.3B_fp16.safetensors")
    clip = wf.add("CLIPLoader", clip_name="umt5_xxl_fp8_e4m3fn_scaled.safetensors", type="wan")
    vae = wf.add("VAELoader", vae_name="wan_2.1_vae.safetensors")
    backend = wf.add("FreeAccel_AttentionBackend", backend="sdpa")
    positive = wf.add("CLIPTextEncode", text="a red ball rolls")
    negative = wf.add("CLIPTextEncode", text="")
    latent = wf.add("EmptyHunyuanLatentVideo", width=832, height=480, length=33)
    sampler = wf.add("KSampler", steps=2, cfg=4.0)
    decode = wf.add("VAEDecode")
    save = wf.add("SaveAnimatedWEBP", filename_prefix="freeaccel_test")
    wf.link(unet, 0, backend, "model")
    wf.link(clip, 0, positive, "clip")
    wf.link(clip, 0, negative, "clip")
    wf.link(backend, 0, sampler, "model")
    wf.link(positive, 0, sampler, "positive")
    wf.link(negative, 0, sampler, "negative")
    wf.link(latent, 0, sampler, "latent_image")
    wf.link(sampler, 0, decode, "samples")
    wf.link(vae, 0, decode, "vae")
    wf.link(decode, 0, save, "images")
    return wf.to_ui()


def test_tiny_workflow_run_goes_through_the_real_executor(bench_nodes, tmp_path):
    import nodes
    path = tmp_path / "wan.json"
    path.write_text(json.dumps(_wan_workflow(node_schemas_from_comfy(nodes.NODE_CLASS_MAPPINGS))))
    args = run.parse_args(["--workflow", str(path), "--tiny"])
    outputs = run.run_workflow(bench_nodes, args)
    (saved,) = [ui for ui in outputs.values() if "images" in ui]
    assert saved["images"][0]["filename"].startswith("freeaccel_test")


def test_tiny_prompt_rewrite(bench_nodes):
    import nodes
    from devtools.workflows.ui_format import workflow_to_prompt
    schemas = node_schemas_from_comfy(nodes.NODE_CLASS_MAPPINGS)
    prompt = tiny_workflow.tiny_prompt(workflow_to_prompt(_wan_workflow(schemas), schemas), bench_nodes.base_dir)
    kinds = sorted(node["class_type"] for node in prompt.values())
    assert "CLIPLoader" not in kinds and "VAELoader" not in kinds and "CLIPTextEncode" not in kinds
    assert kinds.count("FreeAccelBench_TinyConditioning") == 2
    latent = next(n for n in prompt.values() if n["class_type"] == "EmptyHunyuanLatentVideo")["inputs"]
    assert (latent["width"], latent["height"], latent["length"]) == (128, 96, 9)
    conditioning = next(n for n in prompt.values() if n["class_type"] == "FreeAccelBench_TinyConditioning")
    assert conditioning["inputs"]["dim"] == 4096


def test_tiny_prompt_rejects_families_without_a_tiny_file():
    prompt = {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors",
                                                           "weight_dtype": "default"}}}
    with pytest.raises(ValueError, match="no tiny stand-in for the model file 'flux1-dev.safetensors'"):
        tiny_workflow.tiny_prompt(prompt, "/nonexistent")


def test_latent_to_rgb_shape_and_range(tiny_nodes):
    rgb = tiny_nodes.latent_to_rgb(torch.randn(1, 16, 3, 6, 8))
    assert rgb.shape == (3, 6, 8, 3) and 0 <= rgb.min() and rgb.max() <= 1


def test_workflow_bench_compares_the_graph_with_its_pack_nodes_bypassed(bench_nodes, tmp_path, capsys):
    # the bundled workflow with the fast codebook and the paper's MoReg, which reuse steps on the random tiny WAN
    # (the bundled medium_30 with run_minimum MoReg computes every step there)
    with open("workflows/wan21_t2v_adacache.json") as f:
        workflow = json.load(f)
    (adacache,) = [node for node in workflow["nodes"] if node["type"] == "FreeAccel_AdaCache"]
    adacache["widgets_values"] = [{"medium_30": "fast_30", "run_minimum": "fixed"}.get(value, value)
                                  for value in adacache["widgets_values"]]
    path = tmp_path / "wan21_fast.json"
    path.write_text(json.dumps(workflow))
    args = run.parse_args(["--bench", "--workflow", str(path), "--tiny", "--repeats", "1", "--out", str(tmp_path)])
    (case,) = run.bench_workflow(bench_nodes, args)
    baseline, patched = case["results"]
    assert (baseline.name, patched.name) == ("baseline", "FreeAccel nodes as given")
    assert math.isinf(baseline.psnr_latent)
    assert math.isfinite(patched.psnr_latent)
    assert any("AdaCache: computed" in line for line in patched.log)
    assert not any("AdaCache" in line for line in baseline.log)
    assert patched.work_skipped > 0


@pytest.mark.once_per_matrix
def test_trained_bench_runs_each_technique_per_motion_class(bench_nodes, tmp_path, capsys):
    from bench.trained import procedural
    args = run.parse_args(["--bench", "--trained", "--train-steps", "3", "--techniques", "attention_backend",
                           "--steps", "2", "--repeats", "1", "--out", str(tmp_path)])  # UNets: TokenPrune only
    assert args.tiny  # trained models live in the bench's own base directory
    cases = run.bench_trained(bench_nodes, args)
    assert [case["motion"] for case in cases] == list(procedural.MOTION_CLASSES)
    for case in cases:
        assert case["family"] == "wan21" and case["model_file"].startswith("freeaccel_trained_wan21_")
        assert [r.name for r in case["results"]][0] == "baseline"
    out = capsys.readouterr().out
    assert "attention_backend on trained tiny wan21, static clips: 2 steps" in out
    summary = out[out.index("attention_backend on trained tiny wan21, 2 steps, cfg 3, per motion class"):]
    assert summary.splitlines()[1].split()[-4:] == ["worst", "dB", "median", "dB"]
    assert all(motion in summary.splitlines()[1] for motion in procedural.MOTION_CLASSES)
    assert summary.splitlines()[3].startswith("baseline") and "1.00x / inf / 0%" in summary.splitlines()[3]
    run.write_report(cases, args)
    assert (tmp_path / "bench.png").exists()


@pytest.mark.once_per_matrix
def test_trained_unet_bench_compares_token_prune_with_tome_per_image_class(bench_nodes, tmp_path, capsys):
    from bench.trained import procedural
    args = run.parse_args(["--bench", "--trained", "--train-steps", "2", "--techniques", "token_prune",
                           "--families", "sd15", "--steps", "2", "--repeats", "1", "--out", str(tmp_path)])
    cases = run.bench_trained(bench_nodes, args)
    assert [case["image_class"] for case in cases] == list(procedural.IMAGE_CLASSES)
    names = [r.name for r in cases[0]["results"]]
    assert names[0] == "baseline" and "TokenPrune 0.5 DSAP" in names and "core ToMe 0.5" in names
    out = capsys.readouterr().out
    table = out[out.index("**token_prune on trained tiny sd15, 2 steps, cfg 5: over 3 images"):].splitlines()
    assert table[2].startswith("| variant | FLOPs skipped | mean PSNR dB |")
    rows = {line.split(" | ")[0][2:]: line for line in table[4:] if line.startswith("| ")}
    assert set(rows) == set(names[1:])
    assert rows["core ToMe 0.5"].endswith("| (itself) |")
    tome_range = [r.work_skipped for r in cases[0]["results"] if r.name.startswith("core ToMe")]
    for name, line in rows.items():
        skipped = next(r.work_skipped for r in cases[0]["results"] if r.name == name)
        if name.startswith("TokenPrune") and min(tome_range) <= skipped <= max(tome_range):
            float(line.split(" | ")[-1].rstrip(" |"))  # interpolated ToMe PSNR, a number


def test_tome_psnr_interpolates_linearly_in_flops():
    from bench.variants import token_prune
    points = [(0.1, 40.0), (0.3, 30.0), (0.2, 36.0)]
    assert token_prune._tome_psnr_at(points, 0.15) == pytest.approx(38.0)
    assert token_prune._tome_psnr_at(points, 0.25) == pytest.approx(33.0)
    assert token_prune._tome_psnr_at(points, 0.35) is None and token_prune._tome_psnr_at(points, 0.05) is None


def test_trained_needs_bench_without_workflow():
    with pytest.raises(SystemExit):
        run.parse_args(["--trained"])
