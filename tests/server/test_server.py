"""ComfyUI's own server with the pack installed, checked over HTTP and the websocket as the web frontend uses them."""
import json
import os
import re

from server_client import REPO_ROOT, Session, bundled_workflows, get_json, load_workflow, run

NODE_SCHEMAS = os.path.join(REPO_ROOT, "tests", "data", "node_schemas.json")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
STEPS = 20
LONG_STEPS = 10000  # the interrupted run: far longer than the time the interrupt takes to land


def startup_lines(server):
    return [ANSI.sub("", line) for line in server.startup_log.splitlines()]


def test_pack_imports_without_error_lines(server):
    lines = startup_lines(server)
    pack_dir = server.pack_dir()
    import_lines = [line for line in lines if line.rstrip().endswith(pack_dir)]
    assert len(import_lines) == 1 and re.match(r"^\s*[\d.]+ seconds: ", re.sub(r"^\[\w+\]\s*", "", import_lines[0])), \
        f"ComfyUI's import-time list does not show the pack loaded: {import_lines}\n{server.startup_log}"
    failures = [line for line in lines if "IMPORT FAILED" in line or line.startswith("Traceback")]
    assert not failures, f"import failures in the server log:\n{server.startup_log}"
    # Every other line that mentions the pack is a message it logged while loading: there should be none.
    mentions = [line for line in lines if "freeaccel" in line.lower() and line not in import_lines
                and "freeaccel_test_nodes" not in line]
    assert not mentions, "the pack logged while loading:\n" + "\n".join(mentions)


def test_object_info_lists_every_node_with_tooltips(server):
    object_info = get_json(server, "/object_info")
    with open(NODE_SCHEMAS, encoding="utf-8") as schemas:
        expected = set(json.load(schemas))
    listed = {node_id for node_id in object_info if node_id.startswith("FreeAccel_")}
    assert listed == expected, f"/object_info FreeAccel nodes {sorted(listed)} != the schema snapshot {sorted(expected)}"
    missing = []
    for node_id in sorted(listed):
        inputs = object_info[node_id]["input"]
        for section in ("required", "optional"):
            for name, spec in inputs.get(section, {}).items():
                options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                if not str(options.get("tooltip", "")).strip():
                    missing.append(f"{node_id}.{name}")
    assert not missing, f"inputs without a tooltip in /object_info: {missing}"


def test_workflow_templates_lists_every_bundled_workflow(server):
    templates = get_json(server, "/api/workflow_templates")
    pack_folder = os.path.basename(server.pack_dir())
    assert sorted(templates.get(pack_folder, [])) == bundled_workflows(), \
        f"/api/workflow_templates: {templates}; workflows/ holds {bundled_workflows()}"
    for name in bundled_workflows():  # the frontend fetches each template from this route when it is opened
        assert get_json(server, f"/api/workflow_templates/{pack_folder}/{name}.json") == load_workflow(name), name


def tiny_wan_prompt(object_info, steps, nonce):
    """UNETLoader (the test nodes' tiny WAN file) -> FreeAccel_AdaCache (defaults, preset fast_30) -> ModelNonce -> KSampler ->
    FreeAccelTest_LatentHash. The nonce re-runs the sampler with the same (cached) AdaCache model object."""
    unet_files = object_info["UNETLoader"]["input"]["required"]["unet_name"]
    choices = unet_files[0] if isinstance(unet_files[0], list) else unet_files[1]["options"]
    assert "freeaccel_tiny_wan21.safetensors" in choices, f"the test nodes' tiny WAN is not listed: {choices}"
    adacache = {name: spec[1]["default"] for name, spec in
                object_info["FreeAccel_AdaCache"]["input"]["required"].items() if name != "model"}
    adacache["preset"] = "fast_30"  # the preset that reuses most, so that cached state exists when interrupted
    text = {"tokens": 16, "dim": 4096, "pooled_dim": 0}
    return {
        "1": {"class_type": "UNETLoader",
              "inputs": {"unet_name": "freeaccel_tiny_wan21.safetensors", "weight_dtype": "default"}},
        "2": {"class_type": "FreeAccel_AdaCache", "inputs": {**adacache, "model": ["1", 0]}},
        "3": {"class_type": "FreeAccelBench_ModelNonce", "inputs": {"model": ["2", 0], "nonce": nonce}},
        "4": {"class_type": "FreeAccelBench_TinyConditioning", "inputs": {"text": "a fox in snow", **text}},
        "5": {"class_type": "FreeAccelBench_TinyConditioning", "inputs": {"text": "blurry", **text}},
        "6": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 128, "height": 96, "length": 9,
                                                                 "batch_size": 1}},
        "7": {"class_type": "KSampler", "inputs": {"model": ["3", 0], "seed": 7, "steps": steps, "cfg": 3.0,
                                                   "sampler_name": "euler", "scheduler": "simple",
                                                   "positive": ["4", 0], "negative": ["5", 0],
                                                   "latent_image": ["6", 0], "denoise": 1.0}},
        "8": {"class_type": "FreeAccelTest_LatentHash", "inputs": {"samples": ["7", 0]}},
    }


def latent_hash(server, prompt_id):
    outputs = get_json(server, f"/history/{prompt_id}")[prompt_id]["outputs"]
    return outputs["8"]["sha256"][0]


def test_prompt_runs_is_interrupted_and_runs_again_identically(server):
    object_info = get_json(server, "/object_info")

    async def scenario():
        async with Session(server) as session:
            fresh_id = await session.queue(tiny_wan_prompt(object_info, STEPS, nonce=1))
            fresh = await session.wait_finished(fresh_id)

            long_id = await session.queue(tiny_wan_prompt(object_info, LONG_STEPS, nonce=2))
            while True:  # interrupt once the sampler reports a step
                kind, data = await session.next_message(long_id)
                assert kind not in ("execution_success", "execution_error"), (kind, data)
                if kind == "progress" and data.get("node") == "7":
                    break
            await session.interrupt()
            interrupted = await session.wait_finished(long_id)

            again_id = await session.queue(tiny_wan_prompt(object_info, STEPS, nonce=3))
            again = await session.wait_finished(again_id)
        return (fresh_id, fresh), (long_id, data, interrupted), (again_id, again)

    (fresh_id, fresh), (long_id, progress, interrupted), (again_id, again) = run(scenario())

    assert fresh[-1][0] == "execution_success", fresh[-1]
    # Newer servers throttle progress messages, so not every step is reported; the last one always is.
    steps_seen = [(data["value"], data["max"]) for kind, data in fresh if kind == "progress" and data.get("node") == "7"]
    values = [value for value, _ in steps_seen]
    assert steps_seen and values == sorted(set(values)) and steps_seen[-1] == (STEPS, STEPS) \
        and all(total == STEPS for _, total in steps_seen), f"KSampler progress on the websocket: {steps_seen}"
    computed = [int(n) for n in re.findall(rf"AdaCache: computed (\d+) of {STEPS} steps", server.log_text())]
    assert computed and computed[0] < STEPS, f"AdaCache reused no step of the fresh run (computed {computed} of {STEPS})"

    assert progress["max"] == LONG_STEPS and progress["value"] < LONG_STEPS
    assert interrupted[-1][0] == "execution_interrupted", interrupted[-1]
    assert interrupted[-1][1].get("node_id") == "7", interrupted[-1]
    status = get_json(server, f"/history/{long_id}")[long_id]["status"]
    assert status["completed"] is False, status

    assert again[-1][0] == "execution_success", again[-1]
    assert latent_hash(server, again_id) == latent_hash(server, fresh_id), \
        "the run after the interrupt differs from the fresh run on the same AdaCache model"
