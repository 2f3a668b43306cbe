"""Per-sampling-run state, kept the way core EasyCache keeps it, and each model's record of its last run.

An OUTER_SAMPLE wrapper creates the state at the start of every sampler run, on a copy of the guider's model_options
(so neither the patched model nor its clones ever hold it), puts it under the technique's key in transformer_options
where every hook of that run finds it, and in ``finally`` finishes it and drops it. What ``finish()`` returns is the
run's record: it is kept in a ``RunRecord`` attachment of the ModelPatcher that was sampled. A clone gets a record of
its own, so two clones of one patched model sampled in one graph never share one.
"""
from typing import Any, Callable, Optional

import comfy.model_patcher
import comfy.patcher_extension
from comfy.model_patcher import ModelPatcher

OUTER_SAMPLE = comfy.patcher_extension.WrappersMP.OUTER_SAMPLE


class RunRecord:
    """ModelPatcher attachment: what the last finished sampler run of one technique on this patcher recorded."""

    def __init__(self) -> None:
        self.last = None

    def on_model_patcher_clone(self) -> "RunRecord":
        return RunRecord()  # a clone has not run yet


def record_key(key: str) -> str:
    """The attachment key of technique ``key``'s RunRecord."""
    return f"{key}_record"


class RunHook:
    """OUTER_SAMPLE wrapper: ``start(model_sampling, sample_sigmas)`` makes the state of each sampler run. It holds
    nothing between runs."""

    def __init__(self, key: str, start: Callable[[Any, Any], Any]):
        self.key, self.start = key, start

    def __call__(self, executor, *args, **kwargs):
        guider = executor.class_obj
        original = guider.model_options
        state = None
        try:
            guider.model_options = comfy.model_patcher.create_model_options_clone(original)
            sampling = guider.model_patcher.get_model_object("model_sampling")
            state = self.start(sampling, args[3])  # outer_sample(noise, latent_image, sampler, sigmas, ...)
            guider.model_options.setdefault("transformer_options", {})[self.key] = state
            return executor(*args, **kwargs)
        finally:
            guider.model_options = original
            if state is not None:
                record = state.finish()
                holder = guider.model_patcher.get_attachment(record_key(self.key))
                if holder is not None:
                    holder.last = record


def install_run_hook(model: ModelPatcher, key: str, start: Callable[[Any, Any], Any]) -> RunHook:
    """Add a RunHook and an empty RunRecord under ``key`` to ``model`` (a cloned ModelPatcher); returns the hook."""
    hook = RunHook(key, start)
    model.add_wrapper_with_key(OUTER_SAMPLE, key, hook)
    model.set_attachments(record_key(key), RunRecord())
    return hook


def run_state(transformer_options: Optional[dict], key: str) -> Any:
    """The state of the run in progress (None outside a sampler run, e.g. a model call made by another node)."""
    return transformer_options.get(key) if transformer_options else None


def last_run(model: ModelPatcher, key: str) -> Any:
    """What the last finished run of technique ``key`` on ``model`` (the patched clone that was sampled) recorded;
    None before its first run."""
    holder = model.get_attachment(record_key(key))
    if holder is None:
        raise KeyError(f"{key} is not installed on this model")
    return holder.last
