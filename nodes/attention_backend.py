"""FreeAccel_AttentionBackend: choose the attention implementation for one model."""
from typing import Optional

from comfy_api.v0_0_2 import io
import comfy.model_management

from ..accel_core.attention_backend import COMFY_DEFAULT, AttentionBackendSettings
from ..kernels.attention import resolve_backend
from .integration.attention import BACKEND_KEY, set_attention_backend
from .integration.install import apply, technique
from .integration.schema import settings_inputs, settings_validator

KEY = BACKEND_KEY  # owner of the pass-through handler; its transformer_options entry is the chosen backend
NAME = "Attention Backend"  # the node's display name, the prefix of its messages


def _device_error(settings: AttentionBackendSettings) -> Optional[str]:
    """Why this machine cannot run the chosen backend, or None."""
    if settings.backend == COMFY_DEFAULT:
        return None
    try:
        resolve_backend(settings.backend, comfy.model_management.get_torch_device())
    except ValueError as err:
        return str(err)
    return None


def _install(installer, settings, family):
    chosen = None if settings.backend == COMFY_DEFAULT else resolve_backend(settings.backend,
                                                                            installer.patcher.load_device)
    set_attention_backend(installer.patcher, chosen, KEY)


TECHNIQUE = technique(KEY, NAME, AttentionBackendSettings, _install)


def apply_attention_backend(model, settings: AttentionBackendSettings):
    """A clone of ModelPatcher ``model`` whose attention runs on ``settings.backend`` (a backend name is accepted
    too), in place of any earlier choice."""
    if isinstance(settings, str):
        settings = AttentionBackendSettings(backend=settings)
    return apply(TECHNIQUE, model, settings)


class AttentionBackendNode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FreeAccel_AttentionBackend",
            display_name=NAME,
            category="FreeAccel/attention",
            description="Chooses the attention implementation for this model only (a cloned model with an attention "
                        "override), instead of ComfyUI's global choice. Other FreeAccel nodes that change attention "
                        "compute through the backend chosen here, wherever this node sits in the chain.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model to patch (a patched clone is returned)."),
                *settings_inputs(AttentionBackendSettings),
            ],
            outputs=[io.Model.Output(tooltip="The model with the chosen attention backend.")],
        )

    validate_inputs = settings_validator(AttentionBackendSettings, NAME, _device_error)

    @classmethod
    def execute(cls, model, backend):
        return io.NodeOutput(apply_attention_backend(model, AttentionBackendSettings(backend=backend)))


NODES = [AttentionBackendNode]
