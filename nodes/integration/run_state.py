"""Per-sampling-run state, kept the way core EasyCache keeps it.

An OUTER_SAMPLE wrapper creates the state at the start of every sampler run, on a copy of the guider's model_options
(so neither the patched model nor its clones ever hold it), puts it under the technique's key in transformer_options
where every hook of that run finds it, and in ``finally`` finishes it and drops it. What ``finish()`` returns is kept
as ``last_run``: the record the log, the tests and the bench read.
"""
import comfy.model_patcher
import comfy.patcher_extension

OUTER_SAMPLE = comfy.patcher_extension.WrappersMP.OUTER_SAMPLE


class RunHook:
    """OUTER_SAMPLE wrapper: ``start(model_sampling, sample_sigmas)`` makes the state of each sampler run."""

    def __init__(self, key, start):
        self.key, self.start = key, start
        self.current = None  # the state while a run lasts (for hooks that get no transformer_options)
        self.last_run = None

    def __call__(self, executor, *args, **kwargs):
        guider = executor.class_obj
        original = guider.model_options
        try:
            guider.model_options = comfy.model_patcher.create_model_options_clone(original)
            sampling = guider.model_patcher.get_model_object("model_sampling")
            self.current = self.start(sampling, args[3])  # outer_sample(noise, latent_image, sampler, sigmas, ...)
            guider.model_options.setdefault("transformer_options", {})[self.key] = self.current
            return executor(*args, **kwargs)
        finally:
            state, self.current = self.current, None
            if state is not None:
                self.last_run = state.finish()
            guider.model_options = original

    def __deepcopy__(self, memo):
        return self  # ModelPatcher.clone() deep-copies model_options; the clones share the hook and its record


def install_run_hook(model, key, start):
    """Add a RunHook under ``key`` to ``model`` (a cloned ModelPatcher); returns it."""
    hook = RunHook(key, start)
    model.add_wrapper_with_key(OUTER_SAMPLE, key, hook)
    return hook


def run_state(transformer_options, key):
    """The state of the run in progress (None outside a sampler run, e.g. a model call made by another node)."""
    return transformer_options.get(key) if transformer_options else None


def last_run(model, key):
    """What the last finished run of technique ``key`` on ``model`` (the patched clone) recorded."""
    for hook in model.get_wrappers(OUTER_SAMPLE, key):
        if isinstance(hook, RunHook):
            return hook.last_run
    raise KeyError(f"{key} is not installed on this model")
