"""What each image/video DiT family of issue 23 (ComfyUI 0.33's models of 2026) honours, read from the ComfyUI
sources (0.3.75 at /work/venv/comfyui-0.3.75, 0.8.0 and 0.33.0 under /work/shared/comfyui) and pinned by
``tests/comfy/test_tiny_models_2026.py`` on the tiny models of ``devtools.harness.tiny_models``. The facts are data,
in ``family_facts_2026.json`` beside this module (image DiTs first, then video DiTs); this module only loads them,
with the standard library (the tests read them at collection time, before ComfyUI boots).

``FACTS[family]``, one entry per tiny builder (``tiny_models.build(family)``), every field given (JSON arrays become
tuples):

- ``name``: what users call it. ``config_class``: the ``comfy.supported_models`` class the builder uses (ComfyUI's
  detection picks it for a real checkpoint); ``model_base``: the ``comfy.model_base`` class it builds;
  ``diffusion_model``: ``module.Class`` of ``model.diffusion_model``.
- ``min_comfyui``: the first of the three checked versions (0.3.75, 0.8.0, 0.33.0) whose
  ``comfy.supported_models`` has ``config_class``. On older ones the builder raises ``MissingModelClass`` naming it.
- ``blocks``: the block ``nn.ModuleList`` attribute(s) of the diffusion model, in call order, each mapped to the
  ``patches_replace["dit"]`` key kind that wraps its blocks (``(kind, index)``) or to None where it has none.
- ``dit_args``: the keys of the args dict a ``patches_replace["dit"]`` replacement receives, per key kind (the set
  common to every version that has the class; newer versions may add keys, see ``notes``). ``dit_stream``: the
  args key that carries the token stream(s) the replacement returns.
- ``dit_from`` / ``diffusion_model_wrapper_from`` / ``attention_override_from``: the first checked version from which
  the dit replacement, the ``WrappersMP.DIFFUSION_MODEL`` wrapper and ``optimized_attention_override`` (the model
  passes ``transformer_options`` to ``optimized_attention``) reach the model; None: never (in 0.33).
- ``object_patch``: for a model whose blocks have no dit hook (or a broken one), the block lists to reach through
  ``ModelPatcher.add_object_patch("diffusion_model.<list>.<i>", module)``, one patch per block (the model iterates
  the list, so the patched module is called in place of the block, with the block's own arguments); None where the
  dit hook serves.
- ``tokens``: the token layout. ``joint``: the order of the streams inside a joint attention (or the one packed
  sequence); ``video``: how the latent becomes tokens; ``extra``: reference / audio / pose / motion tokens.
- ``notes``: what a technique must know beyond the fields.

Which tests a ComfyUI version can run: ``test_tiny_models_2026`` parametrises each per-family test only over the
families whose ``min_comfyui`` is at most the running version (0.3.75: 13 families, 0.8.0: 16, 0.33.0: all 26);
the refusal of the others is tested on every version.
"""
import json
from pathlib import Path


def _tuples(value):
    """The loaded JSON with its arrays as tuples, so that no user of the shared facts can change them."""
    if isinstance(value, list):
        return tuple(_tuples(item) for item in value)
    if isinstance(value, dict):
        return {key: _tuples(item) for key, item in value.items()}
    return value


FACTS = _tuples(json.loads(Path(__file__).with_suffix(".json").read_text(encoding="utf-8")))
