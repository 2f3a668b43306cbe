"""Bench-only ComfyUI nodes (never shipped): stand-ins that let a bundled workflow run with tiny random models, and
helpers for timing real-weight workflows.

``--tiny`` runs rewrite a workflow's prompt so that the diffusion model file is a tiny random model of the same
family, text encoding is replaced by seeded random conditioning of the width that model expects, VAE decoding by a
fixed latent-to-RGB projection, and latent sizes are shrunk. Everything else in the graph (our node, the sampler,
save nodes) runs unchanged through ComfyUI's real executor.
"""
import hashlib

import torch
from comfy_api.v0_0_2 import io

# Captured outputs of FreeAccelBench_CaptureLatent, by capture key.
CAPTURED = {}


def _text_seed(text):
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


class TinyConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FreeAccelBench_TinyConditioning", category="FreeAccelBench",
            inputs=[io.String.Input("text", multiline=True, tooltip="Seeds the random conditioning."),
                    io.Int.Input("tokens", default=16, min=1, max=512, tooltip="Text length."),
                    io.Int.Input("dim", default=4096, min=1, max=8192, tooltip="Text width the model expects."),
                    io.Int.Input("pooled_dim", default=0, min=0, max=4096, tooltip="Pooled width (0: none).")],
            outputs=[io.Conditioning.Output()])

    @classmethod
    def execute(cls, text, tokens, dim, pooled_dim):
        generator = torch.Generator().manual_seed(_text_seed(text))
        extra = {}
        if pooled_dim:
            extra["pooled_output"] = torch.randn(1, pooled_dim, generator=generator)
        return io.NodeOutput([[torch.randn(1, tokens, dim, generator=generator), extra]])


class TinyDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FreeAccelBench_TinyDecode", category="FreeAccelBench",
            inputs=[io.Latent.Input("samples", tooltip="Latent to turn into RGB frames.")],
            outputs=[io.Image.Output()])

    @classmethod
    def execute(cls, samples):
        return io.NodeOutput(latent_to_rgb(samples["samples"]))


def latent_to_rgb(latent):
    """A fixed projection of latent channels to RGB in [0, 1]: [B, C, (T,) H, W] -> [B*T, H, W, 3]."""
    x = latent.float()
    if x.ndim == 5:
        x = x.movedim(2, 1).flatten(0, 1)
    weights = torch.randn(3, x.shape[1], generator=torch.Generator().manual_seed(0)) / x.shape[1] ** 0.5
    rgb = torch.einsum("rc,bchw->bhwr", weights, x)
    return torch.sigmoid(rgb)


class ModelNonce(io.ComfyNode):
    """Passes the model through; a changed nonce makes the executor re-run everything downstream of it only."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FreeAccelBench_ModelNonce", category="FreeAccelBench",
            inputs=[io.Model.Input("model", tooltip="Model to pass through."),
                    io.Int.Input("nonce", default=0, min=0, max=2 ** 31, tooltip="Changed per timed run.")],
            outputs=[io.Model.Output()])

    @classmethod
    def execute(cls, model, nonce):
        return io.NodeOutput(model)


class CaptureLatent(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FreeAccelBench_CaptureLatent", category="FreeAccelBench", is_output_node=True,
            inputs=[io.Latent.Input("samples", tooltip="Latent to keep for comparison."),
                    io.String.Input("key", default="out", tooltip="Capture slot.")],
            outputs=[])

    @classmethod
    def execute(cls, samples, key):
        CAPTURED[key] = samples["samples"].clone()
        return io.NodeOutput()


NODES = [TinyConditioning, TinyDecode, ModelNonce, CaptureLatent]


def register():
    """Add the bench nodes to ComfyUI's registry (once booted); they are not part of the pack."""
    import nodes
    for node in NODES:
        nodes.NODE_CLASS_MAPPINGS[node.GET_SCHEMA().node_id] = node
