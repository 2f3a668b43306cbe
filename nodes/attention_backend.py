"""FreeAccel_AttentionBackend: choose the attention implementation for one model."""
from comfy_api.v0_0_2 import io
import comfy.model_management

from ..kernels.attention import resolve_backend
from .integration.attention import set_attention_backend

COMFY_DEFAULT = "comfy_default"
CHOICES = ["auto", "sdpa", "xformers", "flex", "sage", COMFY_DEFAULT]


class AttentionBackendNode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FreeAccel_AttentionBackend",
            display_name="Attention Backend",
            category="FreeAccel/attention",
            description="Chooses the attention implementation for this model only (a cloned model with an attention "
                        "override), instead of ComfyUI's global choice. Other FreeAccel nodes that change attention "
                        "compute through the backend chosen here, wherever this node sits in the chain.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model to patch (a patched clone is returned)."),
                io.Combo.Input(
                    "backend", options=CHOICES, default="auto",
                    tooltip="auto: xformers on CUDA when installed, else PyTorch SDPA. sdpa: "
                            "torch scaled_dot_product_attention. xformers / sage: CUDA only, when installed. flex: "
                            "torch flex_attention (falls back to SDPA, with a warning, where this torch cannot run it). "
                            "comfy_default: ComfyUI's globally selected attention."),
            ],
            outputs=[io.Model.Output(tooltip="The model with the chosen attention backend.")],
        )

    @classmethod
    def validate_inputs(cls, backend):
        if backend == COMFY_DEFAULT:
            return True
        device = comfy.model_management.get_torch_device()
        try:
            resolve_backend(backend, device)
        except ValueError as err:
            return str(err)
        return True

    @classmethod
    def execute(cls, model, backend):
        return io.NodeOutput(apply_attention_backend(model, backend))


def apply_attention_backend(model, backend):
    """A clone of ModelPatcher ``model`` whose attention runs on ``backend`` (one of CHOICES)."""
    patched = model.clone()
    chosen = None if backend == COMFY_DEFAULT else resolve_backend(backend, model.load_device)
    set_attention_backend(patched, chosen)
    return patched


NODES = [AttentionBackendNode]
