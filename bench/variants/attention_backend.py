"""Bench variants of FreeAccel_AttentionBackend: each available backend against ComfyUI's global attention."""
FAMILIES = ("wan21", "flux", "sd15")
STEPS = 10


def _with_backend(backend):
    def apply(model):
        import nodes  # ComfyUI's node registry (the runtime is booted before variants are applied)
        return nodes.NODE_CLASS_MAPPINGS["FreeAccel_AttentionBackend"].execute(model, backend).result[0]
    return apply


def variants(family):
    return [(f"AttentionBackend {backend}", _with_backend(backend)) for backend in ("sdpa", "flex", "auto")]
