"""Test-only ComfyUI custom nodes for tests/server (never part of the pack): ComfyUI's server loads this folder from
its custom_nodes next to the pack.

On load it saves a tiny random WAN 2.1 file (devtools.harness.tiny_models, real ComfyUI classes) where the real
UNETLoader finds it, and registers the bench's stand-in nodes (devtools.harness.tiny_nodes: seeded conditioning,
model nonce) plus an output node that returns the SHA-256 of a latent through /history, so a test can compare the
outputs of two runs without reading files.
"""
import hashlib
import os
import sys

import folder_paths
from comfy_api.v0_0_2 import ComfyExtension, io

# The repository root (tests/data/custom_nodes/<this>/__init__.py), for devtools. Appended, not prepended: its
# nodes/ package must not shadow ComfyUI's nodes.py.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.realpath(__file__))))))
if REPO_ROOT not in sys.path:
    sys.path.append(REPO_ROOT)

from devtools.harness import tiny_nodes  # noqa: E402
from devtools.harness.tiny_workflow import tiny_model_file  # noqa: E402

TINY_WAN_FILE, _ = tiny_model_file("wan21", folder_paths.base_path)


class LatentHash(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FreeAccelTest_LatentHash", category="FreeAccelTest", is_output_node=True,
            inputs=[io.Latent.Input("samples", tooltip="Latent whose bytes are hashed.")],
            outputs=[])

    @classmethod
    def execute(cls, samples):
        latent = samples["samples"].detach().contiguous().cpu()
        digest = hashlib.sha256(latent.numpy().tobytes()).hexdigest()
        return io.NodeOutput(ui={"sha256": [digest], "shape": list(latent.shape)})


class TestNodes(ComfyExtension):
    async def get_node_list(self):
        return [*tiny_nodes.NODES, LatentHash]


async def comfy_entrypoint():
    return TestNodes()
