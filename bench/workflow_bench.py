"""Benchmark a workflow on real weights: the graph as given against the same graph with its FreeAccel nodes bypassed.

One executor with ComfyUI's normal output cache runs every variant, so loaders and text encoders run once; a
FreeAccelBench_ModelNonce node in front of the sampler changes per run, which re-runs only the sampling part; a
FreeAccelBench_CaptureLatent node keeps the sampler's output. Wall time therefore covers sampling (plus the cheap
nonce/capture nodes), not model loading.
"""
import asyncio
import copy
import itertools
import uuid

from bench.benchmark import BASELINE

PACK_PREFIX = "FreeAccel_"
SAMPLERS = ("KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced")


def _links_to(prompt, node_id):
    """(consumer id, input name) pairs fed by any output of ``node_id``."""
    return [(cid, name) for cid, node in prompt.items() for name, value in node["inputs"].items()
            if isinstance(value, list) and len(value) == 2 and str(value[0]) == str(node_id)]


def bypass_pack_nodes(prompt):
    """The prompt with every FreeAccel MODEL -> MODEL node removed and its consumers fed by its own model input."""
    prompt = copy.deepcopy(prompt)
    for node_id in [i for i, n in prompt.items() if n["class_type"].startswith(PACK_PREFIX)]:
        source = prompt[node_id]["inputs"].get("model")
        if source is None:
            raise ValueError(f"cannot bypass {prompt[node_id]['class_type']}: it has no model input")
        for consumer, name in _links_to(prompt, node_id):
            prompt[consumer]["inputs"][name] = list(source)
        del prompt[node_id]
    return prompt


class WorkflowBench:
    def __init__(self, runtime, prompt):
        import execution
        from devtools.harness.comfy_env import HeadlessServer
        from devtools.harness.compat import executor_cache_args

        self.runtime = runtime
        pack_nodes = [i for i, n in prompt.items() if n["class_type"].startswith(PACK_PREFIX)]
        if not pack_nodes:
            raise ValueError("the workflow has no FreeAccel node to compare against its unpatched graph")
        samplers = [i for i, n in prompt.items() if n["class_type"] in SAMPLERS]
        if len(samplers) != 1:
            raise ValueError(f"benchmarking needs exactly one sampler node ({', '.join(SAMPLERS)}), "
                             f"found {len(samplers)}")
        self.prompt = prompt
        self.sampler = samplers[0]
        self.executor = execution.PromptExecutor(HeadlessServer(), cache_type=execution.CacheType.CLASSIC,
                                                 cache_args=executor_cache_args())
        self._nonces = itertools.count(1)

    def variants(self):
        return [(BASELINE, self._instrument(bypass_pack_nodes(self.prompt))),
                ("FreeAccel nodes as given", self._instrument(self.prompt))]

    def _instrument(self, prompt):
        """Add the nonce in front of every consumer of a MODEL that reaches the sampler, and the latent capture."""
        prompt = copy.deepcopy(prompt)
        model_sources = {tuple(node["inputs"]["model"]) for node in prompt.values()
                         if isinstance(node["inputs"].get("model"), list)}
        for index, source in enumerate(sorted(model_sources)):
            nonce_id = f"freeaccel_nonce_{index}"
            for node in list(prompt.values()):
                if tuple(node["inputs"].get("model") or ()) == source:
                    node["inputs"]["model"] = [nonce_id, 0]
            prompt[nonce_id] = {"class_type": "FreeAccelBench_ModelNonce",
                                "inputs": {"model": list(source), "nonce": 0}}
        prompt["freeaccel_capture"] = {"class_type": "FreeAccelBench_CaptureLatent",
                                       "inputs": {"samples": [self.sampler, 0], "key": "bench"}}
        return prompt

    def sample(self, prompt):
        import execution
        from devtools.harness.tiny_nodes import CAPTURED

        prompt = copy.deepcopy(prompt)
        nonce = next(self._nonces)
        for node in prompt.values():
            if node["class_type"] == "FreeAccelBench_ModelNonce":
                node["inputs"]["nonce"] = nonce
        prompt_id = str(uuid.uuid4())
        valid, error, _, node_errors = asyncio.run(execution.validate_prompt(prompt_id, prompt, None))
        if not valid:
            raise RuntimeError(f"benchmark prompt failed validation: {error} {node_errors}")
        self.executor.execute(prompt, prompt_id, extra_data={}, execute_outputs=["freeaccel_capture"])
        if not self.executor.success:
            raise RuntimeError(f"benchmark run failed: {self.executor.status_messages}")
        return CAPTURED["bench"]

    def decode_fn(self):
        """Pixel decoding with the workflow's own VAE, or None when the graph has none we can load."""
        import nodes
        vae = None
        for node in self.prompt.values():
            if node["class_type"] == "VAELoader":
                vae = nodes.VAELoader().load_vae(node["inputs"]["vae_name"])[0]
            elif node["class_type"] == "CheckpointLoaderSimple":
                vae = nodes.CheckpointLoaderSimple().load_checkpoint(node["inputs"]["ckpt_name"])[2]
        if vae is None:
            return None

        def decode(latent):  # [..., H, W, 3] images -> [N, 3, H, W] for the metrics
            pixels = vae.decode(latent)
            return pixels.reshape(-1, *pixels.shape[-3:]).movedim(-1, 1)
        return decode
